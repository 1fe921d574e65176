/**
 * The RISC-V demo guest (guests/riscv/demo) on the soft backend as a `SnapshotMachine`: booted
 * like the soft backend's `runSoftDemo()` (RAM at 0x8000_0000, image at 0x8020_0000, pc = load
 * address, a0 = hart 0, a1 = 0, `sbi_ext.dbcn` enabled before the first run), the forwarded SBI
 * console served by the VMM's `SbiConsole`, and the SRST shutdown as the end.
 *
 * Config (`vmm.machine`): `{ kind: "riscv-demo", memoryBytes }`. The execution mode (inline or
 * threaded) is not part of the machine: a snapshot of either mode restores into either.
 */
import { readFileSync } from "node:fs";
import { lookupReg } from "../../../abi/catalog.js";
import type { RegId } from "../../../abi/regid.js";
import {
  allocGuestMemory,
  createSoftVm,
  type SoftMode,
  type SoftVcpu,
  type SoftVm,
} from "../../../backends/soft/index.js";
import {
  DEMO_LOAD_ADDRESS,
  DEMO_RAM_BASE,
  softDemoImagePath,
} from "../../../backends/soft/demo.js";
import type { Vcpu, VcpuExit } from "../../../backends/vcpu.js";
import { SbiConsole } from "../../sbi-console.js";
import { physView } from "../../../backends/soft/guestmem.js";
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
export const RISCV_DEMO_KIND = "riscv-demo";
/** KVM_SYSTEM_EVENT_SHUTDOWN (include/uapi/linux/kvm.h). */
const SYSTEM_EVENT_SHUTDOWN = 1;
/** Default guest RAM: 16 MiB, as `runSoftDemo()`. */
export const RISCV_DEMO_MEMORY = 16 << 20;

/** Options of the RISC-V demo machine. */
export interface RiscvDemoOptions {
  /** Where the vCPU runs (default "inline"). */
  readonly mode?: SoftMode;
  /** Guest RAM bytes (default 16 MiB). */
  readonly memoryBytes?: number;
  /** Wraps each vCPU, e.g. to add registers (tests). */
  readonly wrapVcpu?: (vcpu: Vcpu) => Vcpu;
}

const rv = (name: string): RegId => lookupReg("riscv", name).id;

/** The RISC-V demo on the soft backend. */
export class RiscvDemoMachine implements SnapshotMachine {
  readonly arch = "riscv" as const;
  readonly backend: "soft-inline" | "soft-threaded";
  readonly vcpus: readonly Vcpu[];
  readonly #vm: SoftVm;
  readonly #raw: SoftVcpu;
  readonly #memoryBytes: number;
  readonly #counter = new ExitCounter();
  readonly #console: SbiConsole;
  #out: number[] = [];
  #pending = false;

  private constructor(vm: SoftVm, memoryBytes: number, wrap?: (v: Vcpu) => Vcpu) {
    this.#vm = vm;
    this.backend = vm.mode === "threaded" ? "soft-threaded" : "soft-inline";
    this.#memoryBytes = memoryBytes;
    this.#raw = vm.createVcpu();
    this.vcpus = [wrap === undefined ? this.#raw : wrap(this.#raw)];
    this.#console = new SbiConsole(
      (bytes) => {
        this.#out.push(...bytes);
      },
      {
        read: (gpa, length) => physView(vm.memslots(), gpa, length)?.slice(),
        write: (gpa, bytes) => {
          const view = physView(vm.memslots(), gpa, bytes.length);
          view?.set(bytes);
          return view !== undefined;
        },
      },
    );
  }

  /**
   * Boots the demo guest in a new soft VM, ready for its first `step()`.
   * @throws {RangeError} if the image does not fit in guest RAM.
   */
  static boot(options: RiscvDemoOptions = {}): RiscvDemoMachine {
    const memoryBytes = options.memoryBytes ?? RISCV_DEMO_MEMORY;
    const image = new Uint8Array(readFileSync(softDemoImagePath()));
    const loadOffset = Number(DEMO_LOAD_ADDRESS - DEMO_RAM_BASE);
    if (image.length > memoryBytes - loadOffset)
      throw new RangeError(`A ${image.length}-byte image does not fit in ${memoryBytes} bytes`);
    const vm = createSoftVm({ mode: options.mode ?? "inline" });
    try {
      const ram = allocGuestMemory(memoryBytes);
      ram.set(image, loadOffset);
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: DEMO_RAM_BASE, memory: ram });
      const m = new RiscvDemoMachine(vm, memoryBytes, options.wrapVcpu);
      const vcpu = m.#raw;
      vcpu.setOneReg(rv("core.pc"), DEMO_LOAD_ADDRESS);
      vcpu.setOneReg(rv("core.a0"), 0n);
      vcpu.setOneReg(rv("core.a1"), 0n);
      vcpu.setOneReg(rv("sbi_ext.dbcn"), 1n);
      return m;
    } catch (error) {
      vm.close();
      throw error;
    }
  }

  /**
   * An empty machine shaped like a snapshot: soft VM, memslots and vCPU 0, never run — the
   * destination of a restore.
   */
  static empty(options: RiscvDemoOptions, layout: readonly MemoryLayout[]): RiscvDemoMachine {
    const vm = createSoftVm({ mode: options.mode ?? "inline" });
    try {
      for (const l of layout) {
        vm.setUserMemoryRegion({
          slot: l.slot,
          guestPhysAddr: l.gpa,
          memory: allocGuestMemory(l.size),
          readonly: memslotOptions(l.flags).readOnly,
          logDirty: memslotOptions(l.flags).logDirty,
        });
      }
      return new RiscvDemoMachine(vm, options.memoryBytes ?? RISCV_DEMO_MEMORY, options.wrapVcpu);
    } catch (error) {
      vm.close();
      throw error;
    }
  }

  /** The soft vCPU (for soft-only checks). */
  get softVcpu(): SoftVcpu {
    return this.#raw;
  }

  config(): MachineConfig {
    return { kind: RISCV_DEMO_KIND, memoryBytes: this.#memoryBytes };
  }

  progress(): RunProgress {
    return this.#counter.progress();
  }

  output(): Uint8Array {
    return Uint8Array.from(this.#out);
  }

  step(options: StepOptions = {}): MachineStep {
    const vcpu = this.vcpus[0] ?? this.#raw;
    for (;;) {
      const exit = vcpu.run();
      if (exit.kind === "intr") {
        // the time slice ended: nothing for the VMM to do
        if (options.interruptible === true) return { exit, outcome: "interrupted" };
        continue;
      }
      this.#counter.count(exit);
      return { exit, outcome: this.#handle(exit) };
    }
  }

  #handle(exit: VcpuExit): MachineStep["outcome"] {
    if (exit.kind === "system_event" && exit.type === SYSTEM_EVENT_SHUTDOWN) return "finished";
    if (exit.kind !== "riscv_sbi" || !this.#console.handle(exit)) return "unexpected";
    // The kernel writes ret[] to a0/a1 and moves pc past the ecall on the next KVM_RUN.
    this.#pending = true;
    return "continue";
  }

  quiesce(): void {
    if (!this.#pending) return;
    const area = this.#raw.runArea;
    area.immediateExit = 1;
    let exit: VcpuExit;
    try {
      exit = this.#raw.run();
    } finally {
      area.immediateExit = 0;
    }
    if (exit.kind !== "intr")
      throw new Error(`KVM_RUN with immediate_exit returned a ${exit.kind} exit, not EINTR`);
    this.#pending = false;
  }

  memory(): MemoryRegion[] {
    return this.#vm.memslots().map((s) => ({
      slot: s.slot,
      flags: memslotFlags({ readOnly: s.readonly, logDirty: s.dirty !== undefined }),
      gpa: BigInt(s.gpa),
      data: s.bytes,
    }));
  }

  loadMemory(regions: readonly MemoryRegion[]): void {
    const slots = this.#vm.memslots();
    for (const r of regions) {
      const slot = slots.find((s) => s.slot === r.slot);
      if (slot === undefined) continue;
      // The slots are fresh (all zero): write only the pages the snapshot holds.
      forEachStoredPage(r, (offset, bytes) => {
        slot.bytes.set(bytes, offset);
      });
    }
  }

  loadProgress(output: Uint8Array, progress: RunProgress): void {
    this.#out = [...output];
    this.#counter.load(progress);
  }

  close(): void {
    this.#vm.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
