/**
 * The first thing `regvisor run` does when its guest will run on an inline soft hart: the
 * engine's warm-ups (src/backends/soft/riscv/hart.ts `primeEngine`), before the run command and
 * the VMM are loaded, the image is read and the machine is built.
 *
 * Why (issue 13: process start to /init's first line is the Linux boot benchmark): the
 * warm-ups end by making the fast interpreter's loop hot, and V8 then compiles it with
 * TurboFan on a background thread (30-60 ms measured with --trace-opt). Started here, that
 * compile runs while the main thread loads ~270 KB of modules, plans the boot and writes the
 * image; started in `new Hart()`, after all of that, the guest's first slice ran in baseline
 * code until it was done.
 *
 * The command line is only read here, never judged: run.ts parses and checks it as before, so
 * a guess that is wrong (a malformed command line) costs start-up time, never behaviour.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { parseArgs } from "node:util";
import { RUN_OPTIONS } from "./run-options.js";

/** The RISC-V Linux Image's magic2 "RSC\x05" and its offset (Documentation/arch/riscv/boot.rst). */
const IMAGE_MAGIC2 = 0x0543_5352;
const IMAGE_MAGIC2_AT = 0x38;
/** ELF magic, and e_machine (u16 at 18) of RISC-V (include/uapi/linux/elf-em.h EM_RISCV). */
const ELF_MAGIC = 0x464c_457f;
const EM_RISCV = 243;
const ELF_MACHINE_AT = 18;

/** Whether the file at `path` starts with a RISC-V Linux Image or ELF header. */
function isRiscvFile(path: string): boolean {
  const head = new Uint8Array(IMAGE_MAGIC2_AT + 4);
  let length: number;
  try {
    const fd = openSync(path, "r");
    try {
      length = readSync(fd, head, 0, head.length, 0);
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
  const view = new DataView(head.buffer, 0, length);
  if (length < ELF_MACHINE_AT + 2) return false;
  if (view.getUint32(0, true) === ELF_MAGIC) {
    return view.getUint16(ELF_MACHINE_AT, true) === EM_RISCV;
  }
  return length === head.length && view.getUint32(IMAGE_MAGIC2_AT, true) === IMAGE_MAGIC2;
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
