/**
 * The x86 part of the machine (`archMachine`): one VM with RAM at guest-physical 0 and the
 * in-kernel irqchip (8259 pair, IOAPIC, a LAPIC per vCPU: `Vm.createIrqchip`, where the backend
 * has it), each vCPU prepared by the backend (KVM: the supported CPUID) and set to the start
 * state of `--x86-mode` (../../x86-boot.ts: GDT, TSS and page tables already in the plan's
 * blobs), and the devices of ./devices.ts — COM1 on IRQ 4, the 0xe9 debug console and the exit
 * port 0xf4. State the kernel keeps per VM travels as devices too: the irqchip (./irqchip.ts)
 * and the kvmclock (./kvmclock.ts; only where the machine's facts say it was saved, so a state
 * from before it still restores).
 *
 * Registers move through the `Vcpu` interface only: the REGS, SREGS, MP_STATE and LAPIC
 * pseudo-registers (src/abi/arch/x86/pseudo.ts) carry the kernel's structs.
 *
 * `--cpus N` for bare-metal guests: every vCPU starts at the entry in the same mode with the
 * same registers except `rdi` = its index (0 for the boot vCPU), so a guest picks its own stack
 * and work from it. With the in-kernel LAPIC, KVM would hold every vCPU but the first in
 * KVM_MP_STATE_UNINITIALIZED until an INIT/SIPI pair (arch/x86/kvm/x86.c
 * `kvm_arch_vcpu_create`); they are made RUNNABLE instead, so all start at once as without it.
 *
 * HLT: with the in-kernel LAPIC, KVM handles HLT itself (arch/x86/kvm/x86.c
 * `__kvm_emulate_halt`: the vCPU sleeps in KVM_RUN until an interrupt) and never exits to
 * userspace. So a vCPU that made no exit for `HALT_PROBE_MS` is kicked and its MP_STATE read:
 * HALTED with RFLAGS.IF = 0 is the guest's way to stop ("halt"); HALTED with IF = 1 while no
 * interrupt source can fire (COM1's IER is 0 and the LAPIC timer is masked or stopped) would
 * never wake, so the run ends as "idle" rather than waiting forever. Without an irqchip KVM
 * returns HLT as KVM_EXIT_HLT and the same rules apply to it directly.
 */
import {
  X86_PSEUDO,
  pseudoValueFromStruct,
  structFromPseudoValue,
} from "../../../abi/arch/x86/pseudo.js";
import { KVM_MP_STATE } from "../../../abi/kvm/constants.js";
import {
  decodeKvmRegs,
  decodeKvmSregs,
  encodeKvmRegs,
  encodeKvmSregs,
  type KvmRegs,
} from "../../../abi/kvm/x86-structs.js";
import type { Vcpu, VcpuExit, Vm } from "../../../backends/vcpu.js";
import { writeBootPlan, type BootPlan } from "../../boot-plan.js";
import { combineDevices, serviceIoExit, type PortDevice } from "../../io.js";
import { exitPortEnding, haltEnding, idleEnding } from "../../runner-status.js";
import { OptionValueError } from "../../size.js";
import type { X86BootState } from "../../x86-boot.js";
import type { IrqLine } from "../../devices/types.js";
import type { MachineBackend } from "../../machine/backend.js";
import { addLayoutMemory } from "../../snapshot/memslot-flags.js";
import type {
  ArchDefinition,
  ArchMachine,
  ExitAction,
  MachineDevice,
  MachineIo,
  MachineLayout,
  MachineShape,
} from "../../machine/types.js";
import { IrqchipState } from "./irqchip.js";
import { KVMCLOCK_FACT, KvmClockState, hasKvmClock } from "./kvmclock.js";
import { DEMO_INPUT_PORT, DemoInput } from "./demo-input.js";
import { X86_PORTS, x86Devices, type X86Devices } from "./devices.js";

/** RFLAGS.IF (SDM Vol. 1 §3.4.3.3). */
const RFLAGS_IF = 0x200n;
/** A vCPU with no exit for this long is checked for an in-kernel HLT (see the module header). */
export const HALT_PROBE_MS = 50;
/** APIC register page offsets (SDM Vol. 3A §11.5.1): LVT timer, initial count; LVT mask bit. */
const APIC_LVTT = 0x320;
const APIC_TMICT = 0x380;
const APIC_LVT_MASKED = 1 << 16;
const SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

function getRegs(vcpu: Vcpu): KvmRegs {
  return decodeKvmRegs(structFromPseudoValue(X86_PSEUDO.REGS, vcpu.getOneReg(X86_PSEUDO.REGS.id)));
}

function getMpState(vcpu: Vcpu): number {
  const bytes = structFromPseudoValue(X86_PSEUDO.MP_STATE, vcpu.getOneReg(X86_PSEUDO.MP_STATE.id));
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(0, true);
}

function setMpState(vcpu: Vcpu, state: number): void {
  const bytes = new Uint8Array(X86_PSEUDO.MP_STATE.structSize);
  new DataView(bytes.buffer).setUint32(0, state, true);
  vcpu.setOneReg(X86_PSEUDO.MP_STATE.id, pseudoValueFromStruct(X86_PSEUDO.MP_STATE, bytes));
}

/** Whether the vCPU's LAPIC timer is armed (LVT timer unmasked, initial count not 0). */
function lapicTimerArmed(vcpu: Vcpu): boolean {
  const page = structFromPseudoValue(X86_PSEUDO.LAPIC, vcpu.getOneReg(X86_PSEUDO.LAPIC.id));
  const view = new DataView(page.buffer, page.byteOffset, page.byteLength);
  const lvtt = view.getUint32(APIC_LVTT, true);
  return (lvtt & APIC_LVT_MASKED) === 0 && view.getUint32(APIC_TMICT, true) !== 0;
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
  /** COM1, the debug console and (the demo) its input port, in DEVICE-section order. */
  readonly devices: readonly MachineDevice[];
  private readonly parts: X86Devices;
  private readonly ports: PortDevice;
  /** `performance.now()` of each vCPU's last exit. */
  private readonly lastExit: number[];
  /** vCPUs kicked to check for an in-kernel HLT, whose `intr` has not come back yet. */
  private readonly probing = new Set<number>();

  constructor(
    readonly vm: Vm,
    readonly vcpus: readonly Vcpu[],
    facts: Readonly<Record<string, string>>,
    private readonly io: MachineIo,
    private readonly irqchip: boolean,
    parts: X86Devices,
    shape: Pick<MachineShape, "demoInput">,
  ) {
    this.facts = facts;
    this.parts = parts;
    const demo = shape.demoInput === undefined ? undefined : new DemoInput(shape.demoInput);
    this.ports = demo === undefined ? parts.ports : combineDevices([parts.ports, demo]);
    this.devices = [
      {
        device: parts.uart,
        kind: "ns16550a",
        address: BigInt(X86_PORTS.com1),
        irq: X86_PORTS.com1Irq,
      },
      { device: parts.debug, kind: "regvisor,debugcon", address: BigInt(X86_PORTS.debug) },
      ...(demo === undefined
        ? []
        : [{ device: demo, kind: "regvisor,demo-input", address: BigInt(DEMO_INPUT_PORT) }]),
      // The 8259s' and IOAPIC's state (masks, vectors, pending lines) lives in the kernel.
      ...(irqchip && vm.getIrqchip !== undefined && vm.setIrqchip !== undefined
        ? [{ device: new IrqchipState(vm), kind: "kvm,irqchip" }]
        : []),
      // The VM's kvmclock lives in the kernel too; a machine whose state predates it has no fact.
      ...(facts.kvmclock === KVMCLOCK_FACT.kvmclock && hasKvmClock(vm)
        ? [{ device: new KvmClockState(vm), kind: "kvm,clock" }]
        : []),
    ];
    this.lastExit = vcpus.map(() => performance.now());
  }

  handle(exit: VcpuExit, vcpu: Vcpu): ExitAction {
    this.lastExit[vcpu.index] = performance.now();
    if (exit.kind === "io") {
      this.parts.takeCongested();
      const result = serviceIoExit(this.ports, exit);
      const effect = exit.direction === "in" ? "read as all-ones" : "ignored";
      for (const port of result.unhandled) {
        this.io.unclaimed(`port ${exit.direction}`, port, effect);
      }
      if (result.exitStatus !== undefined) return exitPortEnding(result.exitStatus);
      return this.parts.takeCongested() ? "congested" : "continue";
    }
    if (exit.kind === "hlt") return this.halted(vcpu) ?? "continue";
    if (exit.kind === "intr" && this.probing.delete(vcpu.index)) {
      if (getMpState(vcpu) === KVM_MP_STATE.HALTED) return this.halted(vcpu) ?? "continue";
    }
    return undefined;
  }

  /** The ending of a halted vCPU, or undefined while an interrupt may still wake it. */
  private halted(vcpu: Vcpu): ExitAction {
    if ((getRegs(vcpu).rflags & RFLAGS_IF) === 0n) return haltEnding();
    const uartCanFire = this.parts.uart.interruptEnables() !== 0;
    if (this.irqchip && (uartCanFire || lapicTimerArmed(vcpu))) return undefined;
    return idleEnding();
  }

  /** Pulls console input into COM1; kicks vCPUs that made no exit lately to check for HLT. */
  poll(): void {
    this.parts.pollInput();
    if (!this.irqchip) return;
    const now = performance.now();
    for (const vcpu of this.vcpus) {
      const last = this.lastExit[vcpu.index] ?? now;
      if (now - last < HALT_PROBE_MS || this.probing.has(vcpu.index)) continue;
      this.probing.add(vcpu.index);
      vcpu.kick?.();
    }
  }

  pc(vcpu: Vcpu): bigint {
    return getRegs(vcpu).rip;
  }

  [Symbol.dispose](): void {
    this.vm.close();
  }
}

/** COM1 and the debug console, IRQ 4 into the in-kernel irqchip when the VM has one. */
function com1(vm: Vm, irqchip: boolean, io: MachineIo): X86Devices {
  const irq: IrqLine = {
    set: (level) => {
      if (irqchip) vm.setIrqLine?.(X86_PORTS.com1Irq, level);
    },
  };
  return x86Devices(io, irq);
}

/** x86: boot, COM1 and the debug and exit ports, exit handling. */
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
    if (request.virtioConsole === true) {
      throw new OptionValueError(
        "--virtio-console",
        "applies to RISC-V guests (virtio-mmio); x86 guests have COM1 at 0x3f8",
      );
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
      // Before any vCPU (KVM_CREATE_IRQCHIP fails with EINVAL after one exists).
      const irqchip =
        shape.irqchip !== false && vm.createIrqchip !== undefined && vm.setIrqLine !== undefined;
      if (irqchip) vm.createIrqchip?.();
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
        if (irqchip && i > 0) setMpState(vcpu, KVM_MP_STATE.RUNNABLE);
        vcpus.push(vcpu);
      }
      const facts = {
        x86Mode: plan.x86.mode,
        irqchip: irqchip ? "in-kernel" : "none",
        ...(hasKvmClock(vm) ? KVMCLOCK_FACT : {}),
      };
      return new X86Machine(vm, vcpus, facts, io, irqchip, com1(vm, irqchip, io), shape);
    } catch (error) {
      vm.close();
      throw error;
    }
  },
  build(layout: MachineLayout, backend: MachineBackend, io: MachineIo) {
    backend.check?.();
    const vm = backend.createVm();
    try {
      // The source machine's choice, from its facts (an older description has none: irqchip).
      const irqchip =
        layout.facts?.irqchip !== "none" &&
        vm.createIrqchip !== undefined &&
        vm.setIrqLine !== undefined;
      if (irqchip) vm.createIrqchip?.();
      addLayoutMemory(vm, layout.ram);
      const vcpus: Vcpu[] = [];
      for (let i = 0; i < layout.cpus; i++) {
        const vcpu = vm.createVcpu();
        backend.prepareVcpu?.(vcpu);
        vcpus.push(vcpu);
      }
      return new X86Machine(
        vm,
        vcpus,
        layout.facts ?? {},
        io,
        irqchip,
        com1(vm, irqchip, io),
        layout,
      );
    } catch (error) {
      vm.close();
      throw error;
    }
  },
};
