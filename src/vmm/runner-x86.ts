/**
 * x86 guests on the KVM backend for `regvisor run FILE`: one VM with RAM at guest-physical 0,
 * the supported CPUID, the start state of `--x86-mode` (./x86-boot.ts: GDT, TSS and page tables
 * already in the plan's blobs) and the console devices of ./console.ts — 0xe9, COM1 and the
 * exit port 0xf4.
 *
 * HLT: without an in-kernel irqchip KVM returns every HLT to userspace (KVM_EXIT_HLT,
 * arch/x86/kvm/x86.c `kvm_emulate_halt`). With RFLAGS.IF = 0 that is the guest's way to stop;
 * with IF = 1 it waits for an interrupt, and regvisor has no interrupt sources, so the run ends
 * as "idle" rather than waiting forever.
 */
import {
  kvmUnavailableReason,
  KvmSystem,
  type KvmVcpu,
  type KvmVm,
} from "../backends/kvm/index.js";
import type { VcpuExit } from "../backends/vcpu.js";
import { RegvisorError } from "../errors.js";
import { writeBootPlan, type BootPlan } from "./boot-plan.js";
import { LSR, X86Console, X86_CONSOLE_PORTS } from "./console.js";
import { serviceIoExit } from "./io.js";
import { startKicker } from "./runner-kick.js";
import { exitPortEnding, haltEnding, idleEnding } from "./runner-status.js";
import type { ArchRunner, GuestMachine, MachineOptions, RunEnding } from "./runner-types.js";
import { OptionValueError } from "./size.js";
import type { X86BootState } from "./x86-boot.js";

/** RFLAGS.IF (SDM Vol. 1 §3.4.3.3). */
const RFLAGS_IF = 0x200n;
/** Bytes of stdin pulled into the UART at a time. */
const INPUT_CHUNK = 256;
const SEGMENTS = ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const;

/** /dev/kvm cannot be used for an x86 guest. */
export class KvmUnavailableError extends RegvisorError {
  constructor(reason: string) {
    super(
      "KVM_UNAVAILABLE",
      `Cannot run an x86 guest: /dev/kvm is not usable (${reason}); x86 guests need the KVM backend`,
    );
  }
}

/** Writes the boot state into a fresh vCPU, keeping apic_base and the interrupt bitmap. */
function applyBootState(vcpu: KvmVcpu, boot: X86BootState): void {
  const sregs = vcpu.getSregs();
  for (const seg of SEGMENTS) Object.assign(sregs[seg], boot.sregs[seg]);
  Object.assign(sregs.gdt, boot.sregs.gdt);
  Object.assign(sregs.idt, boot.sregs.idt);
  const { cr0, cr2, cr3, cr4, cr8, efer } = boot.sregs;
  Object.assign(sregs, { cr0, cr2, cr3, cr4, cr8, efer });
  vcpu.setSregs(sregs);
  vcpu.setRegs({ ...boot.regs });
}

class X86Machine implements GuestMachine {
  readonly pcName = "rip";
  readonly facts: Readonly<Record<string, string>>;
  private readonly console: X86Console;

  constructor(
    private readonly system: KvmSystem,
    private readonly vm: KvmVm,
    readonly vcpu: KvmVcpu,
    mode: string,
    private readonly options: MachineOptions,
  ) {
    this.facts = { x86Mode: mode };
    this.console = new X86Console(options.output);
  }

  handle(exit: VcpuExit): RunEnding | "continue" | undefined {
    if (exit.kind === "io") {
      if (exit.direction === "in") this.feedUart(exit.port);
      const result = serviceIoExit(this.console, exit);
      const effect = exit.direction === "in" ? "read as all-ones" : "ignored";
      for (const port of result.unhandled) {
        this.options.unclaimed(`port ${exit.direction}`, port, effect);
      }
      return result.exitStatus === undefined ? "continue" : exitPortEnding(result.exitStatus);
    }
    if (exit.kind === "hlt") {
      return (this.vcpu.getRegs().rflags & RFLAGS_IF) === 0n ? haltEnding() : idleEnding();
    }
    return undefined;
  }

  /** Before a read from COM1 finds its receive buffer empty, pulls what stdin has. */
  private feedUart(port: number): void {
    const offset = port - X86_CONSOLE_PORTS.com1;
    if (offset < 0 || offset >= 8) return;
    if ((this.console.uart.read(5) & LSR.DR) !== 0) return;
    const bytes = this.options.input.read(INPUT_CHUNK);
    if (bytes !== null && bytes.length > 0) this.console.uart.pushInput(bytes);
  }

  pc(): bigint {
    return this.vcpu.getRegs().rip;
  }

  instructions(): undefined {
    return undefined;
  }

  faultDetail(): undefined {
    return undefined;
  }

  armDeadline(deadline: number): Disposable {
    return startKicker(Math.max(0, deadline - performance.now()));
  }

  [Symbol.dispose](): void {
    this.vm.close();
    this.system.close();
  }
}

/** x86 on /dev/kvm. */
export const x86Runner: ArchRunner = {
  arch: "x86",
  backend: "kvm",
  check(options) {
    if (options.mode !== undefined) {
      throw new OptionValueError(
        "--mode",
        "applies to the soft backend only (x86 guests run on kvm)",
      );
    }
    if (options.cmdline !== undefined) {
      throw new OptionValueError(
        "--cmdline",
        "applies to RISC-V guests (the device tree's /chosen/bootargs); x86 guests get none",
      );
    }
  },
  start(plan: BootPlan, options: MachineOptions): GuestMachine {
    if (plan.arch !== "x86") throw new TypeError("x86Runner.start() needs an x86 boot plan");
    const unusable = kvmUnavailableReason();
    if (unusable !== undefined) throw new KvmUnavailableError(unusable);
    const system = KvmSystem.open();
    let vm: KvmVm | undefined;
    try {
      vm = system.createVm();
      const memory = vm.addMemory({ guestPhysAddr: plan.ram.base, size: Number(plan.ram.size) });
      writeBootPlan(plan, memory);
      const vcpu = vm.createVcpu();
      vcpu.setCpuidFromSupported();
      applyBootState(vcpu, plan.x86);
      return new X86Machine(system, vm, vcpu, plan.x86.mode, options);
    } catch (error) {
      vm?.close();
      system.close();
      throw error;
    }
  },
};
