/**
 * The one place that picks a concrete backend for a machine (src/vmm never imports one): the
 * KVM backend for x86 guests, the soft backend for RISC-V guests, each adapted to the
 * machine's `MachineBackend` hooks; and `--backend`/`--mode` as the commands parse them. A demo
 * run without `--backend` takes KVM when its device opens, else the soft backend with a
 * one-line notice naming the device that failed (`/dev/kvm` or `REGVISOR_KVM_DEVICE`).
 */
import { createRequire } from "node:module";
import type * as KvmBackend from "../backends/kvm/index.js";
import type { KvmSystem } from "../backends/kvm/index.js";
import {
  DEFAULT_TIME_SLICE_MS,
  SOFT_MAX_SLOT_BYTES,
  SoftVcpu,
  createSoftVm,
  type HartFactory,
} from "../backends/soft/index.js";
import { MAX_VCPUS as SOFT_MAX_VCPUS } from "../backends/soft/shared.js";
import { RegvisorError } from "../errors.js";
import type { ImageArch } from "../vmm/image.js";
import type { MachineBackend, RunMode } from "../vmm/machine/backend.js";
import { MAX_CPUS } from "../vmm/runner-core.js";
import { startKicker } from "../vmm/runner-kick.js";
import { UsageError } from "./errors.js";

const require = createRequire(import.meta.url);
let kvmModule: typeof KvmBackend | undefined;

function isKvmBackend(module: unknown): module is typeof KvmBackend {
  return typeof module === "object" && module !== null && "KvmSystem" in module;
}

/**
 * The KVM backend's code, loaded on first use: it brings koffi (a native library) and the whole
 * ioctl layer, ~50 ms of a soft Linux boot that never uses them. `backendFor()` is synchronous
 * (the machine asks for its backend while it builds), so this is Node's synchronous
 * `require()` of an ES module (enabled by default since Node 20.19, package.json "engines").
 * The CLI bundle builds the backend as its own file and requires that (scripts/bundle.mjs).
 */
export function kvmBackendCode(): typeof KvmBackend {
  if (kvmModule !== undefined) return kvmModule;
  const module: unknown = require("../backends/kvm/index.js");
  if (!isKvmBackend(module)) throw new Error("Cannot load the KVM backend: unexpected module");
  return (kvmModule = module);
}

/** /dev/kvm cannot be used for an x86 guest. */
export class KvmUnavailableError extends RegvisorError {
  constructor(reason: string) {
    super(
      "KVM_UNAVAILABLE",
      `Cannot run an x86 guest: /dev/kvm is not usable (${reason}); x86 guests need the KVM backend`,
    );
  }
}

/**
 * The soft backend as `regvisor run` uses it; `hartFactory` (tests, benchmarks) picks the harts'
 * options, e.g. an engine tier.
 */
export function softBackend(mode: RunMode, hartFactory?: HartFactory): MachineBackend {
  return {
    name: "soft",
    arch: "riscv",
    mode,
    maxVcpus: SOFT_MAX_VCPUS,
    // One memslot is one typed array (src/backends/soft/vm.ts).
    maxMemBytes: SOFT_MAX_SLOT_BYTES,
    createVm: () => createSoftVm(hartFactory === undefined ? { mode } : { mode, hartFactory }),
    instructions: (vcpu) => (vcpu instanceof SoftVcpu ? vcpu.instructionsRetired() : undefined),
    faultDetail: (vcpu) => (vcpu instanceof SoftVcpu ? vcpu.faultReason() : undefined),
    timeSlice: (vcpu, ms) => {
      if (vcpu instanceof SoftVcpu) vcpu.setRunBudget({ timeSliceMs: ms ?? DEFAULT_TIME_SLICE_MS });
    },
  };
}

function kvmBackend(owned: { system?: KvmSystem }): MachineBackend {
  return {
    name: "kvm",
    arch: "x86",
    maxVcpus: MAX_CPUS,
    check() {
      const unusable = kvmBackendCode().kvmUnavailableReason();
      if (unusable !== undefined) throw new KvmUnavailableError(unusable);
    },
    createVm() {
      owned.system ??= kvmBackendCode().KvmSystem.open();
      return owned.system.createVm();
    },
    prepareVcpu(vcpu) {
      if (vcpu instanceof kvmBackendCode().KvmVcpu) vcpu.setCpuidFromSupported();
    },
    // A KVM_RUN that never exits keeps the main thread in the ioctl: SIGALRM gets it out.
    armDeadline: (deadline) => startKicker(Math.max(0, deadline - performance.now())),
  };
}

/**
 * Picks and owns the backends of one run; dispose it after the machine. The soft backend runs
 * inline by default, and threaded (each vCPU in its own Worker, `runAsync`) when the machine
 * has several vCPUs: inline vCPUs share the main thread, so one waiting in WFI would hold up
 * the others.
 */
export function backendPicker(options: { readonly mode?: RunMode; readonly cpus?: number } = {}): {
  readonly backendFor: (arch: ImageArch) => MachineBackend;
} & Disposable {
  const owned: { system?: KvmSystem } = {};
  return {
    backendFor: (arch) =>
      arch === "x86"
        ? kvmBackend(owned)
        : softBackend(options.mode ?? ((options.cpus ?? 1) > 1 ? "threaded" : "inline")),
    [Symbol.dispose]() {
      owned.system?.close();
    },
  };
}

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
