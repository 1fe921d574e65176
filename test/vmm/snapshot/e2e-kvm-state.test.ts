/**
 * Restore into real KVM with the state the ABI orders (kvm-register-abi.md §13.1): a demo VM
 * with the in-kernel irqchip, its LAPIC timer put in TSC-deadline mode (masked) with a deadline
 * far ahead, distinctive MSR values — then capture with the machine state API
 * (src/vmm/machine/state.ts), restore into a fresh VM and compare. The
 * deadline survives only if it is written after KVM_SET_LAPIC and IA32_TSC (a deadline write is
 * ignored unless the LVT timer is already in TSC-deadline mode: arch/x86/kvm/lapic.c
 * kvm_set_lapic_tscdeadline_msr). The ordering itself is pinned by ordering.test.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import type { RegId } from "../../../src/abi/regid.js";
import {
  applyVcpuState,
  captureVcpus,
  loadRam,
  ramRegions,
} from "../../../src/vmm/machine/state.js";
import {
  captureVcpu,
  decodeSnapshot,
  encodeSnapshot,
  regRef,
  type VcpuState,
} from "../../../src/vmm/snapshot/index.js";
import { kvmDemo } from "./demo-steppers.js";
import { KVM_SKIP } from "./e2e-helpers.js";

const x86 = (name: string): RegId => lookupReg("x86", name).id;
const u64 = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);
const valueOf = (s: VcpuState | undefined, id: RegId): Uint8Array => {
  const v = s?.regs.find((r) => r.id === id)?.value;
  assert.ok(v !== undefined, `no ${id.toString(16)}`);
  return v;
};

/** xAPIC register offsets in the KVM_GET_LAPIC page (Intel SDM vol. 3, table 11-1). */
const APIC_SVR = 0xf0;
const APIC_LVTT = 0x320;
/** SVR bit 8: APIC software enable. */
const SVR_ENABLE = 0x100;
/** LVT timer: mode bits 18:17 = 10b (TSC-deadline), bit 16 masked, vector 0xec. */
const LVTT_TSC_DEADLINE_MASKED = (2 << 17) | (1 << 16) | 0xec;
/** A deadline ~10^15 cycles ahead: hours at any TSC frequency, so it cannot expire in the test. */
const FAR = 1n << 50n;
/** Ten seconds of TSC at up to 10 GHz. */
const TSC_SLACK = 100_000_000_000n;

describe("restore into real KVM with LAPIC, TSC and MSR state", () => {
  it(
    "LAPIC (TSC-deadline mode), IA32_TSC_DEADLINE, IA32_TSC and MSRs arrive; the guest finishes its output",
    { skip: KVM_SKIP },
    () => {
      using m = kvmDemo({ irqchip: true });
      m.runTo(70);
      m.quiesce();
      const vcpu = m.kvmVcpu;
      const lapic = vcpu.getOneReg(x86("LAPIC"));
      const view = new DataView(lapic.buffer);
      view.setUint32(APIC_SVR, view.getUint32(APIC_SVR, true) | SVR_ENABLE, true);
      view.setUint32(APIC_LVTT, LVTT_TSC_DEADLINE_MASKED, true);
      vcpu.setOneReg(x86("LAPIC"), lapic);
      const deadline = u64(vcpu.getOneReg(x86("IA32_TSC"))) + FAR;
      vcpu.setOneReg(x86("IA32_TSC_DEADLINE"), deadline);
      assert.equal(u64(vcpu.getOneReg(x86("IA32_TSC_DEADLINE"))), deadline, "deadline mode is on");
      vcpu.setOneReg(x86("LSTAR"), 0xffff_ffff_8100_0000n);
      vcpu.setOneReg(x86("KERNEL_GS_BASE"), 0x1234_5000n);

      const snap = decodeSnapshot(
        encodeSnapshot({
          arch: "x86",
          backend: "kvm",
          flags: 0,
          meta: {},
          vcpus: captureVcpus([vcpu]),
          memory: ramRegions(m.vm),
          devices: [],
        }),
      );
      const saved = snap.vcpus[0];
      // A fresh VM with the irqchip, the same RAM, and the state applied.
      using machine = kvmDemo({ irqchip: true });
      loadRam(machine.vm, snap.memory, false);
      const report = applyVcpuState([machine.vcpu], "x86", snap.vcpus);
      machine.exits = 70;
      machine.output.push(...m.output);
      const phases = report.registers.vcpus[0]?.phases.map((p) => p.phase) ?? [];
      assert.ok(phases.indexOf("lapic") < phases.indexOf("tsc-deadline"), phases.join(","));

      const now = captureVcpu(machine.vcpu);
      const differing = now.regs
        .filter((r) => !valueOf(saved, r.id).every((b, i) => b === r.value[i]))
        .map((r) => regRef(r.id).name ?? regRef(r.id).id);
      assert.deepEqual(
        differing.filter((n) => n !== "IA32_TSC"),
        [],
        "only IA32_TSC moved",
      );
      const tsc0 = u64(valueOf(saved, x86("IA32_TSC")));
      const tsc1 = u64(valueOf(now, x86("IA32_TSC")));
      assert.ok(tsc1 >= tsc0 && tsc1 - tsc0 < TSC_SLACK, `TSC went from ${tsc0} to ${tsc1}`);
      assert.equal(u64(valueOf(now, x86("IA32_TSC_DEADLINE"))), deadline);
      // captureVcpu() values are views into one buffer: read through the value's own offset.
      const lapicNow = valueOf(now, x86("LAPIC"));
      assert.equal(
        new DataView(lapicNow.buffer, lapicNow.byteOffset).getUint32(APIC_LVTT, true),
        LVTT_TSC_DEADLINE_MASKED,
      );

      // With the in-kernel irqchip the final HLT blocks in the kernel: run to the last OUT.
      const done = machine.runTo(96);
      assert.equal(done?.kind, "io");
      assert.equal(machine.exits, 96);
      const text = new TextDecoder().decode(Uint8Array.from(machine.output));
      assert.match(text, /long mode\.\nfib\(90\) = 2880067194370816120\n$/);
    },
  );
});
