/**
 * TSC_KHZ (KVM_GET/SET_TSC_KHZ as a pseudo-register) holds only values that read back, keeps
 * its value when the kernel refuses a write, and is never left out of `regList()`.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { IOCTLS } from "../../../src/abi/kvm/ioctls.js";
import { regSize } from "../../../src/abi/regid.js";
import { ioctlValue, setIoctlHook } from "../../../src/backends/kvm/ffi.js";
import { KvmSystem, type KvmVcpu } from "../../../src/backends/kvm/index.js";
import { RestoreError } from "../../../src/vmm/snapshot/errors.js";
import { captureVcpu, restoreVcpu } from "../../../src/vmm/snapshot/restore.js";
import { KVM_SKIP, x86 } from "./helpers.js";

const TSC_KHZ = x86("TSC_KHZ");

/** A fresh VM with one vCPU that has never run; dispose closes both. */
function fresh(): { vcpu: KvmVcpu } & Disposable {
  const system = KvmSystem.open();
  const vm = system.createVm();
  return {
    vcpu: vm.createVcpu(),
    [Symbol.dispose]: () => {
      vm.close();
      system.close();
    },
  };
}

const khzOf = (vcpu: KvmVcpu): bigint =>
  new DataView(vcpu.getOneReg(TSC_KHZ).buffer).getBigUint64(0, true);

/** The vCPU's file descriptor, seen by the ioctl hook during one read. */
function vcpuFd(vcpu: KvmVcpu): number {
  let fd: number | undefined;
  setIoctlHook((f, request) => {
    if (request === IOCTLS.KVM_GET_TSC_KHZ.number) fd = f;
  });
  try {
    vcpu.getOneReg(TSC_KHZ);
  } finally {
    setIoctlHook(undefined);
  }
  if (fd === undefined) throw new Error("no KVM_GET_TSC_KHZ seen");
  return fd;
}

describe("TSC_KHZ", { skip: KVM_SKIP }, () => {
  it("refuses 0 and 2^31..2^64-1 kHz before any ioctl; the state stays readable", () => {
    using m = fresh();
    const before = khzOf(m.vcpu);
    for (const khz of [0n, 0x80000000n, 0xffffffffn, 1n << 32n, (1n << 64n) - 1n]) {
      assert.throws(
        () => {
          m.vcpu.setOneReg(TSC_KHZ, khz);
        },
        (e: unknown) =>
          e instanceof RangeError && e.message.includes("TSC_KHZ must be 1..2147483647"),
        `0x${khz.toString(16)}`,
      );
      assert.equal(khzOf(m.vcpu), before);
    }
    const ids = m.vcpu.regList();
    const bytes = m.vcpu.getManyRegs(ids);
    assert.equal(
      bytes.length,
      ids.reduce((n, id) => n + regSize(id), 0),
    );
  });

  it("a refused write leaves the frequency as it was (the kernel stores it before refusing)", () => {
    using m = fresh();
    const before = khzOf(m.vcpu);
    // Without TSC scaling (this host: KVM_CAP_TSC_CONTROL = 0) 6.18 refuses a rate below the
    // host's with EINVAL after storing it; with scaling 1 kHz may be accepted, and then it
    // must read back.
    let refused = false;
    try {
      m.vcpu.setOneReg(TSC_KHZ, 1n);
    } catch (error) {
      assert.ok(error instanceof KvmError, String(error));
      assert.equal(error.errnoName, "EINVAL");
      refused = true;
    }
    assert.equal(khzOf(m.vcpu), refused ? before : 1n);
  });

  it("setManyRegs refuses an unreadable frequency before writing anything", () => {
    using m = fresh();
    const ids = [x86("LSTAR"), TSC_KHZ];
    const before = m.vcpu.getManyRegs(ids);
    const bytes = new Uint8Array(16);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, 0x1234n, true);
    view.setBigUint64(8, 0x80000000n, true);
    assert.throws(
      () => {
        m.vcpu.setManyRegs(ids, bytes);
      },
      (e: unknown) => e instanceof RangeError && e.message.includes("entry 1 "),
    );
    assert.deepEqual(m.vcpu.getManyRegs(ids), before);
  });

  it("a restore carrying an unreadable frequency fails and leaves the destination as it was", () => {
    using src = fresh();
    using dst = fresh();
    const state = captureVcpu(src.vcpu);
    const regs = state.regs.map((r) => {
      if (r.id !== TSC_KHZ) return r;
      const value = new Uint8Array(8);
      new DataView(value.buffer).setBigUint64(0, 0x80000000n, true);
      return { id: r.id, value };
    });
    const before = khzOf(dst.vcpu);
    assert.throws(
      () => restoreVcpu(dst.vcpu, { index: 0, regs }, "x86"),
      (e: unknown) =>
        e instanceof RestoreError && e.code === "RESTORE_WRITE" && e.message.includes("TSC_KHZ"),
    );
    assert.equal(khzOf(dst.vcpu), before);
    const ids = dst.vcpu.regList();
    assert.ok(ids.includes(TSC_KHZ));
    dst.vcpu.getManyRegs(ids);
  });

  it("regList() lists TSC_KHZ even when first called while the value is unreadable", () => {
    using m = fresh();
    // Another client of the fd (here a raw ioctl) sets a frequency KVM_GET_TSC_KHZ cannot
    // return (regvisor itself refuses it); the list, asked for the first time, keeps TSC_KHZ.
    const fd = vcpuFd(m.vcpu);
    assert.ok(ioctlValue(fd, IOCTLS.KVM_SET_TSC_KHZ.number, 0x80000000) >= 0);
    assert.ok(m.vcpu.regList().includes(TSC_KHZ), "TSC_KHZ is listed");
  });
});
