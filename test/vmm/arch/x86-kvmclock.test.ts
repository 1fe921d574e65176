/**
 * The `kvm.clock` device (src/vmm/arch/x86/kvmclock.ts) over a recording Vm: what it saves,
 * which KVM_SET_CLOCK it asks for on restore (with the captured realtime only where the kernel
 * takes KVM_CLOCK_REALTIME), and that a bad state changes nothing.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KVM_CLOCK } from "../../../src/abi/kvm/constants.js";
import type { Vm, VmClock, VmClockSetting } from "../../../src/backends/vcpu.js";
import { DeviceStateError } from "../../../src/vmm/devices/state.js";
import { KvmClockState, hasKvmClock } from "../../../src/vmm/arch/x86/kvmclock.js";

const MS = 1_000_000n;

/** A Vm with only the clock capability: `got` is what KVM_GET_CLOCK returns; sets are recorded. */
function clockVm(flags: number, got: VmClock): Vm & { sets: VmClockSetting[] } {
  const sets: VmClockSetting[] = [];
  const vm = {
    arch: "x86",
    memory: [],
    sets,
    addMemory: () => {
      throw new Error("unused");
    },
    createVcpu: () => {
      throw new Error("unused");
    },
    clockFlags: () => flags,
    getClock: () => got,
    setClock: (s: VmClockSetting) => {
      sets.push(s);
    },
    close: () => undefined,
    [Symbol.dispose]: () => undefined,
  } satisfies Vm & { sets: VmClockSetting[] };
  return vm;
}

const fields = (bytes: Uint8Array): [bigint, number, number, bigint, bigint] => {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return [
    v.getBigUint64(0, true),
    v.getUint32(8, true),
    v.getUint32(12, true),
    v.getBigUint64(16, true),
    v.getBigUint64(24, true),
  ];
};

const ALL = KVM_CLOCK.TSC_STABLE | KVM_CLOCK.REALTIME | KVM_CLOCK.HOST_TSC;

describe("kvm.clock device", () => {
  it("saves KVM_GET_CLOCK's clock, realtime and host TSC (v1, 32 bytes)", () => {
    const got = { clock: 7n * MS, flags: ALL, realtime: 1234n, hostTsc: 99n };
    const state = new KvmClockState(clockVm(ALL, got)).save();
    assert.equal(state.version, 1);
    assert.deepEqual(fields(state.bytes), [7n * MS, ALL, 0, 1234n, 99n]);
  });

  it("reads the host's realtime itself when KVM_GET_CLOCK gives none (no master clock)", () => {
    const got = { clock: 7n * MS, flags: 0, realtime: 0n, hostTsc: 0n };
    const before = BigInt(Date.now()) * MS;
    const [clock, flags, , realtime] = fields(new KvmClockState(clockVm(ALL, got)).save().bytes);
    assert.equal(clock, 7n * MS);
    assert.equal(flags, KVM_CLOCK.REALTIME);
    assert.ok(realtime >= before - 2n * MS && realtime < before + 1000n * MS, `${realtime}`);
  });

  it("restores with the captured realtime where the kernel takes KVM_CLOCK_REALTIME", () => {
    const got = { clock: 5n, flags: ALL, realtime: 1234n, hostTsc: 99n };
    const state = new KvmClockState(clockVm(ALL, got)).save();
    const dst = clockVm(ALL, got);
    new KvmClockState(dst).restore(state);
    assert.deepEqual(dst.sets, [{ clock: 5n, realtime: 1234n }]);
  });

  it("restores the captured clock alone on a kernel without KVM_CLOCK_REALTIME", () => {
    const got = { clock: 5n, flags: ALL, realtime: 1234n, hostTsc: 99n };
    const state = new KvmClockState(clockVm(ALL, got)).save();
    const dst = clockVm(KVM_CLOCK.TSC_STABLE, got);
    new KvmClockState(dst).restore(state);
    assert.deepEqual(dst.sets, [{ clock: 5n }]);
  });

  it("refuses another version, length or unknown flag bits and sets nothing", () => {
    const got = { clock: 5n, flags: 0, realtime: 0n, hostTsc: 0n };
    const good = new KvmClockState(clockVm(ALL, got)).save();
    const unknownFlag = good.bytes.slice();
    unknownFlag[8] = 0x41;
    const reserved = good.bytes.slice();
    reserved[12] = 1;
    const cases = [
      { version: 2, bytes: good.bytes },
      { version: 1, bytes: good.bytes.subarray(0, 31) },
      { version: 1, bytes: unknownFlag },
      { version: 1, bytes: reserved },
    ];
    const dst = clockVm(ALL, got);
    for (const state of cases) {
      assert.throws(
        () => {
          new KvmClockState(dst).restore(state);
        },
        (e: unknown) =>
          e instanceof DeviceStateError && /^Cannot restore device "kvm.clock": /.test(e.message),
      );
    }
    assert.deepEqual(dst.sets, []);
  });

  it("is only made for a Vm with the capability", () => {
    const got = { clock: 0n, flags: 0, realtime: 0n, hostTsc: 0n };
    assert.equal(hasKvmClock(clockVm(ALL, got)), true);
    assert.equal(hasKvmClock(clockVm(0, got)), false, "KVM_CAP_ADJUST_CLOCK = 0");
    const without: Vm = { ...clockVm(ALL, got) };
    delete without.getClock;
    assert.equal(hasKvmClock(without), false);
    assert.throws(() => new KvmClockState(without), TypeError);
  });
});
