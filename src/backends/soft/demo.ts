/**
 * `runSoftDemo()`: runs the bundled RISC-V demo guest (guests/riscv/demo/demo.bin) on the soft
 * backend and returns what it printed, the exits it took and its final register state — the
 * soft twin of the KVM backend's `runDemo()`, for `regvisor run --backend soft`.
 *
 * Boot as a KVM VMM would do it (kvmtool riscv/kvm-cpu.c): image at 0x8020_0000 in RAM starting
 * at 0x8000_0000, pc = load address, a0 = hart id 0, a1 = 0 (no device tree yet), DBCN enabled
 * through `sbi_ext.dbcn` before the first run. The exit loop is the console part of kvmtool's
 * handler: legacy putchar/getchar and DBCN write/read/write_byte; it stops at the
 * SYSTEM_EVENT (SRST) the guest ends with, or at the first exit it does not expect.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { lookupReg } from "../../abi/catalog.js";
import type { RegId } from "../../abi/regid.js";
import { readRegisterView, type DemoRunResult, type NamedRegister } from "../register-view.js";
import type { VcpuExit } from "../vcpu.js";
import { physView } from "./guestmem.js";
import { createSoftVm } from "./create.js";
import { SBI_EID, SBI_ERR } from "../../abi/sbi.js";
import type { SoftMode } from "./vcpu.js";
import { allocGuestMemory, type SoftVm } from "./vm.js";

/** Guest RAM base (QEMU `virt` / kvmtool layout). */
export const DEMO_RAM_BASE = 0x8000_0000n;
/** Where the image is loaded and started (2 MiB above RAM base, the RV64 kernel convention). */
export const DEMO_LOAD_ADDRESS = 0x8020_0000n;

/** Options for `runSoftDemo()`. */
export interface SoftDemoOptions {
  /** Execution mode of the soft VM (default "inline"). */
  readonly mode?: SoftMode;
  /** Guest image; the bundled guests/riscv/demo/demo.bin by default. */
  readonly image?: Uint8Array;
  /** Guest RAM size in bytes (default 16 MiB). */
  readonly memoryBytes?: number;
  /** Bytes the guest's getchar/DBCN read will see. */
  readonly input?: string;
  /** Stop after this many exits (default 1 000 000). */
  readonly maxExits?: number;
  /** Stop after this much wall-clock time in ms (default 60 000). */
  readonly timeoutMs?: number;
}

/** One register of the final state (the shared register-view shape). */
export type SoftDemoRegister = NamedRegister;

/** What `runSoftDemo()` returns. */
export type SoftDemoResult = DemoRunResult;

/** Path of the bundled demo image, from the source tree or the compiled dist/ tree. */
export function softDemoImagePath(): string {
  for (const up of ["../../../../", "../../../"]) {
    const path = fileURLToPath(new URL(`${up}guests/riscv/demo/demo.bin`, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error("guests/riscv/demo/demo.bin is missing (run guests/riscv/build.sh)");
}

/** Console state shared by the handlers below. */
interface Console {
  readonly out: number[];
  readonly input: Uint8Array;
  inputAt: number;
}

function handleSbi(
  exit: Extract<VcpuExit, { kind: "riscv_sbi" }>,
  vm: SoftVm,
  con: Console,
): boolean {
  const [a0 = 0n, a1 = 0n, a2 = 0n] = exit.args;
  if (exit.extensionId === 1n) {
    con.out.push(Number(a0 & 0xffn));
    exit.ret[0] = 0n;
    exit.ret[1] = BigInt.asIntN(64, a1); // KVM writes ret[1] to a1: hand it back unchanged
    return true;
  }
  if (exit.extensionId === 2n) {
    const byte = con.input[con.inputAt];
    if (byte !== undefined) con.inputAt++;
    exit.ret[0] = byte === undefined ? -1n : BigInt(byte);
    exit.ret[1] = BigInt.asIntN(64, a1);
    return true;
  }
  if (exit.extensionId !== SBI_EID.DBCN) return false;
  exit.ret[0] = 0n;
  exit.ret[1] = 0n;
  if (exit.functionId === 2n) {
    con.out.push(Number(a0 & 0xffn));
    return true;
  }
  const length = Number(a0 > 4096n ? 4096n : a0);
  const view = a2 === 0n ? physView(vm.memslots(), a1, length) : undefined;
  if (view === undefined) {
    exit.ret[0] = SBI_ERR.INVALID_PARAM;
    return true;
  }
  if (exit.functionId === 0n) {
    con.out.push(...view);
    exit.ret[1] = BigInt(length);
  } else if (exit.functionId === 1n) {
    const bytes = con.input.subarray(con.inputAt, con.inputAt + length);
    view.set(bytes);
    con.inputAt += bytes.length;
    exit.ret[1] = BigInt(bytes.length);
  }
  return true;
}

/**
 * Runs the demo guest until its SRST shutdown (or the first exit it does not expect).
 * @throws {RangeError} if the image does not fit in guest RAM.
 */
export function runSoftDemo(options: SoftDemoOptions = {}): SoftDemoResult {
  const image = options.image ?? new Uint8Array(readFileSync(softDemoImagePath()));
  const memoryBytes = options.memoryBytes ?? 16 << 20;
  const loadOffset = Number(DEMO_LOAD_ADDRESS - DEMO_RAM_BASE);
  if (image.length > memoryBytes - loadOffset) {
    throw new RangeError(
      `A ${image.length}-byte image does not fit in ${memoryBytes} bytes of RAM`,
    );
  }
  const maxExits = options.maxExits ?? 1_000_000;
  const deadline = performance.now() + (options.timeoutMs ?? 60_000);
  using vm = createSoftVm({ mode: options.mode ?? "inline" });
  const ram = allocGuestMemory(memoryBytes);
  ram.set(image, loadOffset);
  vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: DEMO_RAM_BASE, memory: ram });
  const vcpu = vm.createVcpu();
  const id = (name: string): RegId => lookupReg("riscv", name).id;
  vcpu.setOneReg(id("core.pc"), DEMO_LOAD_ADDRESS);
  vcpu.setOneReg(id("core.a0"), 0n);
  vcpu.setOneReg(id("core.a1"), 0n);
  vcpu.setOneReg(id("sbi_ext.dbcn"), 1n);

  const con: Console = {
    out: [],
    input: new TextEncoder().encode(options.input ?? ""),
    inputAt: 0,
  };
  const kinds: Record<string, number> = {};
  let exits = 0;
  let exit: VcpuExit;
  for (;;) {
    exit = vcpu.run();
    exits++;
    kinds[exit.kind] = (kinds[exit.kind] ?? 0) + 1;
    const handled = exit.kind === "intr" || (exit.kind === "riscv_sbi" && handleSbi(exit, vm, con));
    if (!handled || exits >= maxExits || performance.now() >= deadline) break;
  }
  return {
    output: new TextDecoder().decode(new Uint8Array(con.out)),
    exits,
    exitKinds: kinds,
    lastExit: exit,
    finalRegs: readRegisterView(vcpu),
  };
}
