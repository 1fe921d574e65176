import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { IoctlName } from "../../../src/abi/kvm/ioctls.js";
import {
  IOCTLS,
  IOCTL_NAMES,
  KVM_API_VERSION,
  KVM_CAP,
  KVM_EXIT,
  KVM_INTERRUPT_RISCV,
  KVM_MEM,
  KVM_SYNC_S390,
  KVM_SYNC_X86,
  KVM_SYSTEM_EVENT,
  ioctlAllowedOn,
  ioctlByNumber,
  ioctlName,
  kvmExitName,
} from "../../../src/abi/kvm/ioctls.js";
import { IOC_DIR, KVMIO } from "../../../src/abi/kvm/ioc.js";

// Golden values: the x86-64 numbers of kvm-register-abi.md §3.1/§3.2 (kernel header values,
// Linux 6.18 include/uapi/linux/kvm.h). Every table row must appear here.
const GOLDEN: Readonly<Record<IoctlName, number>> = {
  KVM_GET_API_VERSION: 0xae00,
  KVM_CREATE_VM: 0xae01,
  KVM_GET_MSR_INDEX_LIST: 0xc004ae02,
  KVM_CHECK_EXTENSION: 0xae03,
  KVM_GET_VCPU_MMAP_SIZE: 0xae04,
  KVM_GET_SUPPORTED_CPUID: 0xc008ae05,
  KVM_GET_MSR_FEATURE_INDEX_LIST: 0xc004ae0a,
  KVM_CREATE_VCPU: 0xae41,
  KVM_GET_DIRTY_LOG: 0x4010ae42,
  KVM_SET_USER_MEMORY_REGION: 0x4020ae46,
  KVM_SET_TSS_ADDR: 0xae47,
  KVM_SET_IDENTITY_MAP_ADDR: 0x4008ae48,
  KVM_SET_USER_MEMORY_REGION2: 0x40a0ae49,
  KVM_CREATE_IRQCHIP: 0xae60,
  KVM_IRQ_LINE: 0x4008ae61,
  KVM_CREATE_PIT2: 0x4040ae77,
  KVM_SET_CLOCK: 0x4030ae7b,
  KVM_GET_CLOCK: 0x8030ae7c,
  KVM_GET_IRQCHIP: 0xc208ae62,
  KVM_SET_IRQCHIP: 0x8208ae63,
  KVM_ENABLE_CAP: 0x4068aea3,
  KVM_X86_SET_MSR_FILTER: 0x4188aec6,
  KVM_RUN: 0xae80,
  KVM_GET_REGS: 0x8090ae81,
  KVM_SET_REGS: 0x4090ae82,
  KVM_GET_SREGS: 0x8138ae83,
  KVM_SET_SREGS: 0x4138ae84,
  KVM_INTERRUPT: 0x4004ae86,
  KVM_GET_MSRS: 0xc008ae88,
  KVM_SET_MSRS: 0x4008ae89,
  KVM_GET_FPU: 0x81a0ae8c,
  KVM_SET_FPU: 0x41a0ae8d,
  KVM_GET_LAPIC: 0x8400ae8e,
  KVM_SET_LAPIC: 0x4400ae8f,
  KVM_SET_CPUID2: 0x4008ae90,
  KVM_GET_CPUID2: 0xc008ae91,
  KVM_GET_MP_STATE: 0x8004ae98,
  KVM_SET_MP_STATE: 0x4004ae99,
  KVM_NMI: 0xae9a,
  KVM_SET_GUEST_DEBUG: 0x4048ae9b,
  KVM_GET_VCPU_EVENTS: 0x8040ae9f,
  KVM_SET_VCPU_EVENTS: 0x4040aea0,
  KVM_GET_DEBUGREGS: 0x8080aea1,
  KVM_SET_DEBUGREGS: 0x4080aea2,
  KVM_SET_TSC_KHZ: 0xaea2,
  KVM_GET_TSC_KHZ: 0xaea3,
  KVM_GET_XSAVE: 0x9000aea4,
  KVM_SET_XSAVE: 0x5000aea5,
  KVM_GET_XCRS: 0x8188aea6,
  KVM_SET_XCRS: 0x4188aea7,
  KVM_GET_ONE_REG: 0x4010aeab,
  KVM_SET_ONE_REG: 0x4010aeac,
  KVM_GET_REG_LIST: 0xc008aeb0,
  KVM_GET_SREGS2: 0x8140aecc,
  KVM_SET_SREGS2: 0x4140aecd,
  KVM_GET_XSAVE2: 0x9000aecf,
  KVM_ARM_VCPU_INIT: 0x4020aeae,
  KVM_ARM_PREFERRED_TARGET: 0x8020aeaf,
  KVM_ARM_VCPU_FINALIZE: 0x4004aec2,
};

describe("KVM ioctl table", () => {
  it("every number equals the kernel header value", () => {
    for (const name of IOCTL_NAMES) {
      assert.equal(
        IOCTLS[name].number.toString(16),
        GOLDEN[name].toString(16),
        `${name} number differs from the golden value`,
      );
    }
    assert.deepEqual([...IOCTL_NAMES].sort(), Object.keys(GOLDEN).sort());
  });

  it("every number decomposes into its own dir, type, nr and size fields", () => {
    for (const name of IOCTL_NAMES) {
      const spec = IOCTLS[name];
      assert.equal(spec.name, name);
      assert.equal(spec.number >>> 30, IOC_DIR[spec.dir], `${name} dir`);
      assert.equal((spec.number >>> 16) & 0x3fff, spec.size, `${name} size`);
      assert.equal((spec.number >>> 8) & 0xff, KVMIO, `${name} type`);
      assert.equal(spec.number & 0xff, spec.nr, `${name} nr`);
      assert.equal(spec.dir === "none", spec.struct === undefined, `${name} struct vs _IO`);
    }
  });

  it("pairs that share an nr differ in their full number", () => {
    const pairs: readonly (readonly [IoctlName, IoctlName])[] = [
      ["KVM_SET_TSC_KHZ", "KVM_SET_DEBUGREGS"],
      ["KVM_GET_TSC_KHZ", "KVM_ENABLE_CAP"],
    ];
    for (const [a, b] of pairs) {
      assert.equal(IOCTLS[a].nr, IOCTLS[b].nr, `${a} and ${b} share an nr`);
      assert.notEqual(IOCTLS[a].number, IOCTLS[b].number, `${a} and ${b} differ`);
    }
    const numbers = new Set(IOCTL_NAMES.map((n) => IOCTLS[n].number));
    assert.equal(numbers.size, IOCTL_NAMES.length, "no two rows share a full number");
  });

  it("KVM_GET_ONE_REG is _IOW and never uses the 2020 MANY_REGS RFC numbers", () => {
    assert.equal(IOCTLS.KVM_GET_ONE_REG.dir, "write");
    assert.equal(ioctlByNumber(0x4008aec7), undefined);
    assert.equal(ioctlByNumber(0x4008aec8), undefined);
  });

  it("every capability named by a row is in KVM_CAP", () => {
    for (const name of IOCTL_NAMES) {
      const cap = IOCTLS[name].capability;
      if (cap !== undefined) assert.ok(cap in KVM_CAP, `${name}: unknown ${cap}`);
    }
  });

  it("ioctlAllowedOn() splits combined levels", () => {
    assert.ok(ioctlAllowedOn(IOCTLS.KVM_ENABLE_CAP, "vm"));
    assert.ok(ioctlAllowedOn(IOCTLS.KVM_ENABLE_CAP, "vcpu"));
    assert.ok(!ioctlAllowedOn(IOCTLS.KVM_ENABLE_CAP, "system"));
    assert.ok(ioctlAllowedOn(IOCTLS.KVM_CHECK_EXTENSION, "vm"));
    assert.ok(!ioctlAllowedOn(IOCTLS.KVM_RUN, "vm"));
  });

  it("KVM_INTERRUPT, KVM_IRQ_LINE and KVM_GET_DIRTY_LOG serve the arches that implement them", () => {
    // arch/riscv/kvm/vcpu.c handles KVM_INTERRUPT (SET/UNSET of the external line); arm64 has none.
    assert.deepEqual(IOCTLS.KVM_INTERRUPT.arches, ["x86", "riscv", "loongarch"]);
    assert.equal(IOCTLS.KVM_INTERRUPT.level, "vcpu");
    assert.ok(IOCTLS.KVM_IRQ_LINE.arches.includes("riscv"));
    assert.equal(IOCTLS.KVM_IRQ_LINE.level, "vm");
    assert.equal(IOCTLS.KVM_CREATE_IRQCHIP.capability, "KVM_CAP_IRQCHIP");
    assert.equal(IOCTLS.KVM_GET_DIRTY_LOG.struct, "kvm_dirty_log");
    assert.deepEqual(KVM_INTERRUPT_RISCV, { SET: 0xffffffff, UNSET: 0xfffffffe });
    assert.equal(KVM_MEM.LOG_DIRTY_PAGES, 1);
  });

  it("ioctlName() names known numbers and prints unknown ones in hex", () => {
    assert.equal(ioctlName(IOCTLS.KVM_RUN.number), "KVM_RUN");
    assert.equal(ioctlName(0xaeff), "ioctl 0xaeff");
  });
});

describe("KVM constants", () => {
  it("capability numbers match kvm.h (golden)", () => {
    const golden: Readonly<Record<string, number>> = {
      KVM_CAP_IRQCHIP: 0,
      KVM_CAP_USER_MEMORY: 3,
      KVM_CAP_SET_TSS_ADDR: 4,
      KVM_CAP_EXT_CPUID: 7,
      KVM_CAP_NR_VCPUS: 9,
      KVM_CAP_NR_MEMSLOTS: 10,
      KVM_CAP_MP_STATE: 14,
      KVM_CAP_PIT2: 33,
      KVM_CAP_SET_IDENTITY_MAP_ADDR: 37,
      KVM_CAP_VCPU_EVENTS: 41,
      KVM_CAP_DEBUGREGS: 50,
      KVM_CAP_ENABLE_CAP: 54,
      KVM_CAP_XSAVE: 55,
      KVM_CAP_XCRS: 56,
      KVM_CAP_MAX_VCPUS: 66,
      KVM_CAP_ONE_REG: 70,
      KVM_CAP_SYNC_REGS: 74,
      KVM_CAP_ENABLE_CAP_VM: 98,
      KVM_CAP_MAX_VCPU_ID: 128,
      KVM_CAP_IMMEDIATE_EXIT: 136,
      KVM_CAP_GET_MSR_FEATURES: 153,
      KVM_CAP_X86_USER_SPACE_MSR: 188,
      KVM_CAP_X86_MSR_FILTER: 189,
      KVM_CAP_SREGS2: 200,
      KVM_CAP_XSAVE2: 208,
      KVM_CAP_USER_MEMORY2: 231,
      KVM_CAP_ARM_PMU_V3: 126,
      KVM_CAP_ARM_SVE: 170,
      KVM_CAP_ARM_PTRAUTH_ADDRESS: 171,
      KVM_CAP_ARM_PTRAUTH_GENERIC: 172,
      KVM_CAP_ARM_WRITABLE_IMP_ID_REGS: 239,
      KVM_CAP_ARM_EL2: 240,
      KVM_CAP_ARM_EL2_E2H0: 241,
      KVM_CAP_RISCV_MP_STATE_RESET: 242,
    };
    const table: Readonly<Record<string, number>> = KVM_CAP;
    for (const [name, value] of Object.entries(golden)) assert.equal(table[name], value, name);
    const values = Object.values(KVM_CAP);
    assert.equal(new Set(values).size, values.length, "capability numbers are distinct");
  });

  it("exit reasons run 0..40 without gaps and have names", () => {
    const values = Object.values(KVM_EXIT).sort((a, b) => a - b);
    assert.deepEqual(
      values,
      Array.from({ length: 41 }, (_, i) => i),
    );
    assert.equal(KVM_EXIT.RISCV_SBI, 35);
    assert.equal(KVM_EXIT.MEMORY_FAULT, 39);
    assert.equal(kvmExitName(5), "KVM_EXIT_HLT");
    assert.equal(kvmExitName(35), "KVM_EXIT_RISCV_SBI");
    assert.equal(kvmExitName(41), "KVM_EXIT_41");
  });

  it("system-event types, sync bits and the API version match the headers", () => {
    assert.equal(KVM_API_VERSION, 12);
    assert.deepEqual(Object.values(KVM_SYSTEM_EVENT), [1, 2, 3, 4, 5, 6, 7]);
    assert.equal(KVM_SYNC_X86.REGS | KVM_SYNC_X86.SREGS | KVM_SYNC_X86.EVENTS, 0x7);
    assert.equal(KVM_SYNC_X86.VALID_FIELDS, 0x7);
    const s390 = Object.entries(KVM_SYNC_S390).filter(([k]) => k !== "VALID_FIELDS");
    assert.equal(
      s390.reduce((acc, [, v]) => acc | v, 0),
      KVM_SYNC_S390.VALID_FIELDS,
    );
  });
});
