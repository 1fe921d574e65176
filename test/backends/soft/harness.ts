/**
 * A minimal "kernel" for running RISC-V test guests on the bare Hart (no VM/vCPU layer): loads an
 * ELF's PT_LOAD segments into one RAM memslot at 0x80000000 (QEMU virt's RAM base), runs the
 * hart in budget slices, and answers the SBI calls the guests make: legacy console putchar
 * (EID 0x01), DBCN write/write_byte, TIME set_timer (STIP when time ≥ compare), BASE probes,
 * SRST (stop). Time is derived from the retired-instruction count, so runs are deterministic;
 * WFI fast-forwards time to the next timer event.
 */
import { readFileSync, existsSync, readdirSync, statSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import { Hart, type HartOptions } from "../../../src/backends/soft/riscv/hart.js";
import { IRQ, type HartStop } from "../../../src/backends/soft/riscv/contract.js";
import { place } from "./asm.js";

/** Where guests/riscv lives (works from dist/test/... and from the source tree). */
export const GUEST_DIR = (() => {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(d, "guests", "riscv"))) return join(d, "guests", "riscv");
    d = dirname(d);
  }
  return join(process.cwd(), "guests", "riscv");
})();

/** Path of a built guest ELF. */
export function guestElf(name: string): string {
  return join(GUEST_DIR, "build", `${name}.elf`);
}

/** The test guests (guests/riscv/build.sh): each prints only "PASS <name>" lines. */
export const TEST_GUESTS = [
  "rv64i",
  "rv64m",
  "rv64a",
  "rv64f",
  "rv64d",
  "rvc",
  "priv_trap",
  "priv_user",
  "priv_vm",
  "timer",
  "misaligned",
  "smc",
] as const;

/** Whether a command is on PATH. */
export function hasCommand(cmd: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Newest modification time (ms) of the guest sources and build script. */
function newestSource(): number {
  const src = join(GUEST_DIR, "src");
  const times = readdirSync(src).map((f) => statSync(join(src, f)).mtimeMs);
  return Math.max(statSync(join(GUEST_DIR, "build.sh")).mtimeMs, ...times);
}

/**
 * Makes sure the named guests are built (running guests/riscv/build.sh once if the cross
 * compiler is installed). Returns a skip reason, or undefined when the ELFs exist.
 */
export function ensureGuests(names: readonly string[]): string | undefined {
  const missing = (): string[] => names.filter((n) => !existsSync(guestElf(n)));
  // An ELF older than any guest source is rebuilt too: a checkout that changed a guest (say
  // compute.c) would otherwise test the old binary against the new expectations.
  const stale = (): boolean => names.some((n) => statSync(guestElf(n)).mtimeMs < newestSource());
  if ((missing().length > 0 || stale()) && hasCommand("riscv64-unknown-elf-gcc")) {
    try {
      execFileSync("bash", [join(GUEST_DIR, "build.sh")], { stdio: "ignore" });
    } catch {
      // Reported below as missing ELFs.
    }
  }
  const still = missing();
  if (still.length === 0) return undefined;
  return `guest ELFs not built (${still.join(", ")}) and riscv64-unknown-elf-gcc unavailable: run scripts/setup.sh, then guests/riscv/build.sh`;
}

/** A loaded ELF: entry point and segments (physical address, file bytes, memory size). */
export interface Elf {
  readonly entry: bigint;
  readonly segments: readonly { paddr: bigint; data: Uint8Array; memsz: number }[];
}

/** Parses an ELF64 little-endian RISC-V executable's PT_LOAD segments. */
export function parseElf(bytes: Uint8Array): Elf {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, false) !== 0x7f454c46 || bytes[4] !== 2 || bytes[5] !== 1) {
    throw new Error("not an ELF64 little-endian file");
  }
  const entry = dv.getBigUint64(0x18, true);
  const phoff = Number(dv.getBigUint64(0x20, true));
  const phentsize = dv.getUint16(0x36, true);
  const phnum = dv.getUint16(0x38, true);
  const segments = [];
  for (let i = 0; i < phnum; i++) {
    const p = phoff + i * phentsize;
    if (dv.getUint32(p, true) !== 1) continue;
    const offset = Number(dv.getBigUint64(p + 8, true));
    const paddr = dv.getBigUint64(p + 0x18, true);
    const filesz = Number(dv.getBigUint64(p + 0x20, true));
    const memsz = Number(dv.getBigUint64(p + 0x28, true));
    segments.push({ paddr, data: bytes.subarray(offset, offset + filesz), memsz });
  }
  return { entry, segments };
}

/** RAM layout of the harness (QEMU virt: RAM at 0x80000000). */
export const RAM_BASE = 0x80000000;

/** Options for runGuest. */
export interface RunOptions {
  readonly ramSize?: number;
  /** Total instruction budget (default 2e9). */
  readonly budget?: number;
  /** Instructions per run() slice (timer checks happen between slices). */
  readonly slice?: number;
  readonly translate?: boolean;
  /** Block compile threshold (1 = compile on first sight: exercises the translator most). */
  readonly hotThreshold?: number;
  /** Blocks per compiled region (translate.ts). */
  readonly regionBlocks?: number;
  /** What hot regions compile to (HartOptions.tier). */
  readonly tier?: "js" | "wasm";
  /** Back RAM with a SharedArrayBuffer (as threaded mode does; AMOs then use Atomics). */
  readonly sharedRam?: boolean;
  /** Also map a 4 KiB read-only slot here (MMIO tests use the gaps). */
  readonly extraSlots?: readonly { gpa: number; size: number; readonly: boolean }[];
  /** Called for MMIO stops; return the load value (default 0). */
  readonly onMmio?: (stop: Extract<HartStop, { kind: "mmio" }>) => bigint;
}

/** What a guest run produced. */
export interface GuestRun {
  readonly console: string;
  /** "shutdown" (SRST), "budget", or the stop kind that ended it. */
  readonly end: string;
  readonly detail: string;
  readonly instret: bigint;
  readonly hart: Hart;
  readonly ram: Uint8Array;
}

const EID = {
  LEGACY_SET_TIMER: 0x00,
  LEGACY_PUTCHAR: 0x01,
  BASE: 0x10,
  TIME: 0x54494d45,
  DBCN: 0x4442434e,
  SRST: 0x53525354,
} as const;

/** Loads an ELF into a fresh hart with one RAM slot. */
export function loadGuest(elf: Elf, opts: RunOptions = {}): { hart: Hart; ram: Uint8Array } {
  const ramSize = opts.ramSize ?? 128 << 20;
  const ram =
    opts.sharedRam === true
      ? new Uint8Array(new SharedArrayBuffer(ramSize))
      : new Uint8Array(ramSize);
  for (const s of elf.segments) {
    const off = Number(s.paddr) - RAM_BASE;
    if (off < 0 || off + s.memsz > ramSize) throw new Error("segment outside RAM");
    ram.set(s.data, off);
  }
  const hart = new Hart({
    translate: opts.translate ?? true,
    ...(opts.hotThreshold === undefined ? {} : { hotThreshold: opts.hotThreshold }),
    ...(opts.regionBlocks === undefined ? {} : { regionBlocks: opts.regionBlocks }),
    ...(opts.tier === undefined ? {} : { tier: opts.tier }),
  });
  const slots = [{ slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false }];
  let n = 1;
  for (const e of opts.extraSlots ?? []) {
    slots.push({ slot: n++, gpa: e.gpa, bytes: new Uint8Array(e.size), readonly: e.readonly });
  }
  hart.setMemslots(slots);
  hart.setPc(elf.entry);
  hart.setX(10, 0n);
  hart.setX(11, 0n);
  return { hart, ram };
}

/** A fresh hart with `ramSize` (default 1 MiB) of RAM at RAM_BASE holding `code`, pc there. */
export function hartWith(
  code: readonly number[] | Uint8Array,
  opts: HartOptions & { ramSize?: number } = {},
): { hart: Hart; ram: Uint8Array; view: DataView } {
  const ram = new Uint8Array(opts.ramSize ?? 1 << 20);
  if (code instanceof Uint8Array) ram.set(code);
  else place(ram, 0, code);
  const hart = new Hart(opts);
  hart.setMemslots([{ slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false }]);
  hart.setPc(BigInt(RAM_BASE));
  return { hart, ram, view: new DataView(ram.buffer, ram.byteOffset, ram.byteLength) };
}

/** Runs a guest ELF file to SRST (or budget exhaustion) and returns its console output. */
export function runGuest(path: string, opts: RunOptions = {}): GuestRun {
  const elf = parseElf(readFileSync(path));
  const { hart, ram } = loadGuest(elf, opts);
  return runLoaded(hart, ram, opts);
}

/** The SBI/timer loop over an already loaded hart. */
export function runLoaded(hart: Hart, ram: Uint8Array, opts: RunOptions = {}): GuestRun {
  let out = "";
  let timeOffset = 0n;
  let compare = -1n;
  const now = (): bigint => hart.instret / 8n + timeOffset;
  hart.setTimeSource(now);
  const checkTimer = (): void => {
    hart.setPending(IRQ.STIP, compare >= 0n && now() >= compare);
  };
  let left = opts.budget ?? 2e9;
  const slice = opts.slice ?? 50_000;
  const finish = (end: string, detail = ""): GuestRun => ({
    console: out,
    end,
    detail,
    instret: hart.instret,
    hart,
    ram,
  });
  while (left > 0) {
    const before = hart.instret;
    const stop = hart.run(Math.min(slice, left));
    left -= Math.max(1, Number(hart.instret - before));
    checkTimer();
    switch (stop.kind) {
      case "budget":
        continue;
      case "wfi":
        if (hart.interruptPending()) continue;
        if (compare < 0n) return finish("wfi", "WFI with no timer armed");
        timeOffset += compare - now() > 0n ? compare - now() : 0n;
        checkTimer();
        continue;
      case "mmio": {
        if (stop.isWrite) hart.completeMmioStore();
        else hart.completeMmioLoad(opts.onMmio?.(stop) ?? 0n);
        continue;
      }
      case "fault":
        return finish("fault", `${stop.reason} at pc 0x${stop.pc.toString(16)}`);
      case "ecall": {
        const eid = Number(BigInt.asUintN(32, hart.getX(17)));
        const fid = Number(BigInt.asUintN(32, hart.getX(16)));
        const a0 = hart.getX(10);
        let ret0 = 0n;
        let ret1: bigint | undefined = 0n;
        switch (eid) {
          case EID.LEGACY_PUTCHAR:
            out += String.fromCharCode(Number(a0 & 0xffn));
            ret1 = undefined;
            break;
          case EID.LEGACY_SET_TIMER:
          case EID.TIME:
            compare = a0 === BigInt.asUintN(64, -1n) ? -1n : a0;
            checkTimer();
            ret1 = eid === EID.LEGACY_SET_TIMER ? undefined : 0n;
            break;
          case EID.DBCN:
            if (fid === 0) {
              const n = Number(a0);
              const base = Number(hart.getX(11)) - RAM_BASE;
              out += Buffer.from(ram.subarray(base, base + n)).toString("latin1");
              ret1 = a0;
            } else if (fid === 2) {
              out += String.fromCharCode(Number(a0 & 0xffn));
            } else ret0 = -2n;
            break;
          case EID.BASE:
            ret1 = fid === 0 ? 0x2000000n : fid === 3 ? 1n : 0n;
            break;
          case EID.SRST:
            return finish("shutdown", `type ${a0} reason ${hart.getX(11)}`);
          default:
            ret0 = -2n;
        }
        hart.setX(10, ret0);
        if (ret1 !== undefined) hart.setX(11, ret1);
        hart.setPc(hart.getPc() + 4n);
        continue;
      }
    }
  }
  return finish("budget");
}

/** The PASS/FAIL lines of a console transcript. */
export function verdictLines(text: string): string[] {
  return text.split("\n").filter((l) => /^(PASS|FAIL) /.test(l));
}
