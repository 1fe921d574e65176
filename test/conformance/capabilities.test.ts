/**
 * The capability cases of the conformance suite against every backend and mode: KVM x86
 * (skipped visibly without /dev/kvm) and soft RISC-V inline and threaded. Each target supplies
 * tiny guests in its own machine code; what a backend lacks is declared with the reason.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { KvmSystem, kvmUnavailableReason, type KvmVcpu } from "../../src/backends/kvm/index.js";
import { createSoftVm, type SoftMode, type SoftVm } from "../../src/backends/soft/index.js";
import { SBI_EID } from "../../src/backends/soft/sbi.js";
import type { Vcpu } from "../../src/backends/vcpu.js";
import { KVM_MP_STATE } from "../../src/abi/kvm/constants.js";
import { I, R, li, place } from "../backends/soft/asm.js";
import { reg } from "../backends/soft/helpers.js";
import {
  capabilityConformance,
  type CapabilityGuest,
  type CapabilityTarget,
  type DebugGuest,
  type InterruptGuest,
  type MpStateGuest,
  type WriterGuest,
} from "./suite.js";
import { startRealMode } from "../backends/kvm/helpers.js";

const kvmReason = kvmUnavailableReason();
const KVM_SKIP: string | false = kvmReason === undefined ? false : `needs /dev/kvm: ${kvmReason}`;

// KVM x86: real-mode guests at CS = 0, code at 0x1000 in slot 0 (0..0x8000), the logging slot
// at 0x8000..0x10000 (reachable with 16-bit offsets from DS = 0).

const X86_CODE = 0x1000;
const X86_LOG_BASE = 0x8000;

let system: KvmSystem | undefined;

/** A VM with the real-mode `code` at 0x1000 and vCPU 0 about to run it. */
function x86(code: readonly number[], irqchip = false): { guest: CapabilityGuest; vcpu: KvmVcpu } {
  // One /dev/kvm handle for the file; the process exit closes it.
  system ??= KvmSystem.open();
  const vm = system.createVm({ irqchip });
  const mem = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
  mem.bytes.set(code, X86_CODE);
  const vcpu = vm.createVcpu();
  startRealMode(vcpu, X86_CODE);
  return { guest: { vm, vcpu }, vcpu };
}

const kvmTarget: CapabilityTarget = {
  name: "kvm x86",
  skip: KVM_SKIP,
  spinner: () => x86([0xeb, 0xfe]).guest, // jmp $
  writer(pages): WriterGuest {
    // Per page: mov byte [addr], 0x42 (C6 06 lo hi 42); then hlt; jmp back to the start.
    const stores = pages.flatMap((p) => {
      const at = X86_LOG_BASE + p * 4096 + 0x10;
      return [0xc6, 0x06, at & 0xff, at >> 8, 0x42];
    });
    const back = -(stores.length + 1 + 2);
    const { guest } = x86([...stores, 0xf4, 0xeb, back & 0xff]);
    const log = guest.vm.addMemory({ guestPhysAddr: X86_LOG_BASE, size: 0x8000, logDirty: true });
    return { ...guest, slot: log.slot, base: BigInt(X86_LOG_BASE) };
  },
  irqLine(): InterruptGuest {
    // Program the in-kernel 8259 (ICW1-4: vectors 0x20.., OCW1: only IRQ 4 unmasked), sti,
    // hlt in a loop. The IRQ 4 handler (vector 0x24, IVT entry at 0x90) reports with
    // out 0x80, 0x24, sends EOI and irets.
    const out = (port: number, value: number): number[] => [0xb0, value, 0xe6, port];
    const main = [
      0xfa, // cli
      ...out(0x20, 0x11),
      ...out(0x21, 0x20),
      ...out(0x21, 0x04),
      ...out(0x21, 0x01),
      ...out(0x21, 0xef),
      0xfb, // sti
      0xf4, // hlt
      0xeb,
      0xfd, // jmp hlt
    ];
    const handler = [...out(0x80, 0x24), ...out(0x20, 0x20), 0xcf]; // …; iret
    const code = new Array<number>(0x100 + handler.length).fill(0x90);
    code.splice(0, main.length, ...main);
    code.splice(0x100, handler.length, ...handler);
    const { guest } = x86(code, true);
    const ivt = guest.vm.memory[0]?.bytes;
    assert.ok(ivt !== undefined);
    ivt.set([0x00, 0x11, 0x00, 0x00], 0x24 * 4); // offset 0x1100, segment 0
    const setIrqLine = guest.vm.setIrqLine?.bind(guest.vm);
    assert.ok(setIrqLine !== undefined);
    return {
      ...guest,
      raise: (level) => {
        setIrqLine(4, level);
      },
      check: (exit) => {
        assert.equal(exit.kind, "io");
        assert.equal(exit.port, 0x80);
        assert.equal(exit.data[0], 0x24, "the handler of vector 0x24 (IRQ 4) ran");
      },
    };
  },
  guestDebug(): DebugGuest {
    // nop; nop; nop; int3; hlt — real mode at CS = 0, so the linear pc is rip.
    const { guest, vcpu } = x86([0x90, 0x90, 0x90, 0xcc, 0xf4]);
    const pc = BigInt(X86_CODE);
    return {
      ...guest,
      pc: () => vcpu.getRegs().rip,
      stepPcs: [pc, pc + 1n, pc + 2n],
      swBreakAt: pc + 3n,
    };
  },
  mpState(): MpStateGuest {
    // out 0x80, al; jmp back: an io exit per run. With the irqchip, so x86 takes HALTED (without
    // a LAPIC in the kernel only RUNNABLE is valid, arch/x86/kvm/x86.c); STOPPED is s390's.
    const { guest } = x86([0xe6, 0x80, 0xeb, 0xfc], true);
    return { ...guest, other: KVM_MP_STATE.HALTED, refused: KVM_MP_STATE.STOPPED };
  },
  irqchipState: () => x86([0xf4], true).guest,
  lacks: {
    // Measured on kvm_pvm (docs/kvm-guest-debug.md): with USE_SW_BP, int3 is not intercepted —
    // real mode runs the guest's IVT handler, 32/64-bit mode fails in KVM's emulator.
    ...(existsSync("/sys/module/kvm_pvm")
      ? {
          swBreakpoints:
            "kvm_pvm does not intercept int3 with KVM_GUESTDBG_USE_SW_BP (real mode: the guest's IVT; 32/64-bit: KVM_EXIT_INTERNAL_ERROR); Z0 uses DR0-DR3 there",
        }
      : {}),
    // Measured on kvm_pvm (kernel 6.18): KVM_CREATE_IRQCHIP and KVM_IRQ_LINE succeed, but the
    // PIC's interrupt does not reach this real-mode guest: halted, it is never woken; spinning
    // with IF=1, the vCPU exits with KVM_EXIT_SHUTDOWN (triple fault) instead of running the
    // IVT handler. VMX/SVM hosts run the case.
    ...(existsSync("/sys/module/kvm_pvm")
      ? {
          irqDelivery:
            "kvm_pvm does not deliver PIC interrupts to real-mode guests (halted: not woken; running: KVM_EXIT_SHUTDOWN)",
        }
      : {}),
    externalInterrupt:
      "x86 has no KVM_INTERRUPT line in this interface: devices interrupt through the in-kernel irqchip (setIrqLine)",
    // Measured on kvm_pvm (docs/kvm-guest-debug.md); on VMX the instruction breakpoint is a
    // fault too, and KVM does not set RF for a guest-debug breakpoint.
    hwStepReportsBreakpoint:
      "x86 KVM: a step from an armed DR execution breakpoint reports it again (RF is not set for guest-debug breakpoints)",
  },
};

// Soft RISC-V: code at RAM_BASE (slot 0, 64 KiB), the logging slot at RAM_BASE + 0x10000.

const RAM_BASE = 0x8000_0000n;
const LOG_BASE = RAM_BASE + 0x10000n;
const report = (tag: number): number[] => [
  ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
  ...li(R.a6, BigInt(tag)),
  I.ecall(),
];

function rv(
  mode: SoftMode,
  program: readonly number[],
): { vm: SoftVm; vcpu: Vcpu; ram: Uint8Array } {
  const vm = createSoftVm({ mode, budget: { timeSliceMs: 20_000 } });
  const code = vm.addMemory({ guestPhysAddr: RAM_BASE, size: 0x10000 });
  place(code.bytes, 0, program);
  const vcpu = vm.createVcpu();
  vcpu.setOneReg(reg("core.pc"), RAM_BASE);
  return { vm, vcpu, ram: code.bytes };
}

function softTarget(mode: SoftMode): CapabilityTarget {
  return {
    name: `soft riscv ${mode}`,
    skip: false,
    spinner: () => rv(mode, [I.jal(0, 0)]),
    writer(pages): WriterGuest {
      const body = [
        ...pages.flatMap((p) => [
          ...li(R.t0, LOG_BASE + BigInt(p * 4096 + 0x10)),
          I.sd(R.t0, R.t0, 0),
        ]),
        ...report(1),
      ];
      const { vm, vcpu } = rv(mode, [...body, I.jal(0, -4 * body.length)]);
      const log = vm.addMemory({ guestPhysAddr: LOG_BASE, size: 0x8000, logDirty: true });
      return { vm, vcpu, slot: log.slot, base: LOG_BASE };
    },
    externalInterrupt(): InterruptGuest {
      // stvec = handler (+0x100), sie.SEIE, sstatus.SIE, spin; the handler reports scause.
      const { vm, vcpu, ram } = rv(mode, [
        ...li(R.t0, RAM_BASE + 0x100n),
        I.csrrw(0, 0x105, R.t0),
        ...li(R.t0, 0x200n),
        I.csrrs(0, 0x104, R.t0),
        ...li(R.t0, 2n),
        I.csrrs(0, 0x100, R.t0),
        I.jal(0, 0),
      ]);
      place(ram, 0x100, [I.csrrs(R.a0, 0x142, 0), ...report(9)]);
      const raise = vcpu.setExternalInterrupt?.bind(vcpu);
      assert.ok(raise !== undefined);
      return {
        vm,
        vcpu,
        raise,
        check: (exit) => {
          assert.equal(exit.kind, "riscv_sbi");
          assert.equal(exit.functionId, 9n);
          const scause = vcpu.getOneReg(reg("a0"));
          assert.equal(new DataView(scause.buffer).getBigUint64(0, true), (1n << 63n) | 9n);
        },
      };
    },
    guestDebug(): DebugGuest {
      // Three addi, then ebreak; nothing past it runs in these cases.
      const { vm, vcpu } = rv(mode, [
        I.addi(R.a0, 0, 1),
        I.addi(R.a0, R.a0, 1),
        I.addi(R.a0, R.a0, 1),
        I.ebreak(),
        ...report(7),
      ]);
      return {
        vm,
        vcpu,
        pc: () => new DataView(vcpu.getOneReg(reg("core.pc")).buffer).getBigUint64(0, true),
        stepPcs: [RAM_BASE, RAM_BASE + 4n, RAM_BASE + 8n],
        swBreakAt: RAM_BASE + 12n,
      };
    },
    mpState(): MpStateGuest {
      // SBI HSM power states: RUNNABLE and STOPPED only (arch/riscv/kvm/vcpu.c).
      const body = report(1);
      const { vm, vcpu } = rv(mode, [...body, I.jal(0, -4 * body.length)]);
      return { vm, vcpu, other: KVM_MP_STATE.STOPPED, refused: KVM_MP_STATE.HALTED };
    },
    lacks: {
      irqchipState:
        "no in-kernel irqchip on the soft backend: the PLIC is a machine device with its own save()/restore()",
      ...(mode === "inline"
        ? { runAsync: "inline mode runs the hart on the caller's thread (use threaded mode)" }
        : {}),
      irqLine:
        "no in-kernel irqchip on the soft backend (KVM riscv's is the AIA device, not KVM_CREATE_IRQCHIP): the machine's PLIC drives setExternalInterrupt",
    },
  };
}

capabilityConformance(kvmTarget);
capabilityConformance(softTarget("inline"));
capabilityConformance(softTarget("threaded"));
