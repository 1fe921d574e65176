/**
 * The runner with every architecture at hand, synchronously: `ARCHES` for callers that build a
 * machine of whichever architecture a stream or snapshot names (restore, incoming migration),
 * and `prepareRun` for checking a run completely without starting it. `regvisor run FILE` itself
 * goes through ./runner-core.ts, which loads only its guest's architecture.
 */
import { archMachine as riscvMachine } from "./arch/riscv/index.js";
import { archMachine as x86Machine } from "./arch/x86/index.js";
import type { ImageArch } from "./image.js";
import type { ArchDefinition } from "./machine/types.js";
import { checkArch, planRun, type PreparedRun, type RunRequest } from "./runner-core.js";

export {
  MAX_CPUS,
  runGuest,
  runMachine,
  runnerIo,
  type FinalRegister,
  type PreparedRun,
  type RunRequest,
  type RunSummary,
  type RunnerIo,
} from "./runner-core.js";

/** The arch part of each architecture. */
export const ARCHES: Readonly<Record<ImageArch, ArchDefinition>> = {
  x86: x86Machine,
  riscv: riscvMachine,
};

/**
 * Everything that can be refused before a VM exists: the image, its placement in RAM with the
 * initrd and device tree, the architecture against `--backend`, options that do not apply.
 * @throws ImageError, OptionValueError.
 */
export function prepareRun(request: Omit<RunRequest, "backendFor" | "output">): PreparedRun {
  const planned = planRun(request);
  return checkArch(request, planned, ARCHES[planned.plan.arch]);
}
