/**
 * The x86 part of the machine (`archMachine`): one VM with RAM at guest-physical 0, each vCPU
 * prepared by the backend (KVM: the supported CPUID) and set to the start state of
 * `--x86-mode` (../../x86-boot.ts: GDT, TSS and page tables already in the plan's blobs), and
 * the console devices of ../../console.ts — 0xe9, COM1 and the exit port 0xf4.
 *
 * Registers move through the `Vcpu` interface only: the REGS and SREGS pseudo-registers
 * (src/abi/arch/x86/pseudo.ts) carry `struct kvm_regs` / `struct kvm_sregs`.
 *
 * `--cpus N` for bare-metal guests: every vCPU starts at the entry in the same mode with the
 * same registers except `rdi` = its index (0 for the boot vCPU), so a guest picks its own stack
 * and work from it; x86 has no SBI HSM, and without an in-kernel irqchip there are no INIT/SIPI
 * IPIs to start them later.
 *
 * HLT: without an in-kernel irqchip KVM returns every HLT to userspace (KVM_EXIT_HLT,
 * arch/x86/kvm/x86.c `kvm_emulate_halt`). With RFLAGS.IF = 0 that is the guest's way to stop;
 * with IF = 1 it waits for an interrupt, and this machine has no interrupt sources, so the run
 * ends as "idle" rather than waiting forever.
 */
import {
  X86_PSEUDO,
  pseudoValueFromStruct,
  structFromPseudoValue,
} from "../../../abi/arch/x86/pseudo.js";
import {
  decodeKvmRegs,
  decodeKvmSregs,
  encodeKvmRegs,
  encodeKvmSregs,
  type KvmRegs,
} from "../../../abi/kvm/x86-structs.js";
import type { Vcpu, VcpuExit, Vm } from "../../../backends/vcpu.js";
import { writeBootPlan, type BootPlan } from "../../boot-plan.js";
import { LSR, X86Console, X86_CONSOLE_PORTS } from "../../console.js";
import { serviceIoExit } from "../../io.js";
import { exitPortEnding, haltEnding, idleEnding } from "../../runner-status.js";
import { OptionValueError } from "../../size.js";
import type { X86BootState } from "../../x86-boot.js";
import type { MachineBackend } from "../../machine/backend.js";
import { memslotOptions } from "../../snapshot/memslot-flags.js";
import type {
  ArchDefinition,
  ArchMachine,
  ExitAction,
  MachineDevice,
  MachineIo,
  MachineLayout,
} from "../../machine/types.js";

/** RFLAGS.IF (SDM Vol. 1 §3.4.3.3). */
const RFLAGS_IF = 0x200n;
/** Bytes of stdin pulled into the UART at a time. */
const INPUT_CHUNK = 256;
const SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

function getRegs(vcpu: Vcpu): KvmRegs {
  return decodeKvmRegs(structFromPseudoValue(X86_PSEUDO.REGS, vcpu.getOneReg(X86_PSEUDO.REGS.id)));
}

/** Writes the boot state into a fresh vCPU, keeping apic_base and the interrupt bitmap. */
function applyBootState(vcpu: Vcpu, boot: X86BootState): void {
  const { SREGS, REGS } = X86_PSEUDO;
  const sregs = decodeKvmSregs(structFromPseudoValue(SREGS, vcpu.getOneReg(SREGS.id)));
  for (const seg of SEGMENTS) Object.assign(sregs[seg], boot.sregs[seg]);
  Object.assign(sregs.gdt, boot.sregs.gdt);
  Object.assign(sregs.idt, boot.sregs.idt);
  const { cr0, cr2, cr3, cr4, cr8, efer } = boot.sregs;
  Object.assign(sregs, { cr0, cr2, cr3, cr4, cr8, efer });
  vcpu.setOneReg(SREGS.id, pseudoValueFromStruct(SREGS, encodeKvmSregs(sregs)));
  const regs = { ...boot.regs, rdi: BigInt(vcpu.index) };
  vcpu.setOneReg(REGS.id, pseudoValueFromStruct(REGS, encodeKvmRegs(regs)));
}

class X86Machine implements ArchMachine {
  readonly pcName = "rip";
  readonly facts: Readonly<Record<string, string>>;
  /**
   * No device with saved state yet: the ports of ../../console.ts keep no state a polled guest
   * depends on across a snapshot (0xe9 and 0xf4 none; COM1's line settings are rewritten by
   * any driver that opens it).
   */
  readonly devices: readonly MachineDevice[] = [];
  private readonly console: X86Console;
  private congested = false;

  constructor(
    readonly vm: Vm,
    readonly vcpus: readonly Vcpu[],
    facts: Readonly<Record<string, string>>,
    private readonly io: MachineIo,
  ) {
    this.facts = facts;
    this.console = new X86Console((bytes) => {
      if (!io.console.write(bytes)) this.congested = true;
    });
  }

  handle(exit: VcpuExit, vcpu: Vcpu): ExitAction {
    if (exit.kind === "io") {
      this.congested = false;
      if (exit.direction === "in") this.feedUart(exit.port);
      const result = serviceIoExit(this.console, exit);
      const effect = exit.direction === "in" ? "read as all-ones" : "ignored";
      for (const port of result.unhandled) {
        this.io.unclaimed(`port ${exit.direction}`, port, effect);
      }
      if (result.exitStatus !== undefined) return exitPortEnding(result.exitStatus);
      return this.takeCongested() ? "congested" : "continue";
    }
    if (exit.kind === "hlt") {
      return (getRegs(vcpu).rflags & RFLAGS_IF) === 0n ? haltEnding() : idleEnding();
    }
    return undefined;
  }

  /** Before a read from COM1 finds its receive buffer empty, pulls what stdin has. */
  private feedUart(port: number): void {
    const offset = port - X86_CONSOLE_PORTS.com1;
    if (offset < 0 || offset >= 8) return;
    if ((this.console.uart.read(5) & LSR.DR) !== 0) return;
    const bytes = this.io.input.read(INPUT_CHUNK);
    if (bytes !== null && bytes.length > 0) this.console.uart.pushInput(bytes);
  }

  /** Whether output since the last call found the host side full (and clears it). */
  private takeCongested(): boolean {
    const congested = this.congested;
    this.congested = false;
    return congested;
  }

  pc(vcpu: Vcpu): bigint {
    return getRegs(vcpu).rip;
  }

  [Symbol.dispose](): void {
    this.vm.close();
  }
}

/** x86: boot, console ports and exit handling. */
export const archMachine: ArchDefinition = {
  arch: "x86",
  check(request) {
    if (request.mode !== undefined) {
      throw new OptionValueError(
        "--mode",
        "applies to the soft backend only (x86 guests run on kvm)",
      );
    }
    if (request.disks > 0) {
      throw new OptionValueError("--disk", "applies to RISC-V guests (virtio-blk on virtio-mmio)");
    }
    if (request.cmdline !== undefined) {
      throw new OptionValueError(
        "--cmdline",
        "applies to RISC-V guests (the device tree's /chosen/bootargs); x86 guests get none",
      );
    }
  },
  start(plan: BootPlan, shape, backend: MachineBackend, io: MachineIo) {
    if (plan.arch !== "x86") throw new TypeError("the x86 machine needs an x86 boot plan");
    backend.check?.();
    const vm = backend.createVm();
    try {
      const memory = vm.addMemory({
        guestPhysAddr: plan.ram.base,
        size: Number(plan.ram.size),
        logDirty: shape.logDirty === true,
      });
      // Through views: RAM above 4 GiB has no single `bytes` array (h1, issue 12 point 1).
      writeBootPlan(plan, memory);
      const vcpus: Vcpu[] = [];
      for (let i = 0; i < shape.cpus; i++) {
        const vcpu = vm.createVcpu();
        backend.prepareVcpu?.(vcpu);
        applyBootState(vcpu, plan.x86);
        vcpus.push(vcpu);
      }
      return new X86Machine(vm, vcpus, { x86Mode: plan.x86.mode }, io);
    } catch (error) {
      vm.close();
      throw error;
    }
  },
  build(layout: MachineLayout, backend: MachineBackend, io: MachineIo) {
    backend.check?.();
    const vm = backend.createVm();
    try {
      for (const r of layout.ram) {
        vm.addMemory({
          slot: r.slot,
          guestPhysAddr: r.gpa,
          size: r.size,
          ...memslotOptions(r.flags),
        });
      }
      const vcpus: Vcpu[] = [];
      for (let i = 0; i < layout.cpus; i++) {
        const vcpu = vm.createVcpu();
        backend.prepareVcpu?.(vcpu);
        vcpus.push(vcpu);
      }
      return new X86Machine(vm, vcpus, layout.facts ?? {}, io);
    } catch (error) {
      vm.close();
      throw error;
    }
  },
};
