/**
 * V8 settings the `regvisor` executable gives itself before anything else runs (bin.ts), so
 * users and the benchmarks (which spawn `node dist/bin/regvisor.js`) get them without node
 * options (issue 13: process start to /init's first line is the Linux boot benchmark).
 *
 * Why: a soft-backend Linux boot to /init burns ~0.35 s of CPU on V8's background threads
 * besides the main thread's ~0.55 s, nearly all of it TurboFan compiling JavaScript (perf
 * record of the platform threads: ~85% in v8::internal::compiler, ~1% GC; the wasm tier's
 * TurboFan compiles are bounded by `--wasm-tiering-budget` in wasm-api.ts). On a host whose
 * second core is busy, that work competes with the main thread for one core. Compiling fewer
 * functions, later (a doubled interrupt budget), and with a smaller inlining budget per
 * function cut that background CPU; the interpreter loop still inlines its small helpers.
 *
 * Only flags V8 reads each time it decides or compiles can be set here, once the isolate is
 * running: `--interrupt-budget` when a function's tiering budget is reset, the inlining
 * limits in each TurboFan compile (both checked with --trace-opt/--trace-turbo-inlining in a
 * scratch process). Flags V8 reads while it creates the isolate are not: the young generation
 * size (`--max-semi-space-size`), the compile queue (`--concurrent-recompilation-queue-length`,
 * `--no-concurrent-recompilation`, checked with --trace-opt: still kConcurrent), Node's thread
 * pool (`--v8-pool-size`); and V8 11.3 aborts at the next full GC when the GC threading flags
 * (`--single-threaded-gc`, `--no-concurrent-marking`) change at run time (cppgc check
 * "concurrent_marking_handle_"), so they are left alone.
 *
 * V8 flags are process-wide: the threaded mode's vCPU workers, started later, get them too.
 */
import { setFlagsFromString } from "node:v8";

/** One V8 flag this module sets: its name (without `--`), value, and why. */
export interface V8Flag {
  readonly name: string;
  readonly value: number;
  readonly why: string;
}

/** The flags `setV8Flags()` sets, in order. */
export const V8_FLAGS: readonly V8Flag[] = [
  {
    name: "interrupt-budget",
    // V8 11.3's default is 67584 (66 KiB of bytecode executed between tiering checks).
    value: 135168,
    why: "functions warm only at start-up or once in a boot stay in baseline code",
  },
  {
    name: "max-inlined-bytecode-size-cumulative",
    // V8 11.3's default is 920 bytes of inlined bytecode per optimized function.
    value: 230,
    why: "smaller TurboFan graphs compile faster; small helpers (<= 230 bytes) still inline",
  },
];

/**
 * Sets every flag of V8_FLAGS that node's own command line (process.execArgv) does not name,
 * so `node --interrupt-budget=N dist/bin/regvisor.js` still measures N.
 */
export function setV8Flags(execArgv: readonly string[] = process.execArgv): void {
  for (const { name, value } of V8_FLAGS) {
    const given = execArgv.some((a) => {
      const bare = a.replace(/^--?/, "").replaceAll("_", "-");
      return bare === name || bare.startsWith(`${name}=`);
    });
    if (!given) setFlagsFromString(`--${name}=${String(value)}`);
  }
}
