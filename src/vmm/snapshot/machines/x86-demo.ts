/**
 * The x86 demo guest (guests/x86/demo.S) on /dev/kvm as a `SnapshotMachine`: the same VM and
 * exit handling as the KVM backend's `runDemo()` — console on port 0xE9 (OUT), n answered on
 * port 0xEA (IN, 4 bytes), HLT at the end — one exit per `step()`.
 *
 * Config (`vmm.machine`): `{ kind: "x86-demo", irqchip, n }`. With `irqchip` the VM has the
 * in-kernel LAPIC (so the LAPIC pseudo-register travels too); the guest's final HLT then blocks
 * in the kernel instead of exiting, so such runs stop at the last console exit.
 */
import { KvmSystem, type KvmVcpu, type KvmVm } from "../../../backends/kvm/index.js";
import { DEMO_CONSOLE_PORT, DEMO_INPUT_PORT } from "../../../backends/kvm/demo.js";
import { bootFlatGuest, bundledGuest } from "../../../backends/kvm/flat-guest.js";
import type { Vcpu, VcpuExit } from "../../../backends/vcpu.js";
import {
  ExitCounter,
  type MachineConfig,
  type MachineStep,
  type StepOptions,
  type MemoryLayout,
  type RunProgress,
  type SnapshotMachine,
} from "../machine.js";
import { forEachStoredPage } from "../memory-pages.js";
import type { MemoryRegion } from "../model.js";
import { memslotFlags, memslotOptions } from "../memslot-flags.js";

/** Machine kind name. */
export const X86_DEMO_KIND = "x86-demo";

/** Options of the x86 demo machine. */
export interface X86DemoOptions {
  /** Create the in-kernel irqchip (LAPIC); default false, like `regvisor run`. */
  readonly irqchip?: boolean;
  /** Which Fibonacci number the guest computes (0..93); 90 by default. */
  readonly n?: number;
  /** Wraps each vCPU, e.g. to add registers (tests). */
  readonly wrapVcpu?: (vcpu: Vcpu) => Vcpu;
}

interface Parts {
  readonly system: KvmSystem;
  readonly vm: KvmVm;
  readonly vcpu: KvmVcpu;
}

function checkN(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 93)
    throw new RangeError(`n = ${n}: fib(n) fits in u64 only for 0..93`);
  return n;
}

/** The x86 demo on KVM. */
export class X86DemoMachine implements SnapshotMachine {
  readonly arch = "x86" as const;
  readonly backend = "kvm" as const;
  readonly vcpus: readonly Vcpu[];
  readonly #parts: Parts;
  readonly #irqchip: boolean;
  readonly #n: number;
  readonly #counter = new ExitCounter();
  #out: number[] = [];
  #pending = false;

  private constructor(parts: Parts, irqchip: boolean, n: number, wrap?: (v: Vcpu) => Vcpu) {
    this.#parts = parts;
    this.#irqchip = irqchip;
    this.#n = n;
    this.vcpus = [wrap === undefined ? parts.vcpu : wrap(parts.vcpu)];
  }

  /**
   * Boots the demo guest in a new VM, ready for its first `step()`.
   * @throws {KvmError} if /dev/kvm cannot be used.
   */
  static boot(options: X86DemoOptions = {}): X86DemoMachine {
    const n = checkN(options.n ?? 90);
    const irqchip = options.irqchip ?? false;
    const system = KvmSystem.open();
    try {
      const { vm, vcpu } = bootFlatGuest(system, bundledGuest("demo"), { irqchip });
      return new X86DemoMachine({ system, vm, vcpu }, irqchip, n, options.wrapVcpu);
    } catch (error) {
      system.close();
      throw error;
    }
  }

  /**
   * An empty machine shaped like a snapshot: VM, memslots and vCPU 0, never run, registers
   * at their reset values — the destination of a restore.
   * @throws {KvmError} if /dev/kvm cannot be used.
   */
  static empty(options: X86DemoOptions, layout: readonly MemoryLayout[]): X86DemoMachine {
    const irqchip = options.irqchip ?? false;
    const system = KvmSystem.open();
    try {
      const vm = system.createVm({ irqchip });
      for (const l of layout) {
        vm.addMemory({
          slot: l.slot,
          guestPhysAddr: l.gpa,
          size: l.size,
          ...memslotOptions(l.flags),
        });
      }
      const vcpu = vm.createVcpu(0);
      return new X86DemoMachine(
        { system, vm, vcpu },
        irqchip,
        checkN(options.n ?? 90),
        options.wrapVcpu,
      );
    } catch (error) {
      system.close();
      throw error;
    }
  }

  /** The KVM vCPU (for KVM-only checks such as LAPIC and TSC). */
  get kvmVcpu(): KvmVcpu {
    return this.#parts.vcpu;
  }

  config(): MachineConfig {
    return { kind: X86_DEMO_KIND, irqchip: this.#irqchip, n: this.#n };
  }

  progress(): RunProgress {
    return this.#counter.progress();
  }

  output(): Uint8Array {
    return Uint8Array.from(this.#out);
  }

  step(options: StepOptions = {}): MachineStep {
    const vcpu = this.vcpus[0] ?? this.#parts.vcpu;
    for (;;) {
      const exit = vcpu.run();
      if (exit.kind === "intr") {
        // a signal: nothing for the VMM to do
        if (options.interruptible === true) return { exit, outcome: "interrupted" };
        continue;
      }
      this.#counter.count(exit);
      return { exit, outcome: this.#handle(exit) };
    }
  }

  #handle(exit: VcpuExit): MachineStep["outcome"] {
    if (exit.kind === "hlt") return "finished";
    if (exit.kind !== "io") return "unexpected";
    if (exit.direction === "out" && exit.port === DEMO_CONSOLE_PORT) {
      this.#out.push(...exit.data);
    } else if (exit.direction === "in" && exit.port === DEMO_INPUT_PORT) {
      const view = new DataView(exit.data.buffer, exit.data.byteOffset, exit.data.byteLength);
      if (exit.data.byteLength >= 4) view.setUint32(0, this.#n, true);
      else exit.data.fill(0);
    } else {
      return "unexpected";
    }
    // KVM finishes the IN (RAX) or OUT (RIP past the instruction) on the next KVM_RUN.
    this.#pending = true;
    return "continue";
  }

  quiesce(): void {
    if (!this.#pending) return;
    const vcpu = this.#parts.vcpu;
    vcpu.immediateExit = true;
    let exit: VcpuExit;
    try {
      exit = vcpu.run();
    } finally {
      vcpu.immediateExit = false;
    }
    if (exit.kind !== "intr")
      throw new Error(`KVM_RUN with immediate_exit returned a ${exit.kind} exit, not EINTR`);
    this.#pending = false;
  }

  memory(): MemoryRegion[] {
    return this.#parts.vm.memory.map((m) => ({
      slot: m.slot,
      flags: memslotFlags(m),
      gpa: m.guestPhysAddr,
      data: m.bytes,
    }));
  }

  loadMemory(regions: readonly MemoryRegion[]): void {
    // The memslots are fresh mappings (all zero): write only the pages the snapshot holds.
    for (const r of regions) {
      forEachStoredPage(r, (offset, bytes) => {
        this.#parts.vm.writeGuest(r.gpa + BigInt(offset), bytes);
      });
    }
  }

  loadProgress(output: Uint8Array, progress: RunProgress): void {
    this.#out = [...output];
    this.#counter.load(progress);
  }

  close(): void {
    this.#parts.system.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
