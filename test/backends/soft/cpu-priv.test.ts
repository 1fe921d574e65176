/**
 * Privileged-architecture rules and the HartApi contract, pinned with hand-built programs:
 * reset state, CSR WARL rules (including the ones QEMU 7.2 gets wrong, which the differential
 * guests cannot check), counter gating, MMIO stop/complete with sign/zero extension (compressed
 * forms too), WFI, ecall, interrupt priority and delivery, LR/SC alignment, cache flushing after
 * the VMM rewrites guest code.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, rType } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import { IRQ, GENERAL_CSRS } from "../../../src/backends/soft/riscv/contract.js";
import { Hart } from "../../../src/backends/soft/riscv/hart.js";

const CSR = {
  sstatus: 0x100,
  sie: 0x104,
  stvec: 0x105,
  scounteren: 0x106,
  sepc: 0x141,
  sip: 0x144,
  time: 0xc01,
  instret: 0xc02,
  hpmcounter3: 0xc03,
} as const;
const STOP = 0x800;
const MODES = [
  { name: "interpreter", translate: false },
  { name: "translator", translate: true, hotThreshold: 1 },
] as const;

/** A hart whose trap handler (at BASE+STOP) is an S-mode ecall, i.e. "stop and look". */
function trapHart(
  code: number[],
  opts: (typeof MODES)[number],
): { hart: Hart; view: DataView; ram: Uint8Array } {
  const { hart, view, ram } = hartWith(code, opts);
  view.setUint32(STOP, I.ecall(), true);
  hart.setCsr("stvec", BigInt(BASE + STOP));
  return { hart, view, ram };
}

describe("Hart reset state and register API", () => {
  it("starts like a KVM vCPU: S-mode, guest sstatus only UXL=2, scounteren=7", () => {
    const h = new Hart();
    assert.equal(h.getMode(), 1);
    assert.equal(h.getCsr("sstatus"), 2n << 32n);
    assert.equal(h.getCsr("scounteren"), 7n);
    for (const name of GENERAL_CSRS) {
      if (name !== "sstatus" && name !== "scounteren") assert.equal(h.getCsr(name), 0n, name);
    }
    assert.equal(h.instret, 0n);
  });

  it("round-trips every u64 through pc, x and f registers", () => {
    const h = new Hart();
    for (const v of [
      0n,
      1n,
      (1n << 64n) - 1n,
      1n << 63n,
      0x8000_0000_0000_1000n,
      0x1234_5678_9abc_def0n,
    ]) {
      h.setPc(v);
      assert.equal(h.getPc(), v);
      h.setX(5, v);
      assert.equal(h.getX(5), v);
      h.setF(31, v);
      assert.equal(h.getF(31), v);
    }
    h.setX(0, 5n);
    assert.equal(h.getX(0), 0n);
    assert.throws(() => h.getX(32), RangeError);
  });

  it("applies WARL rules on setCsr: sepc bit 0, stvec MODE ≥ 2, satp modes, sip/sie masks", () => {
    const h = new Hart();
    h.setCsr("sepc", 0x8000_0001n);
    assert.equal(h.getCsr("sepc"), 0x8000_0000n);
    h.setCsr("stvec", 0x8000_0001n);
    h.setCsr("stvec", 0x9000_0002n);
    assert.equal(h.getCsr("stvec"), 0x8000_0001n);
    h.setCsr("satp", 9n << 60n); // Sv48: not offered
    assert.equal(h.getCsr("satp"), 0n);
    h.setCsr("sie", (1n << 64n) - 1n);
    assert.equal(h.getCsr("sie"), 0x222n);
    h.setCsr("sip", (1n << 64n) - 1n);
    assert.equal(h.getCsr("sip"), 0x222n);
    h.setCsr("sstatus", (1n << 64n) - 1n);
    // SIE SPIE SPP FS SUM MXR + UXL=2 + SD (FS = Dirty).
    assert.equal(h.getCsr("sstatus"), 0x8000_0002_000c_6122n);
  });

  it("setFpExtensions(false, false) makes FP illegal and FS read-only zero", () => {
    const h = new Hart();
    h.setFpExtensions(false, false);
    h.setCsr("sstatus", 3n << 13n);
    assert.equal(h.getCsr("sstatus") & (3n << 13n), 0n);
  });
});

describe("two harts on shared RAM", () => {
  it("SC fails when another hart changed the reserved word, succeeds otherwise", () => {
    const ram = new Uint8Array(new SharedArrayBuffer(1 << 16));
    const view = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    const make = (): Hart => {
      const h = new Hart({ hotThreshold: 1 });
      h.setMemslots([{ slot: 0, gpa: BASE, bytes: ram, readonly: false }]);
      return h;
    };
    // Hart A at +0: lr.w a0, (a1); ecall; sc.w a2, a3, (a1); ecall. Hart B at +0x100: sw.
    const a = [I.lrW(R.a0, R.a1), I.ecall(), I.scW(R.a2, R.a1, R.a3), I.ecall()];
    a.forEach((w, i) => {
      view.setUint32(4 * i, w, true);
    });
    view.setUint32(0x100, I.sw(R.a0, R.a1, 0), true);
    view.setUint32(0x104, I.ecall(), true);
    for (const [interfere, want] of [
      [true, 1n],
      [false, 0n],
    ] as const) {
      view.setUint32(0x800, 5, true);
      const ha = make();
      const hb = make();
      ha.setX(R.a1, BigInt(BASE + 0x800));
      ha.setX(R.a3, 7n);
      ha.setPc(BigInt(BASE));
      assert.equal(ha.run(10).kind, "ecall");
      assert.equal(ha.getX(R.a0), 5n);
      if (interfere) {
        hb.setX(R.a1, BigInt(BASE + 0x800));
        hb.setX(R.a0, 6n);
        hb.setPc(BigInt(BASE + 0x100));
        assert.equal(hb.run(10).kind, "ecall");
      }
      ha.setPc(ha.getPc() + 4n);
      assert.equal(ha.run(10).kind, "ecall");
      assert.equal(ha.getX(R.a2), want);
      assert.equal(view.getUint32(0x800, true), interfere ? 6 : 7);
    }
  });
});

describe("privileged rules", () => {
  for (const mode of MODES) {
    it(`guest csrw sepc clears bit 0 (${mode.name})`, () => {
      const { hart } = trapHart(
        [...li(R.a0, 0x80001235n), I.csrrw(0, CSR.sepc, R.a0), I.ecall()],
        mode,
      );
      assert.equal(hart.run(20).kind, "ecall");
      assert.equal(hart.getCsr("sepc"), 0x80001234n);
    });

    it(`U-mode counter reads obey scounteren (${mode.name})`, () => {
      const rdtime = I.csrrs(R.a0, CSR.time, 0);
      const { hart } = trapHart([rdtime, I.ecall()], mode);
      hart.setTimeSource(() => 777n);
      hart.setMode(0);
      assert.equal(hart.run(20).kind, "ecall"); // the U-mode ecall trapped to STOP
      assert.equal(hart.getX(R.a0), 777n);
      assert.equal(hart.getCsr("scause"), 8n);
      hart.setCsr("scounteren", 0n);
      hart.setMode(0);
      hart.setPc(BigInt(BASE));
      assert.equal(hart.run(20).kind, "ecall");
      assert.equal(hart.getCsr("scause"), 2n);
      assert.equal(hart.getCsr("stval"), BigInt(rdtime));
      // hpmcounter3 is illegal even in S-mode (KVM without a vPMU).
      const { hart: h2 } = trapHart([I.csrrs(R.a0, CSR.hpmcounter3, 0)], mode);
      assert.equal(h2.run(20).kind, "ecall");
      assert.equal(h2.getCsr("scause"), 2n);
    });

    it(`instret reads count retired instructions exactly (${mode.name})`, () => {
      const { hart } = trapHart(
        [I.addi(R.a1, 0, 1), I.addi(R.a1, R.a1, 1), I.csrrs(R.a0, CSR.instret, 0), I.ecall()],
        mode,
      );
      assert.equal(hart.run(20).kind, "ecall");
      assert.equal(hart.getX(R.a0), 2n);
      assert.equal(hart.instret, 3n);
    });

    it(`S-mode ecall stops with pc on the ecall; U-mode ecall traps (${mode.name})`, () => {
      const { hart } = trapHart([I.addi(R.a0, 0, 3), I.ecall()], mode);
      const s = hart.run(20);
      assert.equal(s.kind, "ecall");
      assert.equal(hart.getPc(), BigInt(BASE + 4));
      hart.setPc(BigInt(BASE));
      hart.setMode(0);
      hart.run(20);
      assert.equal(hart.getCsr("scause"), 8n);
      assert.equal(hart.getCsr("sepc"), BigInt(BASE + 4));
      assert.equal(hart.getMode(), 1);
      assert.equal(hart.getCsr("sstatus") & 0x100n, 0n); // SPP = U
    });

    it(`MMIO loads complete with the instruction's extension, compressed too (${mode.name})`, () => {
      const cases: [number, number, bigint, bigint, number][] = [
        // [insn, size, value, want, length]
        [I.lb(R.a0, R.a1, 0), 1, 0x80n, 0xffff_ffff_ffff_ff80n, 4],
        [I.lbu(R.a0, R.a1, 0), 1, 0x80n, 0x80n, 4],
        [I.lh(R.a0, R.a1, 0), 2, 0x8001n, 0xffff_ffff_ffff_8001n, 4],
        [I.lw(R.a0, R.a1, 0), 4, 0x8000_0000n, 0xffff_ffff_8000_0000n, 4],
        [I.lwu(R.a0, R.a1, 0), 4, 0x8000_0000n, 0x8000_0000n, 4],
        [I.ld(R.a0, R.a1, 0), 8, 0x8000_0000_0000_0001n, 0x8000_0000_0000_0001n, 4],
        [0x4188, 4, 0xffff_fffen, 0xffff_ffff_ffff_fffen, 2], // c.lw a0, 0(a1)
        [0x6188, 8, 0x1234n, 0x1234n, 2], // c.ld a0, 0(a1)
      ];
      for (const [insn, size, value, want, len] of cases) {
        const { hart, view } = trapHart([...li(R.a1, 0x1000_0000n)], mode);
        const at = 4 * li(R.a1, 0x1000_0000n).length;
        if (len === 2) view.setUint16(at, insn, true);
        else view.setUint32(at, insn, true);
        const s = hart.run(20);
        assert.deepEqual(s, {
          kind: "mmio",
          gpa: 0x1000_0000n,
          size,
          isWrite: false,
          value: undefined,
        });
        assert.equal(hart.getPc(), BigInt(BASE + at));
        hart.completeMmioLoad(value);
        assert.equal(hart.getX(R.a0), want);
        assert.equal(hart.getPc(), BigInt(BASE + at + len));
      }
    });

    it(`MMIO stores carry the zero-extended value; read-only slots trap writes (${mode.name})`, () => {
      const { hart } = trapHart(
        [...li(R.a1, 0x1000_0000n), I.addi(R.a0, 0, -1), I.sb(R.a0, R.a1, 3)],
        mode,
      );
      const s = hart.run(20);
      assert.deepEqual(s, {
        kind: "mmio",
        gpa: 0x1000_0003n,
        size: 1,
        isWrite: true,
        value: 0xffn,
      });
      const before = hart.instret;
      hart.completeMmioStore();
      assert.equal(hart.instret, before + 1n);
    });

    it(`a read-only slot is read as RAM and written through MMIO stops (${mode.name})`, () => {
      const code = [
        ...li(R.a1, 0x1000_0000n),
        I.lbu(R.a2, R.a1, 3),
        I.addi(R.a0, 0, 7),
        I.sb(R.a0, R.a1, 3),
      ];
      const { hart, ram } = trapHart(code, mode);
      const rom = new Uint8Array(4096);
      rom[3] = 0x5a;
      hart.setMemslots([
        { slot: 0, gpa: BASE, bytes: ram, readonly: false },
        { slot: 1, gpa: 0x1000_0000, bytes: rom, readonly: true },
      ]);
      const s = hart.run(20);
      assert.equal(hart.getX(R.a2), 0x5an);
      assert.deepEqual(s, { kind: "mmio", gpa: 0x1000_0003n, size: 1, isWrite: true, value: 7n });
      assert.equal(rom[3], 0x5a);
    });

    it(`WFI stops only when no enabled interrupt is pending (${mode.name})`, () => {
      const { hart } = trapHart([I.wfi(), I.wfi(), I.ecall()], mode);
      assert.deepEqual(hart.run(20), { kind: "wfi" });
      assert.equal(hart.getPc(), BigInt(BASE + 4));
      hart.setCsr("sie", BigInt(IRQ.STIP));
      hart.setPending(IRQ.STIP, true); // pending and enabled, sstatus.SIE = 0: no trap
      assert.equal(hart.interruptPending(), true);
      assert.equal(hart.run(20).kind, "ecall");
      assert.equal(hart.getPc(), BigInt(BASE + 8));
    });

    it(`interrupts are taken in priority order SEI > SSI > STI (${mode.name})`, () => {
      const { hart } = trapHart([I.addi(R.a0, R.a0, 1), I.jal(0, -4)], mode);
      hart.setCsr("sie", 0x222n);
      hart.setCsr("sstatus", 2n);
      hart.setPending(IRQ.SSIP | IRQ.STIP | IRQ.SEIP, true);
      hart.run(50);
      assert.equal(hart.getCsr("scause"), (1n << 63n) | 9n);
      hart.setPending(IRQ.SEIP, false);
      hart.setPc(BigInt(BASE));
      hart.setCsr("sstatus", 2n);
      hart.run(50);
      assert.equal(hart.getCsr("scause"), (1n << 63n) | 1n);
      hart.setPending(IRQ.SSIP, false);
      hart.setPc(BigInt(BASE));
      hart.setCsr("sstatus", 2n);
      hart.run(50);
      assert.equal(hart.getCsr("scause"), (1n << 63n) | 5n);
      assert.equal(hart.getCsr("sstatus") & 0x122n, 0x120n); // SPP = S, SPIE = 1, SIE = 0
    });

    it(`misaligned LR raises load-misaligned, SC store-misaligned (${mode.name})`, () => {
      for (const [insn, cause] of [
        [I.lrW(R.a0, R.a1), 4n],
        [I.scW(R.a0, R.a1, R.a2), 6n],
      ] as const) {
        const { hart } = trapHart([...li(R.a1, BigInt(BASE + 0x402)), insn], mode);
        assert.equal(hart.run(20).kind, "ecall");
        assert.equal(hart.getCsr("scause"), cause);
        assert.equal(hart.getCsr("stval"), BigInt(BASE + 0x402));
      }
    });

    it(`flushCaches makes code rewritten by the VMM visible (${mode.name})`, () => {
      const { hart, view } = trapHart([I.addi(R.a0, 0, 1), I.ecall()], mode);
      for (let i = 0; i < 5; i++) {
        hart.setPc(BigInt(BASE));
        hart.run(10);
      }
      assert.equal(hart.getX(R.a0), 1n);
      view.setUint32(0, I.addi(R.a0, 0, 2), true);
      hart.flushCaches();
      hart.setPc(BigInt(BASE));
      hart.run(10);
      assert.equal(hart.getX(R.a0), 2n);
    });

    it(`an odd pc set by the VMM raises instruction-address-misaligned (${mode.name})`, () => {
      const { hart } = trapHart([I.addi(R.a0, 0, 1)], mode);
      hart.setPc(BigInt(BASE + 1));
      assert.equal(hart.run(20).kind, "ecall");
      assert.equal(hart.getCsr("scause"), 0n);
      assert.equal(hart.getCsr("sepc"), BigInt(BASE));
      assert.equal(hart.getCsr("stval"), BigInt(BASE + 1));
    });

    it(`reserved rounding modes make FP instructions illegal (${mode.name})`, () => {
      const faddRm5 = rType(0x53, 5, 0x01, 1, 1, 2); // fadd.d f1, f1, f2 with rm = 5
      const { hart } = trapHart([faddRm5], mode);
      hart.setCsr("sstatus", 1n << 13n);
      assert.equal(hart.run(20).kind, "ecall");
      assert.equal(hart.getCsr("scause"), 2n);
      assert.equal(hart.getCsr("stval"), BigInt(faddRm5));
    });
  }
});
