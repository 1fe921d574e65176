/**
 * A deliberately small `HartApi` for the kernel tests while the real RV64 hart is being written:
 * an RV64I subset interpreter (lui, addi, slli, add, loads/stores, jal, bne, csrrw/csrrs, ecall,
 * wfi, fence) with S-mode interrupt delivery, memslot memory, MMIO stops and the contract's
 * register accessors. Exported as `Hart` with `new Hart({ hartId })`, so threaded workers can
 * import it exactly like the real one.
 */
import type {
  GeneralCsr,
  HartApi,
  HartStop,
  Memslot,
} from "../../../src/backends/soft/riscv/contract.js";
import { IRQ } from "../../../src/backends/soft/riscv/contract.js";

const M64 = (1n << 64n) - 1n;
const SSTATUS_SIE = 1n << 1n;
const SSTATUS_SPIE = 1n << 5n;
const SSTATUS_SPP = 1n << 8n;
const SSTATUS_FS = 3n << 13n;
const CSR_NUM: Record<number, GeneralCsr | "time"> = {
  0x100: "sstatus",
  0x104: "sie",
  0x105: "stvec",
  0x106: "scounteren",
  0x10a: "senvcfg",
  0x140: "sscratch",
  0x141: "sepc",
  0x142: "scause",
  0x143: "stval",
  0x144: "sip",
  0x180: "satp",
  0xc01: "time",
};

const sext = (v: bigint, bits: number): bigint => BigInt.asUintN(64, BigInt.asIntN(bits, v));

/** The fake hart. */
export class Hart implements HartApi {
  instret = 0n;
  private pc = 0n;
  private readonly x: bigint[] = new Array<bigint>(32).fill(0n);
  private readonly f: bigint[] = new Array<bigint>(32).fill(0n);
  private fcsr = 0;
  private mode: 0 | 1 = 1;
  private pending = 0;
  private readonly csr = new Map<GeneralCsr, bigint>();
  private slots: readonly Memslot[] = [];
  private now: () => bigint = () => 0n;
  private mmio: { rd: number; size: number; signed: boolean } | undefined;
  /** Counts flushCaches() calls (tests look at it). */
  flushes = 0;

  constructor(readonly options: { hartId: number }) {
    for (const name of [
      "sstatus",
      "sie",
      "stvec",
      "sscratch",
      "sepc",
      "scause",
      "stval",
      "satp",
      "senvcfg",
    ] as const) {
      this.csr.set(name, 0n);
    }
    this.csr.set("scounteren", 7n);
  }

  getPc(): bigint {
    return this.pc;
  }
  setPc(v: bigint): void {
    this.pc = v & M64;
  }
  getX(i: number): bigint {
    return i === 0 ? 0n : (this.x[i] ?? 0n);
  }
  setX(i: number, v: bigint): void {
    if (i !== 0) this.x[i] = v & M64;
  }
  getMode(): 0 | 1 {
    return this.mode;
  }
  setMode(m: 0 | 1): void {
    this.mode = m;
  }
  getF(i: number): bigint {
    return this.f[i] ?? 0n;
  }
  setF(i: number, v: bigint): void {
    this.f[i] = v & M64;
  }
  getFcsr(): number {
    return this.fcsr;
  }
  setFcsr(v: number): void {
    this.fcsr = v & 0xff;
  }

  getCsr(name: GeneralCsr): bigint {
    if (name === "sip") return BigInt(this.pending);
    return this.csr.get(name) ?? 0n;
  }

  setCsr(name: GeneralCsr, v: bigint): void {
    if (name === "sip") this.pending = Number(v & 0x222n);
    else this.csr.set(name, v & M64);
  }

  setPending(bits: number, level: boolean): void {
    this.pending = level ? this.pending | bits : this.pending & ~bits;
  }

  interruptPending(): boolean {
    return (this.pending & Number(this.getCsr("sie"))) !== 0;
  }

  completeMmioLoad(value: bigint): void {
    const m = this.mmio;
    if (m === undefined) throw new Error("no MMIO load pending");
    const v = m.signed ? sext(value, 8 * m.size) : value & ((1n << BigInt(8 * m.size)) - 1n);
    this.setX(m.rd, v);
    this.mmio = undefined;
    this.pc += 4n;
  }

  completeMmioStore(): void {
    this.mmio = undefined;
    this.pc += 4n;
  }

  setMemslots(slots: readonly Memslot[]): void {
    this.slots = slots;
  }
  flushCaches(): void {
    this.flushes++;
  }
  setFpExtensions(f: boolean, d: boolean): void {
    const s = this.getCsr("sstatus") & ~SSTATUS_FS;
    this.csr.set("sstatus", f || d ? s | (1n << 13n) : s);
  }
  setTimeSource(now: () => bigint): void {
    this.now = now;
  }

  run(budget: number): HartStop {
    for (let n = 0; n < budget; n++) {
      this.takeInterrupt();
      const word = this.fetch();
      if (word === undefined) return { kind: "fault", reason: "fetch outside RAM", pc: this.pc };
      const stop = this.step(word);
      if (stop !== undefined) return stop;
    }
    return { kind: "budget" };
  }

  private takeInterrupt(): void {
    const sstatus = this.getCsr("sstatus");
    const enabled = this.pending & Number(this.getCsr("sie"));
    if (enabled === 0 || (this.mode === 1 && (sstatus & SSTATUS_SIE) === 0n)) return;
    const cause = (enabled & IRQ.SEIP) !== 0 ? 9 : (enabled & IRQ.SSIP) !== 0 ? 1 : 5;
    this.csr.set("scause", (1n << 63n) | BigInt(cause));
    this.csr.set("sepc", this.pc);
    let s = sstatus & ~(SSTATUS_SIE | SSTATUS_SPIE | SSTATUS_SPP);
    if ((sstatus & SSTATUS_SIE) !== 0n) s |= SSTATUS_SPIE;
    if (this.mode === 1) s |= SSTATUS_SPP;
    this.csr.set("sstatus", s);
    this.mode = 1;
    this.pc = this.getCsr("stvec") & ~3n;
  }

  private slotFor(
    addr: bigint,
    size: number,
  ): { bytes: Uint8Array; off: number; ro: boolean } | undefined {
    for (const s of this.slots) {
      const start = BigInt(s.gpa);
      if (addr >= start && addr + BigInt(size) <= start + BigInt(s.bytes.length)) {
        return { bytes: s.bytes, off: Number(addr - start), ro: s.readonly };
      }
    }
    return undefined;
  }

  private fetch(): number | undefined {
    const m = this.slotFor(this.pc, 4);
    if (m === undefined) return undefined;
    return new DataView(m.bytes.buffer, m.bytes.byteOffset).getUint32(m.off, true);
  }

  private step(w: number): HartStop | undefined {
    const op = w & 0x7f;
    const rd = (w >> 7) & 31;
    const f3 = (w >> 12) & 7;
    const rs1 = (w >> 15) & 31;
    const rs2 = (w >> 20) & 31;
    const immI = BigInt(w >> 20);
    let next = this.pc + 4n;
    this.instret++;
    switch (op) {
      case 0x37:
        this.setX(rd, sext(BigInt(w & 0xfffff000), 32));
        break;
      case 0x13:
        if (f3 === 0) this.setX(rd, this.getX(rs1) + immI);
        else if (f3 === 1) this.setX(rd, this.getX(rs1) << BigInt(rs2 | (((w >> 25) & 1) << 5)));
        else return this.illegal(w);
        break;
      case 0x33:
        this.setX(rd, this.getX(rs1) + this.getX(rs2));
        break;
      case 0x0f:
        break;
      case 0x6f: {
        const imm =
          ((w >> 31) << 20) |
          (((w >> 12) & 0xff) << 12) |
          (((w >> 20) & 1) << 11) |
          (((w >> 21) & 0x3ff) << 1);
        this.setX(rd, next);
        next = (this.pc + BigInt(imm)) & M64;
        break;
      }
      case 0x63: {
        const imm =
          ((w >> 31) << 12) |
          (((w >> 7) & 1) << 11) |
          (((w >> 25) & 0x3f) << 5) |
          (((w >> 8) & 0xf) << 1);
        if (f3 !== 1) return this.illegal(w);
        if (this.getX(rs1) !== this.getX(rs2)) next = (this.pc + BigInt(imm)) & M64;
        break;
      }
      case 0x03:
      case 0x23:
        return this.memory(w, op === 0x23, f3, rd, rs1, rs2);
      case 0x73:
        return this.system(w, f3, rd, rs1);
      default:
        return this.illegal(w);
    }
    this.pc = next;
    return undefined;
  }

  private memory(
    w: number,
    isStore: boolean,
    f3: number,
    rd: number,
    rs1: number,
    rs2: number,
  ): HartStop | undefined {
    const imm = isStore ? ((w >> 25) << 5) | ((w >> 7) & 31) : w >> 20;
    const addr = (this.getX(rs1) + BigInt(imm)) & M64;
    const size = 1 << (f3 & 3);
    const m = this.slotFor(addr, size);
    if (m === undefined || (isStore && m.ro)) {
      const value = isStore ? this.getX(rs2) & ((1n << BigInt(8 * size)) - 1n) : undefined;
      if (!isStore) this.mmio = { rd, size, signed: f3 < 4 };
      else this.mmio = { rd: 0, size, signed: false };
      return { kind: "mmio", gpa: addr, size, isWrite: isStore, value };
    }
    let v = 0n;
    for (let i = size - 1; i >= 0; i--) v = (v << 8n) | BigInt(m.bytes[m.off + i] ?? 0);
    if (isStore) {
      const s = this.getX(rs2);
      for (let i = 0; i < size; i++) m.bytes[m.off + i] = Number((s >> BigInt(8 * i)) & 0xffn);
    } else {
      this.setX(rd, f3 < 4 ? sext(v, 8 * size) : v);
    }
    this.pc += 4n;
    return undefined;
  }

  private system(w: number, f3: number, rd: number, rs1: number): HartStop | undefined {
    if (f3 === 0) {
      if (w === 0x00000073) return this.mode === 1 ? { kind: "ecall" } : this.illegal(w);
      if (w === 0x10500073) {
        this.pc += 4n;
        return this.interruptPending() ? undefined : { kind: "wfi" };
      }
      return this.illegal(w);
    }
    const name = CSR_NUM[(w >>> 20) & 0xfff];
    if (name === undefined) return this.illegal(w);
    const old = name === "time" ? this.now() : this.getCsr(name);
    const src = this.getX(rs1);
    if (name !== "time") {
      if (f3 === 1) this.setCsr(name, src);
      else if (f3 === 2 && rs1 !== 0) this.setCsr(name, old | src);
    }
    this.setX(rd, old);
    this.pc += 4n;
    return undefined;
  }

  private illegal(w: number): HartStop {
    return {
      kind: "fault",
      reason: `fake hart: unsupported instruction 0x${w.toString(16)}`,
      pc: this.pc,
    };
  }
}
