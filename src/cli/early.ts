/**
 * The first thing `regvisor run` does when its guest will run on an inline soft hart: the
 * engine's warm-ups (src/backends/soft/riscv/hart.ts `primeEngine`), before the run command and
 * the VMM are loaded (initialized, in the bundle: scripts/bundle.mjs), the image is read and the
 * machine is built.
 *
 * Why (issue 13: process start to /init's first line is the Linux boot benchmark): the
 * warm-ups end by making the fast interpreter's loop hot, and V8 then compiles it with
 * TurboFan on a background thread (30-60 ms measured with --trace-opt). Started here, that
 * compile runs while the main thread loads the run command and the VMM, plans the boot and
 * writes the image; started in `new Hart()`, after all of that, the guest's first slice ran in baseline
 * code until it was done.
 *
 * The command line is only read here, never judged: run.ts parses and checks it as before, so
 * a guess that is wrong (a malformed command line) costs start-up time, never behaviour.
 */
import { parseArgs } from "node:util";
import { isRiscvLinuxImage } from "../vmm/arch/riscv/linux-image.js";
import { EM, elfMachine, isElf } from "../vmm/elf.js";
import { OpenInputFile } from "../vmm/input-file.js";
import { RUN_OPTIONS } from "./run-options.js";

/**
 * Whether the file at `path` starts with a RISC-V Linux Image or ELF header. Opened as run.ts
 * opens it (OpenInputFile: a regular file only, and never waiting on a FIFO's writer); a file it
 * cannot use is not RISC-V here, and run.ts says why.
 */
function isRiscvFile(path: string): boolean {
  let head: Uint8Array;
  try {
    using file = new OpenInputFile(path, {
      what: "guest image",
      maxBytes: Number.MAX_SAFE_INTEGER,
    });
    head = file.head;
  } catch {
    return false;
  }
  return isElf(head) ? elfMachine(head) === EM.RISCV : isRiscvLinuxImage(head);
}

/**
 * Whether `regvisor run argv` (without `run`) will run its guest on a soft hart on this thread:
 * `--backend soft`, or no `--backend` and a RISC-V FILE; one vCPU, or `--mode inline` (a
 * threaded vCPU's hart lives in its Worker, which primes its own).
 */
export function runsInlineSoftHart(argv: readonly string[]): boolean {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: RUN_OPTIONS,
      allowPositionals: true,
      strict: false,
    });
  } catch {
    return false;
  }
  const { values, positionals } = parsed;
  if (values.help !== undefined || values.incoming !== undefined) return false;
  const cpus = values.cpus;
  const mode = values.mode;
  if (mode === "threaded" || (mode !== "inline" && cpus !== undefined && cpus !== "1")) {
    return false;
  }
  if (values.backend !== undefined) return values.backend === "soft";
  const [file] = positionals;
  return positionals.length === 1 && file !== undefined && isRiscvFile(file);
}

/** Runs the soft engine's warm-ups now when `regvisor run argv` will need them (see above). */
export async function primeForRun(argv: readonly string[]): Promise<void> {
  if (!runsInlineSoftHart(argv)) return;
  const { primeEngine } = await import("../backends/soft/riscv/hart.js");
  try {
    primeEngine();
  } catch {
    // No hart can be made (a bad REGVISOR_SOFT_TIER): the run reports that itself, after the
    // command line's own errors, as it did before this early start.
  }
}
