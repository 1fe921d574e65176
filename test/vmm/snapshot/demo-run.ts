/**
 * Test helper: the bundled demo guests on the machine (src/vmm/demo.ts through `runGuest`), the
 * way the snapshot tests drive them — an uninterrupted baseline, a run stopped at exit N with the
 * machine still alive for inspection and capture, and an in-process restore with hooks before
 * the restored guest runs.
 */
import { backendPicker } from "../../../src/cli/backends.js";
import type { Vcpu, Vm } from "../../../src/backends/vcpu.js";
import { DEMO_SPECS, demoImage } from "../../../src/vmm/demo.js";
import type { BackendName, MachineBackend, RunMode } from "../../../src/vmm/machine/backend.js";
import type { Machine, MachineRunResult } from "../../../src/vmm/machine/machine.js";
import { runGuest, type RunSummary } from "../../../src/vmm/runner.js";
import { noInput } from "../../../src/vmm/runner-input.js";
import { restoreGuest, type RestoreSummary } from "../../../src/vmm/runner-restore.js";
import {
  captureVcpu,
  decodeSnapshot,
  encodeSnapshot,
  type RestoreSnapshotOptions,
  type Snapshot,
} from "../../../src/vmm/snapshot/index.js";
import { regMap, type RegMap } from "./e2e-helpers.js";

const text = new TextDecoder();

/** Options of a demo run. */
export interface DemoOptions {
  readonly mode?: RunMode;
  /** x86: the n the guest reads from port 0xEA (default 90). */
  readonly n?: number;
  /** Wraps each vCPU (registers a backend does not have). */
  readonly wrapVcpu?: (vcpu: Vcpu) => Vcpu;
  /** Guest RAM (default: the demo's). */
  readonly memSize?: bigint;
}

/** Exits to the VMM (`intr` returns are not). */
export function counted(s: Pick<RunSummary, "exits" | "exitKinds">): number {
  return s.exits - (s.exitKinds.intr ?? 0);
}

/** Runs a demo through the machine (`regvisor run` without FILE), final registers collected. */
export async function runDemo(
  backend: BackendName,
  options: DemoOptions & {
    readonly stopAtExit?: number;
    readonly afterRun?: (m: Machine, r: MachineRunResult) => Promise<void> | void;
  },
): Promise<RunSummary & { output: string }> {
  const spec = DEMO_SPECS[backend === "kvm" ? "x86" : "riscv"];
  using backends = backendPicker(options.mode === undefined ? {} : { mode: options.mode });
  let output = "";
  const demoInput = spec.demoInput === undefined ? undefined : (options.n ?? spec.demoInput);
  const wrap = options.wrapVcpu;
  const summary = await runGuest({
    file: demoImage(spec),
    guest: "demo",
    backendFor: (arch) =>
      wrap === undefined ? backends.backendFor(arch) : wrapped(backends.backendFor(arch), wrap),
    backend,
    memSize: options.memSize ?? spec.memSize,
    loadAddr: spec.loadAddr,
    ...(spec.x86Mode === undefined ? {} : { x86Mode: spec.x86Mode }),
    ...(demoInput === undefined ? {} : { demoInput }),
    ...(spec.irqchip === undefined ? {} : { irqchip: spec.irqchip }),
    output: (b) => (output += text.decode(b)),
    input: noInput(),
    collectRegisters: options.stopAtExit === undefined,
    ...(options.stopAtExit === undefined ? {} : { stopAtExit: options.stopAtExit }),
    ...(options.afterRun === undefined ? {} : { afterRun: options.afterRun }),
  });
  return { ...summary, output };
}

/** An uninterrupted run: output, exits to the VMM and vCPU 0's final registers by name. */
export async function demoBaseline(
  backend: BackendName,
  options: DemoOptions = {},
): Promise<{ output: string; exits: number; regs: RegMap }> {
  let regs: RegMap = new Map();
  const s = await runDemo(backend, {
    ...options,
    afterRun: (m) => {
      const [vcpu] = m.vcpus;
      if (vcpu !== undefined) regs = regMap(captureVcpu(vcpu).regs);
    },
  });
  if (s.ending.status !== 0) throw new Error(`baseline run ended: ${s.ending.message}`);
  return { output: s.output, exits: counted(s), regs };
}

/** A demo stopped at exit N and snapshotted. */
export interface DemoStop {
  readonly bytes: Uint8Array;
  readonly snapshot: Snapshot;
  readonly output: string;
  readonly summary: RunSummary;
}

/**
 * Runs a demo to exit `n`, calls `inspect` with the stopped machine (before capture: its vCPUs
 * still hold an exit in progress), then captures and encodes the machine.
 */
export async function demoSnapshot(
  backend: BackendName,
  n: number,
  options: DemoOptions & { readonly inspect?: (m: Machine) => void | Promise<void> } = {},
): Promise<DemoStop> {
  let bytes: Uint8Array | undefined;
  const s = await runDemo(backend, {
    ...options,
    stopAtExit: n,
    afterRun: async (m, r) => {
      if (r.ending.reason !== "snapshot") throw new Error(`stopped early: ${r.ending.message}`);
      await options.inspect?.(m);
      bytes = encodeSnapshot(await m.captureState());
    },
  });
  if (bytes === undefined) throw new Error("no snapshot was taken");
  return { bytes, snapshot: decodeSnapshot(bytes), output: s.output, summary: s };
}

/** A backend whose vCPUs go through `wrap` (registers a backend does not have). */
function wrapped(backend: MachineBackend, wrap: (vcpu: Vcpu) => Vcpu): MachineBackend {
  return {
    ...backend,
    createVm: () => {
      const vm = backend.createVm();
      return new Proxy(vm, {
        get(target, key) {
          if (key === "createVcpu") return () => wrap(target.createVcpu());
          const value: unknown = Reflect.get(target, key, target);
          return typeof value === "function" ? (value as () => unknown).bind(target) : value;
        },
      }) satisfies Vm;
    },
  };
}

/** Options of `restoreDemo()`. */
export interface RestoreDemoOptions {
  readonly mode?: RunMode;
  readonly policy?: RestoreSnapshotOptions;
  readonly wrapVcpu?: ((vcpu: Vcpu) => Vcpu) | undefined;
  /** Called with the restored machine before it runs. */
  readonly beforeRun?: (m: Machine) => void;
  /** Called with the machine after its run. */
  readonly afterRun?: (m: Machine) => void;
}

/** Restores a snapshot in this process and runs it to its end. */
export async function restoreDemo(
  input: Uint8Array | Snapshot,
  options: RestoreDemoOptions = {},
): Promise<RestoreSummary & { output: string }> {
  const snapshot = input instanceof Uint8Array ? decodeSnapshot(input) : input;
  let output = "";
  const pickers: Disposable[] = [];
  try {
    const s = await restoreGuest({
      snapshot,
      backendFor: (arch, mode) => {
        const picker = backendPicker(mode === undefined ? {} : { mode });
        pickers.push(picker);
        const backend = picker.backendFor(arch);
        return options.wrapVcpu === undefined ? backend : wrapped(backend, options.wrapVcpu);
      },
      ...(options.mode === undefined ? {} : { mode: options.mode }),
      ...(options.policy === undefined ? {} : { policy: options.policy }),
      output: (b) => (output += text.decode(b)),
      input: noInput(),
      collectRegisters: false,
      ...(options.beforeRun === undefined ? {} : { onMachine: options.beforeRun }),
      ...(options.afterRun === undefined ? {} : { afterRun: options.afterRun }),
    });
    return { ...s, output };
  } finally {
    for (const p of pickers) p[Symbol.dispose]();
  }
}
