/**
 * The contract between the machine (./machine.ts: vCPU loops, pause, timeout, console) and its
 * per-architecture part (src/vmm/arch/<arch>/: boot, device tree, exit handling), which every
 * arch folder exports under the same name, `archMachine`.
 */
import type { Vcpu, VcpuExit, Vm } from "../../backends/vcpu.js";
import type { BootPlan } from "../boot-plan.js";
import type { ImageArch } from "../image.js";
import type { InputSource, RunEnding } from "../runner-types.js";
import type { Device } from "../devices/types.js";
import type { BlockBackend } from "../devices/virtio/disk.js";
import type { MachineBackend } from "./backend.js";
import type { ConsoleSink } from "./console-sink.js";

/** What an arch part answers for one exit. */
export type ExitAction =
  | RunEnding
  | "continue"
  /** Continue, but the vCPU produced console output the host could not take yet. */
  | "congested"
  | undefined;

/** What the machine lends its arch part. */
export interface MachineIo {
  /** Guest console output (backpressure: see ./console-sink.ts). */
  readonly console: ConsoleSink;
  /** Guest console input. */
  readonly input: InputSource;
  /** Reports an access no device claimed and what became of it. */
  readonly unclaimed: (space: string, address: bigint | number, effect: string) => void;
}

/** The user-visible shape of a machine: everything but the boot payload. */
export interface MachineShape {
  /** vCPUs (`--cpus`); 1 by default. */
  readonly cpus: number;
  /** RISC-V `/chosen/bootargs` (`--cmdline`). */
  readonly cmdline?: string;
  /** Opened disks (`--disk`), one virtio-blk device each, in order. */
  readonly disks?: readonly BlockBackend[];
  /** A virtio-console as the guest console (`--virtio-console`, RISC-V). */
  readonly virtioConsole?: boolean;
  /** x86 demo guest: the n it reads from port 0xEA (arch/x86/demo-input.ts). */
  readonly demoInput?: number;
  /**
   * x86: create KVM's in-kernel irqchip (8259 pair, IOAPIC, LAPICs) for COM1's IRQ 4; default
   * true. The demo has none: it polls, and its HLT then reaches the VMM as a `hlt` exit.
   */
  readonly irqchip?: boolean;
  /** Guest RAM logs dirty pages (KVM_MEM_LOG_DIRTY_PAGES) so the guest can live-migrate. */
  readonly logDirty?: boolean;
}

/** What the command line asked of the machine, checked before anything is opened. */
export interface ShapeRequest {
  readonly cpus: number;
  readonly cmdline?: string;
  /** Number of `--disk`s. */
  readonly disks: number;
  /** `--mode`. */
  readonly mode?: string;
  /** `--virtio-console`. */
  readonly virtioConsole?: boolean;
}

/** One guest RAM region of a machine: a memslot with its KVM_MEM_* flags. */
export interface RamSlot {
  readonly slot: number;
  readonly gpa: bigint;
  /** Bytes; a multiple of 4096. */
  readonly size: number;
  /** KVM_MEM_READONLY / KVM_MEM_LOG_DIRTY_PAGES (src/vmm/snapshot/memslot-flags.ts). */
  readonly flags: number;
}

/** What an empty machine is built from (a restore or migration destination): no payload. */
export interface MachineLayout extends MachineShape {
  /** Guest RAM, every memslot. */
  readonly ram: readonly RamSlot[];
  /** Facts of the machine the state comes from (DTB address, x86 mode). */
  readonly facts?: Readonly<Record<string, string>>;
}

/** A device of a machine and where the guest finds it (the machine description's entry). */
export interface MachineDevice {
  readonly device: Device;
  /** What it is: "riscv,plic0", "ns16550a", "virtio-blk", … */
  readonly kind: string;
  /** MMIO base or I/O port. */
  readonly address?: bigint;
  /** Interrupt line (PLIC source, GSI). */
  readonly irq?: number;
}

/** A booted arch part: VM, vCPUs in their start state, devices wired. */
export interface ArchMachine extends Disposable {
  readonly vm: Vm;
  readonly vcpus: readonly Vcpu[];
  /** Every device with saved state, in DEVICE-section order. */
  readonly devices: readonly MachineDevice[];
  /** Name of the program counter in messages: "pc" or "rip". */
  readonly pcName: string;
  /** Facts for the summary (`{ dtbAddress: "0x87e00000" }`, `{ x86Mode: "long" }`). */
  readonly facts: Readonly<Record<string, string>>;
  /**
   * Handles an exit of `vcpu` this architecture knows; `undefined` lets the machine apply the
   * common rules (unclaimed MMIO, faults).
   */
  handle(exit: VcpuExit, vcpu: Vcpu): ExitAction;
  /** The program counter of `vcpu`. */
  pc(vcpu: Vcpu): bigint;
  /** Called every few ms while the machine runs: pull console input into devices. */
  poll?(): void;
}

/** One architecture: what the machine calls, exported by each arch folder as `archMachine`. */
export interface ArchDefinition {
  readonly arch: ImageArch;
  /**
   * Refuses options that do not apply to this architecture.
   * @throws OptionValueError naming the option.
   */
  check(request: ShapeRequest): void;
  /**
   * Creates the VM through `backend`, writes the plan, sets every vCPU's start state.
   * @throws ImageError when the final boot structures do not fit; backend errors pass through.
   */
  start(plan: BootPlan, shape: MachineShape, backend: MachineBackend, io: MachineIo): ArchMachine;
  /**
   * Builds an empty machine (VM, memslots with their flags, vCPUs, devices wired, RAM zero, no
   * boot payload): the destination that a snapshot's or a migration stream's state is applied to.
   * @throws backend errors.
   */
  build(layout: MachineLayout, backend: MachineBackend, io: MachineIo): ArchMachine;
}
