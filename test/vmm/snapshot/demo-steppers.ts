/**
 * Test fixture: the bundled demo guests driven exit by exit on a raw backend VM, for tests that
 * need a vCPU parked mid-run in a configuration the machine does not build (x86 with the
 * in-kernel irqchip, for LAPIC state) or synchronously (the vCPU conformance suite). The
 * snapshot path itself is tested through the machine (./demo-run.ts).
 */
import { KvmSystem, type KvmVcpu, type KvmVm } from "../../../src/backends/kvm/index.js";
import { bootFlatGuest, bundledGuest } from "../../../src/backends/kvm/flat-guest.js";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import type { Vcpu, VcpuExit, Vm } from "../../../src/backends/vcpu.js";
import { lookupReg } from "../../../src/abi/catalog.js";
import { DEMO_SPECS, demoImage } from "../../../src/vmm/demo.js";
import { ramAccess } from "../../../src/vmm/guest-memory.js";
import { SbiConsole } from "../../../src/vmm/sbi-console.js";

/** A demo VM stepped by hand. */
export interface Stepper extends Disposable {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  /** Exits handled (`intr` not counted). */
  exits: number;
  readonly output: number[];
  /** Runs until `exits` reaches `n` or the guest ends; the last exit, if any. */
  runTo(n: number): VcpuExit | undefined;
  /** Completes the last exit with an `immediate_exit` run (KVM_RUN returns EINTR). */
  quiesce(): void;
}

function stepper(
  vm: Vm,
  vcpu: Vcpu,
  handle: (exit: VcpuExit, out: number[]) => boolean,
  setImmediate: (on: boolean) => void,
  close: () => void,
): Stepper {
  const s: Stepper = {
    vm,
    vcpu,
    exits: 0,
    output: [],
    runTo(n) {
      let last: VcpuExit | undefined;
      while (s.exits < n) {
        const exit = vcpu.run();
        if (exit.kind === "intr") continue;
        s.exits++;
        last = exit;
        if (!handle(exit, s.output)) break;
      }
      return last;
    },
    quiesce() {
      setImmediate(true);
      try {
        const exit = vcpu.run();
        if (exit.kind !== "intr") throw new Error(`quiesce run returned ${exit.kind}`);
      } finally {
        setImmediate(false);
      }
    },
    [Symbol.dispose]: close,
  };
  return s;
}

/** The x86 demo on /dev/kvm (port 0xE9 out, n = 90 on port 0xEA, HLT). */
export function kvmDemo(options: { readonly irqchip?: boolean } = {}): Stepper & {
  readonly kvmVcpu: KvmVcpu;
  readonly kvmVm: KvmVm;
} {
  const system = KvmSystem.open();
  const { vm, vcpu } = bootFlatGuest(system, bundledGuest("demo"), {
    irqchip: options.irqchip ?? false,
  });
  const handle = (exit: VcpuExit, out: number[]): boolean => {
    if (exit.kind !== "io") return false;
    if (exit.direction === "out" && exit.port === 0xe9) out.push(...exit.data);
    else if (exit.direction === "in" && exit.port === 0xea) {
      new DataView(exit.data.buffer, exit.data.byteOffset).setUint32(0, 90, true);
    } else return false;
    return true;
  };
  const s = stepper(
    vm,
    vcpu,
    handle,
    (on) => (vcpu.immediateExit = on),
    () => {
      system.close();
    },
  );
  return Object.assign(s, { kvmVcpu: vcpu, kvmVm: vm });
}

/** The RISC-V demo on the soft backend (SBI console, SRST shutdown). */
export function softDemo(options: { readonly mode?: "inline" | "threaded" } = {}): Stepper {
  const spec = DEMO_SPECS.riscv;
  const vm = createSoftVm({ mode: options.mode ?? "inline" });
  const base = 0x8000_0000n;
  const ram = vm.addMemory({ guestPhysAddr: base, size: Number(spec.memSize) });
  ram.bytes.set(demoImage(spec), Number(spec.loadAddr - base));
  const vcpu = vm.createVcpu();
  const id = (name: string): ReturnType<typeof lookupReg>["id"] => lookupReg("riscv", name).id;
  vcpu.setOneReg(id("core.pc"), spec.loadAddr);
  vcpu.setOneReg(id("sbi_ext.dbcn"), 1n);
  const out: number[] = [];
  const console = new SbiConsole(
    (bytes) => out.push(...bytes),
    ramAccess({ base, size: spec.memSize }, ram.bytes),
  );
  const handle = (exit: VcpuExit, output: number[]): boolean => {
    if (exit.kind !== "riscv_sbi" || !console.handle(exit)) return false;
    output.push(...out.splice(0));
    return true;
  };
  return stepper(
    vm,
    vcpu,
    handle,
    (on) => (vcpu.runArea.immediateExit = on ? 1 : 0),
    () => {
      vm.close();
    },
  );
}
