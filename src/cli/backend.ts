/**
 * Which backend a demo run uses: `--backend`, else KVM when its device opens, else the soft
 * backend with a one-line notice naming the device that failed (`/dev/kvm` or the path in
 * `REGVISOR_KVM_DEVICE`). Shared by `run` and `run --snapshot-at-exit`.
 */
import { kvmBackendCode } from "./backends.js";
import { UsageError } from "./errors.js";

/** The backends a demo runs on. */
export type DemoBackend = "kvm" | "soft";

/**
 * `--backend` checked (undefined when not given).
 * @throws {UsageError} for a name that is not a backend.
 */
export function parseBackend(requested: string | undefined): DemoBackend | undefined {
  if (requested === undefined || requested === "kvm" || requested === "soft") return requested;
  throw new UsageError(`unknown backend "${requested}"; kvm or soft`);
}

/**
 * `--backend`, or the fallback choice; the notice goes to `err`.
 * @throws {UsageError} for a name that is not a backend.
 */
export function chooseBackend(
  requested: string | undefined,
  err: (t: string) => void,
): DemoBackend {
  const backend = parseBackend(requested);
  if (backend !== undefined) return backend;
  const kvm = kvmBackendCode();
  const reason = kvm.kvmUnavailableReason();
  if (reason === undefined) return "kvm";
  err(`regvisor: ${kvm.kvmDevicePath()} is not usable (${reason}); running on the soft backend\n`);
  return "soft";
}

/**
 * `--mode` checked (undefined when not given).
 * @throws {UsageError} for a name that is not a mode.
 */
export function parseMode(mode: string | undefined): "inline" | "threaded" | undefined {
  if (mode === undefined || mode === "inline" || mode === "threaded") return mode;
  throw new UsageError(`unknown mode "${mode}"; inline or threaded`);
}
