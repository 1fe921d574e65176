/**
 * `KvmVm` kvmclock capability: KVM_GET_CLOCK / KVM_SET_CLOCK, KVM_CAP_ADJUST_CLOCK's flags,
 * and KVM_CLOCK_REALTIME (the kernel adds the real time elapsed since `realtime`).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KVM_CLOCK } from "../../../src/abi/kvm/ioctls.js";
import { KvmClosedError, KvmSystem } from "../../../src/backends/kvm/index.js";
import { KVM_SKIP, exitLoop, recordIoctls, x86 } from "./helpers.js";

const MS = 1_000_000n;
const realtimeNs = (): bigint => BigInt(Date.now()) * MS;

describe("KvmVm kvmclock (KVM_GET_CLOCK / KVM_SET_CLOCK)", { skip: KVM_SKIP }, () => {
  it("clockFlags() reports KVM_CAP_ADJUST_CLOCK's flags; getClock() counts ns from VM creation", (t) => {
    using system = KvmSystem.open();
    using vm = system.createVm();
    const flags = vm.clockFlags();
    const names = Object.entries(KVM_CLOCK)
      .filter(([, bit]) => (flags & bit) !== 0)
      .map(([name]) => name);
    t.diagnostic(`KVM_CAP_ADJUST_CLOCK = 0x${flags.toString(16)} (${names.join(", ")})`);
    assert.notEqual(flags, 0, "x86 KVM always has KVM_GET/SET_CLOCK");
    const a = vm.getClock();
    const b = vm.getClock();
    t.diagnostic(`KVM_GET_CLOCK flags = 0x${a.flags.toString(16)}`);
    assert.ok(b.clock >= a.clock, `${b.clock} after ${a.clock}`);
    assert.ok(a.clock < 10_000n * MS, `a new VM's clock starts near 0, not ${a.clock}`);
    if ((a.flags & KVM_CLOCK.REALTIME) !== 0) {
      const off = a.realtime - realtimeNs();
      assert.ok(off > -1000n * MS && off < 1000n * MS, `realtime ${a.realtime} is the host's`);
    }
  });

  it("setClock() sets the clock; with realtime the kernel adds the time elapsed since", () => {
    using system = KvmSystem.open();
    using vm = system.createVm();
    const at = 3600_000n * MS;
    vm.setClock({ clock: at });
    const plain = vm.getClock().clock;
    assert.ok(plain >= at && plain < at + 1000n * MS, `${plain} is ${at} and a little`);
    if ((vm.clockFlags() & KVM_CLOCK.REALTIME) === 0) return;
    // Captured 2 s ago: the kernel moves it on by ~2 s (kvm_vm_ioctl_set_clock).
    vm.setClock({ clock: at, realtime: realtimeNs() - 2000n * MS });
    const moved = vm.getClock().clock;
    assert.ok(moved >= at + 1900n * MS && moved < at + 3000n * MS, `${moved - at} ns added`);
    // A realtime in the future never sets the clock back: the kernel adds nothing.
    vm.setClock({ clock: at, realtime: realtimeNs() + 60_000n * MS });
    const future = vm.getClock().clock;
    assert.ok(future >= at && future < at + 1000n * MS, `${future - at} ns added`);
  });

  it("setClock() refuses bad values before any ioctl and leaves the clock as it was", () => {
    using system = KvmSystem.open();
    using vm = system.createVm();
    vm.setClock({ clock: 5000n * MS });
    const seen = recordIoctls(() => {
      assert.throws(() => {
        vm.setClock({ clock: -1n });
      }, /Cannot set the kvmclock: clock -1 is not a u64/);
      assert.throws(() => {
        vm.setClock({ clock: 0n, realtime: 1n << 64n });
      }, RangeError);
      assert.throws(() => {
        vm.setClock({ clock: 5 as unknown as bigint });
      }, TypeError);
    });
    assert.deepEqual(
      seen.filter((n) => n !== "KVM_CHECK_EXTENSION"),
      [],
    );
    const now = vm.getClock().clock;
    assert.ok(now >= 5000n * MS && now < 6000n * MS);
    vm.close();
    assert.throws(() => vm.getClock(), KvmClosedError);
    assert.throws(() => {
      vm.setClock({ clock: 0n });
    }, KvmClosedError);
  });

  it("a host write of IA32_TSC: the guest TSC follows it, or (kvm_pvm) it is dropped", (t) => {
    using g = exitLoop();
    const tsc = x86("IA32_TSC");
    const read = (): bigint => {
      const v = g.vcpu.getOneReg(tsc);
      return new DataView(v.buffer, v.byteOffset, 8).getBigUint64(0, true);
    };
    const before = read();
    const target = before / 2n;
    g.vcpu.setOneReg(tsc, target);
    const after = read();
    // Either KVM set the TSC offset (arch/x86/kvm/x86.c kvm_synchronize_tsc): the value reads
    // back as written plus the few cycles since; or it kept the host TSC, which moved on.
    const followed = after >= target && after < target + (before - target) / 2n;
    const dropped = after >= before;
    t.diagnostic(
      followed
        ? "IA32_TSC writes set the guest TSC (TSC offsetting)"
        : "IA32_TSC writes are dropped: the guest TSC is the host's (kvm_pvm)",
    );
    assert.ok(followed || dropped, `wrote ${target}, read back ${after} (was ${before})`);
  });
});
