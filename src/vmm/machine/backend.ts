/**
 * What a machine needs from its backend, injected by the caller: `src/vmm` never constructs a
 * concrete backend (a lint rule enforces it); `src/cli/backends.ts` picks one and adapts it.
 *
 * The machine talks to vCPUs and the VM only through the `Vm`/`Vcpu` interface of
 * src/backends/vcpu.ts. What no interface covers (the soft hart's instruction counter, its fault
 * text, KVM's signal kicker, the supported CPUID a fresh KVM x86 vCPU needs) comes through the
 * optional hooks below, so the machine never downcasts.
 */
import type { Vcpu, Vm } from "../../backends/vcpu.js";
import type { ImageArch } from "../image.js";

/** The backends `regvisor run` drives. */
export type BackendName = "kvm" | "soft";

/** Execution modes of the soft backend (`--mode`). */
export type RunMode = "inline" | "threaded";

/** A backend as a machine uses it. */
export interface MachineBackend {
  readonly name: BackendName;
  /** The guest architecture its vCPUs run. */
  readonly arch: ImageArch;
  /** Soft backend: where vCPUs run. */
  readonly mode?: RunMode;
  /** Most vCPUs one VM of this backend holds (KVM_CAP_MAX_VCPUS). */
  readonly maxVcpus: number;
  /** Most guest RAM one VM of this backend holds, where it has a limit below the OS's. */
  readonly maxMemBytes?: number;
  /**
   * Refuses before anything is built when the backend cannot run here.
   * @throws a RegvisorError with a one-line reason (e.g. /dev/kvm unusable).
   */
  check?(): void;
  /** Creates an empty VM (no memory, no vCPUs). */
  createVm(): Vm;
  /** Backend set-up of a fresh vCPU before the boot state (KVM x86: the supported CPUID). */
  prepareVcpu?(vcpu: Vcpu): void;
  /** Guest instructions retired by `vcpu`, where the backend counts them. */
  instructions?(vcpu: Vcpu): bigint | undefined;
  /**
   * How long one `run()` of `vcpu` may hold its thread (undefined: the backend's default). A
   * live migration and a debugger letting the guest run shorten it for soft inline vCPUs, which
   * share the main thread with their sockets (a Ctrl-C is then served within milliseconds).
   */
  timeSlice?(vcpu: Vcpu, ms: number | undefined): void;
  /** Backend detail for an internal-error exit of `vcpu` (the soft hart's fault text). */
  faultDetail?(vcpu: Vcpu): string | undefined;
  /**
   * Makes a synchronous `run()` return (as `intr`) soon after `deadline` (`performance.now()`
   * time) even while the guest never exits, for vCPUs without `kick()` (KVM: SIGALRM).
   */
  armDeadline?(deadline: number): Disposable;
}
