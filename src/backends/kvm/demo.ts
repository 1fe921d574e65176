/**
 * `runDemo()`: runs the bundled x86 demo guest (guests/x86/demo.S) on /dev/kvm and returns what
 * it printed, the exits it took and its final state through the generic register view.
 *
 * Guest contract (see demo.S): booted by `bootFlatGuest()`, console on port 0xE9 (OUT, 1 byte),
 * n read from port 0xEA (IN, 4 bytes), then HLT with fib(n) in RBX and n in R12.
 */
import { readRegisterView, type DemoRunResult, type NamedRegister } from "../register-view.js";
import type { VcpuExit } from "../vcpu.js";
import { bootFlatGuest, bundledGuest } from "./flat-guest.js";
import { KvmSystem, type KvmOpenOptions } from "./system.js";

/** Console port (OUT, 1 byte per exit). */
export const DEMO_CONSOLE_PORT = 0xe9;
/** Port the guest reads n from (IN, 4 bytes). */
export const DEMO_INPUT_PORT = 0xea;

/** Options for `runDemo()`. */
export interface DemoOptions extends KvmOpenOptions {
  /** Which Fibonacci number the guest computes (0..93 fits in u64); 90 by default. */
  readonly n?: number;
  /** Stop after this many exits (a runaway guest); 100000 by default. */
  readonly maxExits?: number;
  /** Guest image; the bundled guests/x86/demo.bin by default. */
  readonly image?: Uint8Array;
}

/** One register of the final state (the shared register-view shape). */
export type DemoRegister = NamedRegister;

/** What `runDemo()` returns. */
export type DemoResult = DemoRunResult;

function answer(exit: Extract<VcpuExit, { kind: "io" }>, n: number): void {
  const view = new DataView(exit.data.buffer, exit.data.byteOffset, exit.data.byteLength);
  if (exit.data.byteLength >= 4) view.setUint32(0, n, true);
  else exit.data.fill(0);
}

/**
 * Runs the demo guest to its HLT (or to the first exit it does not expect).
 * @throws {KvmError} if /dev/kvm cannot be used.
 */
export function runDemo(options: DemoOptions = {}): DemoResult {
  const n = options.n ?? 90;
  if (!Number.isInteger(n) || n < 0 || n > 93)
    throw new RangeError(`n = ${n}: fib(n) fits in u64 only for 0..93`);
  const maxExits = options.maxExits ?? 100_000;
  const image = options.image ?? bundledGuest("demo");
  using system = KvmSystem.open(options.path === undefined ? {} : { path: options.path });
  using guest = bootFlatGuest(system, image);
  const vcpu = guest.vcpu;

  const text: number[] = [];
  const kinds: Record<string, number> = {};
  let exits = 0;
  let exit: VcpuExit;
  for (;;) {
    exit = vcpu.run();
    exits++;
    kinds[exit.kind] = (kinds[exit.kind] ?? 0) + 1;
    if (exit.kind === "io" && exit.direction === "out" && exit.port === DEMO_CONSOLE_PORT) {
      text.push(...exit.data);
    } else if (exit.kind === "io" && exit.direction === "in" && exit.port === DEMO_INPUT_PORT) {
      answer(exit, n);
    } else if (exit.kind !== "intr" || exits >= maxExits) {
      break;
    }
    if (exits >= maxExits) break;
  }

  const finalRegs = readRegisterView(vcpu);
  return {
    output: new TextDecoder().decode(new Uint8Array(text)),
    exits,
    exitKinds: kinds,
    lastExit: exit,
    finalRegs,
  };
}
