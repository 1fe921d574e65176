/**
 * The machine kinds a whole-machine snapshot can name in its `vmm.machine` device, as data:
 * each kind checks its config and builds an empty destination laid out like the snapshot.
 */
import type { ArchName } from "../../../abi/regid.js";
import type { SoftMode } from "../../../backends/soft/index.js";
import type { Vcpu } from "../../../backends/vcpu.js";
import { FLAT_MEMORY_SIZE } from "../../../backends/kvm/flat-guest.js";
import { DEMO_RAM_BASE } from "../../../backends/soft/demo.js";
import {
  layoutProblem,
  type MachineConfig,
  type MemoryLayout,
  type SnapshotMachine,
} from "../machine.js";
import type { SnapshotBackend } from "../model.js";
import { RISCV_DEMO_KIND, RiscvDemoMachine } from "./riscv-demo.js";
import { X86_DEMO_KIND, X86DemoMachine } from "./x86-demo.js";

export { RiscvDemoMachine, RISCV_DEMO_KIND, RISCV_DEMO_MEMORY } from "./riscv-demo.js";
export type { RiscvDemoOptions } from "./riscv-demo.js";
export { X86DemoMachine, X86_DEMO_KIND } from "./x86-demo.js";
export type { X86DemoOptions } from "./x86-demo.js";

/** How to build a restore destination. */
export interface DestinationOptions {
  /** Soft machines: execution mode (default: the snapshot's). Refused for KVM machines. */
  readonly mode?: SoftMode;
  /** Wraps each vCPU (tests: registers a backend does not have). */
  readonly wrapVcpu?: (vcpu: Vcpu) => Vcpu;
}

/** One machine kind. */
export interface MachineKind {
  readonly kind: string;
  readonly arch: ArchName;
  /** Backends a snapshot of this kind may come from. */
  readonly backends: readonly SnapshotBackend[];
  /** Why `config` is unusable, or undefined. */
  configProblem(config: MachineConfig): string | undefined;
  /**
   * The guest RAM this kind has with `config` (checked by `configProblem` first): a snapshot
   * declaring any other is refused before anything is allocated, which bounds the RAM a
   * restore allocates by what the machine really has.
   */
  memoryLayout(config: MachineConfig): readonly MemoryLayout[];
  /** An empty destination (never run) with the snapshot's memory layout. */
  empty(
    config: MachineConfig,
    layout: readonly MemoryLayout[],
    backend: SnapshotBackend,
    options: DestinationOptions,
  ): SnapshotMachine;
}

const isBool = (v: unknown): v is boolean => typeof v === "boolean";
const isInt = (v: unknown, max: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= max;

const x86Demo: MachineKind = {
  kind: X86_DEMO_KIND,
  arch: "x86",
  backends: ["kvm"],
  configProblem: (c) =>
    !isBool(c.irqchip)
      ? '"irqchip" is not a boolean'
      : !isInt(c.n, 93)
        ? '"n" is not an integer in 0..93'
        : undefined,
  memoryLayout: () => [{ slot: 0, flags: 0, gpa: 0n, size: FLAT_MEMORY_SIZE }],
  empty(config, layout, _backend, options) {
    if (options.mode !== undefined)
      throw new TypeError("an execution mode applies to soft-backend snapshots only");
    return X86DemoMachine.empty(
      {
        irqchip: config.irqchip === true,
        n: typeof config.n === "number" ? config.n : 90,
        ...(options.wrapVcpu === undefined ? {} : { wrapVcpu: options.wrapVcpu }),
      },
      layout,
    );
  },
};

const riscvDemo: MachineKind = {
  kind: RISCV_DEMO_KIND,
  arch: "riscv",
  backends: ["soft-inline", "soft-threaded"],
  configProblem: (c) =>
    isInt(c.memoryBytes, 2 ** 32) ? undefined : '"memoryBytes" is not a size up to 4 GiB',
  memoryLayout: (c) => [
    {
      slot: 0,
      flags: 0,
      gpa: DEMO_RAM_BASE,
      size: typeof c.memoryBytes === "number" ? c.memoryBytes : 0,
    },
  ],
  empty(config, layout, backend, options) {
    const mode = options.mode ?? (backend === "soft-threaded" ? "threaded" : "inline");
    return RiscvDemoMachine.empty(
      {
        mode,
        ...(typeof config.memoryBytes === "number" ? { memoryBytes: config.memoryBytes } : {}),
        ...(options.wrapVcpu === undefined ? {} : { wrapVcpu: options.wrapVcpu }),
      },
      layout,
    );
  },
};

/** Why the snapshot's memory `layout` is not what a `kind` machine with `config` has. */
export function kindLayoutProblem(
  kind: MachineKind,
  config: MachineConfig,
  layout: readonly MemoryLayout[],
): string | undefined {
  const problem = layoutProblem(layout, kind.memoryLayout(config));
  return problem === undefined ? undefined : `a ${kind.kind} machine differs: ${problem}`;
}

/** Every machine kind, by name. */
export const MACHINE_KINDS: ReadonlyMap<string, MachineKind> = new Map(
  [x86Demo, riscvDemo].map((k) => [k.kind, k]),
);
