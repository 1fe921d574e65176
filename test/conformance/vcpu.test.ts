/**
 * The `Vcpu` conformance suite against every backend and mode: KVM x86 without and with the
 * in-kernel irqchip (skipped visibly without /dev/kvm), soft RISC-V inline and threaded. Each
 * vCPU is the demo guest's, stopped after a few exits (so "after the first run" rules apply).
 */
import assert from "node:assert/strict";
import { lookupReg } from "../../src/abi/catalog.js";
import { regId, type RegId } from "../../src/abi/regid.js";
import { decodeReg } from "../../src/abi/catalog.js";
import { kvmUnavailableReason, type KvmVcpu } from "../../src/backends/kvm/index.js";
import { TIMEBASE_HZ } from "../../src/backends/soft/index.js";
import { kvmDemo, softDemo } from "../vmm/snapshot/demo-steppers.js";
import { vcpuConformance, type NotWritable, type Volatile } from "./suite.js";

const x86 = (name: string): RegId => lookupReg("x86", name).id;
const rv = (name: string): RegId => lookupReg("riscv", name).id;
const kvmReason = kvmUnavailableReason();
const KVM_SKIP: string | false = kvmReason === undefined ? false : `needs /dev/kvm: ${kvmReason}`;

const count = (ids: readonly RegId[], cls: string): number =>
  ids.filter((id) => {
    const d = decodeReg(id);
    return d.known && d.class === cls;
  }).length;

// KVM x86 -----------------------------------------------------------------------------------

const PSEUDO = ["REGS", "SREGS", "FPU", "XSAVE", "XCRS", "VCPU_EVENTS", "MP_STATE", "DEBUGREGS"];
/** KVM_MP_STATE_* values stop at 8 (include/uapi/linux/kvm.h); 0xff is none of them. */
const BAD_MP_STATE = Uint8Array.of(0xff, 0, 0, 0);

function kvmTarget(irqchip: boolean): Parameters<typeof vcpuConformance>[0] {
  // 10 s of guest TSC at any frequency up to 10 GHz.
  const tsc: Volatile = { maxDelta: 100_000_000_000n, why: "IA32_TSC counts guest cycles" };
  const asyncPfInt: NotWritable = {
    errno: "EINVAL",
    why: "6.18 x86.c kvm_pv_enable_async_pf_int refuses every write without an in-kernel LAPIC",
  };
  let vcpuOfTarget: KvmVcpu | undefined;
  return {
    name: `kvm x86${irqchip ? " with in-kernel irqchip" : ""}`,
    skip: KVM_SKIP,
    make() {
      const m = kvmDemo({ irqchip });
      m.runTo(70); // mid-output, long mode, after the IN of n
      m.quiesce();
      vcpuOfTarget = m.kvmVcpu;
      return {
        vcpu: m.vcpu,
        close: () => {
          m[Symbol.dispose]();
        },
      };
    },
    volatile: new Map([[x86("IA32_TSC"), tsc]]),
    notWritable: (id) => (!irqchip && id === x86("KVM_ASYNC_PF_INT") ? asyncPfInt : undefined),
    listShape(ids) {
      const names = ids.map((id) => decodeReg(id)).map((d) => (d.known ? d.name : ""));
      for (const n of [...PSEUDO, "CPUID", "TSC_KHZ", "IA32_TSC"]) assert.ok(names.includes(n), n);
      assert.equal(names.includes("LAPIC"), irqchip, "LAPIC listed iff the irqchip exists");
      const kernel = vcpuOfTarget?.kernelRegList() ?? [];
      assert.deepEqual(ids.slice(0, kernel.length), kernel, "KVM_GET_REG_LIST ids come first");
    },
    unknown: { id: x86("MSR(0xdeadbeef)"), errno: "EINVAL" },
    foreign: { id: rv("core.pc"), errno: "EINVAL" },
    wrongSizeErrno: "EINVAL",
    badValue: { id: x86("MP_STATE"), value: () => BAD_MP_STATE },
    scratch: [x86("LSTAR"), x86("CSTAR"), x86("KERNEL_GS_BASE"), x86("REGS")],
    ignoresArchByte: false,
  };
}

// soft RISC-V -------------------------------------------------------------------------------

function softTarget(mode: "inline" | "threaded"): Parameters<typeof vcpuConformance>[0] {
  const time: Volatile = {
    maxDelta: BigInt(TIMEBASE_HZ) * 10n,
    why: "timer.time is the running guest time (10 s tolerated)",
  };
  const timerState: NotWritable = {
    errno: "EINVAL",
    why: "vcpu_timer.c: SET 0 cancels the timer and a disarmed timer refuses that (the demo never arms it)",
  };
  const sbiExt: NotWritable = {
    errno: "EBUSY",
    why: "vcpu_sbi.c: any SBI_EXT write after the first KVM_RUN is EBUSY",
  };
  return {
    name: `soft riscv ${mode}`,
    skip: false,
    make() {
      const m = softDemo({ mode });
      m.runTo(2);
      m.quiesce();
      return {
        vcpu: m.vcpu,
        close: () => {
          m[Symbol.dispose]();
        },
      };
    },
    volatile: new Map([[rv("timer.time"), time]]),
    notWritable(id) {
      if (id === rv("timer.state")) return timerState;
      const d = decodeReg(id);
      return d.known && d.class === "sbi_ext" ? sbiExt : undefined;
    },
    listShape(ids) {
      assert.equal(count(ids, "core"), 33, "CORE: pc, x1..x31, mode");
      assert.equal(count(ids, "timer"), 4);
      assert.ok(count(ids, "csr") >= 11, "the 11 general CSRs");
      assert.equal(count(ids, "fp_f"), 33, "FP_F f0..f31 + fcsr (the hart has F)");
      assert.equal(count(ids, "fp_d"), 33, "FP_D f0..f31 + fcsr (the hart has D)");
      assert.ok(ids.indexOf(rv("config.isa")) < ids.indexOf(rv("core.pc")), "CONFIG first");
    },
    // CORE numbers stop at 32 (mode): 40 is out of range → ENOENT.
    unknown: { id: regId(rv("core.pc") + 40n), errno: "ENOENT" },
    foreign: { id: lookupReg("arm64", "X0").id, errno: "ENOENT" },
    wrongSizeErrno: "EINVAL",
    badValue: {
      id: rv("timer.frequency"),
      value: (v) => {
        const out = v.slice();
        out[0] = (out[0] ?? 0) ^ 1;
        return out;
      },
    },
    scratch: [rv("core.t0"), rv("core.t1"), rv("csr.sscratch"), rv("fp_d.f5")],
    ignoresArchByte: true,
  };
}

vcpuConformance(kvmTarget(false));
vcpuConformance(kvmTarget(true));
vcpuConformance(softTarget("inline"));
vcpuConformance(softTarget("threaded"));
