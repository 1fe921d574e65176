/**
 * Registers the VMM has never heard of, and registers with write side effects, through a real
 * soft machine:
 * - a vCPU that exposes one register unknown to the catalog (a wrapper standing in for a newer
 *   kernel's class) snapshots and restores it opaquely, and the guest still finishes;
 * - riscv `timer.state` is written only when it changes (disarmed: skipped, as SET 0 on a
 *   disarmed timer is EINVAL), and an armed timer comes back with its deadline thanks to the
 *   post-restore rewrite of `timer.compare` (arch-fixups.ts).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { makeRegId, regSize, type RegId } from "../../../src/abi/regid.js";
import type { Vcpu, VcpuExit } from "../../../src/backends/vcpu.js";
import { backendPicker } from "../../../src/cli/backends.js";
import { RestoreError, inspectSnapshot, restoreSnapshot } from "../../../src/vmm/snapshot/index.js";
import { demoBaseline, demoSnapshot, restoreDemo } from "./demo-run.js";

/** riscv type 0x7e: no KVM class (arch/riscv/include/uapi/asm/kvm.h stops at 10). */
const VENDOR = makeRegId("riscv", 16, 0x7e00_0001n);
const rv = (name: string): RegId => lookupReg("riscv", name).id;
const u64 = (b: Uint8Array): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);

/** A vCPU plus one 16-byte register the catalog does not know; batches stay all-or-nothing. */
class VendorRegVcpu implements Vcpu {
  value: Uint8Array = new Uint8Array(16);
  constructor(readonly inner: Vcpu) {}
  get arch(): Vcpu["arch"] {
    return this.inner.arch;
  }
  get index(): number {
    return this.inner.index;
  }
  regList(): RegId[] {
    return [...this.inner.regList(), VENDOR];
  }
  getOneReg(id: RegId): Uint8Array {
    return id === VENDOR ? this.value.slice() : this.inner.getOneReg(id);
  }
  setOneReg(id: RegId, value: Uint8Array | bigint): void {
    if (id !== VENDOR) {
      this.inner.setOneReg(id, value);
      return;
    }
    if (!(value instanceof Uint8Array) || value.length !== 16) throw new RangeError("16 bytes");
    this.value = value.slice();
  }
  getManyRegs(ids: readonly RegId[]): Uint8Array {
    const parts = ids.map((id) => this.getOneReg(id));
    return Uint8Array.from(parts.flatMap((p) => [...p]));
  }
  setManyRegs(ids: readonly RegId[], bytes: Uint8Array): void {
    let at = 0;
    let vendor: Uint8Array | undefined;
    const rest: RegId[] = [];
    const restBytes: number[] = [];
    const where: number[] = [];
    ids.forEach((id, i) => {
      const v = bytes.subarray(at, at + regSize(id));
      at += regSize(id);
      if (id === VENDOR) vendor = v.slice();
      else {
        rest.push(id);
        restBytes.push(...v);
        where.push(i);
      }
    });
    try {
      this.inner.setManyRegs(rest, Uint8Array.from(restBytes));
    } catch (e) {
      if (!(e instanceof KvmError) || e.index === undefined) throw e;
      const index = where[e.index] ?? e.index;
      throw new KvmError({
        action: "Cannot set",
        ioctl: e.ioctl,
        errno: e.errno,
        index,
        ...(e.regId === undefined ? {} : { regId: e.regId }),
      });
    }
    if (vendor !== undefined) this.value = vendor;
  }
  run(): VcpuExit {
    return this.inner.run();
  }
  kick(): void {
    this.inner.kick?.();
  }
  close(): void {
    this.inner.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

const PATTERN = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

describe("a register unknown to the catalog, through a real soft machine", () => {
  it("is captured, listed as unknown by inspect, restored opaquely; the guest finishes", async () => {
    const whole = await demoBaseline("soft");
    const wrap = (v: Vcpu): Vcpu => new VendorRegVcpu(v);
    const src = await demoSnapshot("soft", 3, {
      wrapVcpu: wrap,
      inspect: (m) => {
        m.vcpus[0]?.setOneReg(VENDOR, PATTERN);
      },
    });
    const summary = inspectSnapshot(src.bytes);
    const vcpu0 = summary.vcpus[0];
    assert.ok(vcpu0 !== undefined);
    assert.equal(vcpu0.unknownCount, 1);
    const listed = vcpu0.registers.find((r) => r.name === null);
    assert.equal(listed?.size, 16);

    let restoredValue: Uint8Array | undefined;
    const restored = await restoreDemo(src.bytes, {
      wrapVcpu: wrap,
      beforeRun: (m) => {
        restoredValue = m.vcpus[0]?.getOneReg(VENDOR);
      },
    });
    assert.deepEqual(restoredValue, PATTERN);
    assert.equal(restored.report.registers.vcpus[0]?.comparison.extra.length, 0);
    assert.equal(restored.ending.status, 0);
    assert.equal(src.output + restored.output, whole.output);
  });

  it("a destination without it refuses (RESTORE_EXTRA, by id) or, with onExtra ignore, reports it", async () => {
    const src = await demoSnapshot("soft", 3, { wrapVcpu: (v) => new VendorRegVcpu(v) });
    await assert.rejects(
      () => restoreDemo(src.bytes),
      (e: unknown) =>
        e instanceof RestoreError &&
        e.code === "RESTORE_EXTRA" &&
        e.details.registers?.[0]?.id === "0x804000007e000001" &&
        e.details.registers[0].name === null,
    );
    const restored = await restoreDemo(src.bytes, { policy: { onExtra: "ignore" } });
    assert.equal(restored.report.registers.vcpus[0]?.notWritten[0]?.register.name, null);
    assert.equal(restored.ending.status, 0);
  });
});

describe("riscv timer registers with write side effects", () => {
  it("a disarmed timer.state is not written (SET 0 on a disarmed timer is EINVAL)", async () => {
    const src = await demoSnapshot("soft", 2);
    const { report } = await restoreDemo(src.bytes);
    const skipped = report.registers.vcpus[0]?.skippedUnchanged.map((r) => r.name);
    assert.deepEqual(skipped, ["timer.state"]);
    assert.deepEqual(report.fixups, []);
  });

  it("an armed timer comes back armed with its deadline (compare rewritten after state)", async () => {
    let deadline = 0n;
    let sstc = false as boolean; // set in a callback, which narrowing does not see
    const src = await demoSnapshot("soft", 2, {
      inspect: (m) => {
        const [vcpu] = m.vcpus;
        assert.ok(vcpu !== undefined);
        deadline = u64(vcpu.getOneReg(rv("timer.time"))) + 1_000_000_000n; // 100 s at 10 MHz
        vcpu.setOneReg(rv("timer.state"), 1n); // arms with deadline 1 (vcpu_timer.c)...
        vcpu.setOneReg(rv("timer.compare"), deadline); // ...so the deadline goes in afterwards
        sstc = u64(vcpu.getOneReg(rv("isa_ext.sstc"))) === 1n;
        // With Sstc the deadline is stimecmp and `next_set` stays clear (vcpu_timer.c
        // kvm_riscv_vcpu_update_vstimecmp): state reads OFF and compare alone carries the timer.
        assert.equal(u64(vcpu.getOneReg(rv("timer.state"))), sstc ? 0n : 1n);
      },
    });
    let state = 0n;
    let compare = 0n;
    const restored = await restoreDemo(src.bytes, {
      beforeRun: (m) => {
        const [dst] = m.vcpus;
        assert.ok(dst !== undefined);
        state = u64(dst.getOneReg(rv("timer.state")));
        compare = u64(dst.getOneReg(rv("timer.compare")));
      },
    });
    assert.equal(compare, deadline, "with its deadline");
    if (!sstc) {
      assert.equal(state, 1n, "armed");
      assert.match(restored.report.fixups.join(), /timer\.compare/);
    }

    // Registers alone (no fixup) show why the rewrite exists: without Sstc, arming left
    // compare = 1; with Sstc, compare is stimecmp and restores as it was.
    using backends = backendPicker();
    using vm = backends.backendFor("riscv").createVm();
    vm.addMemory({ guestPhysAddr: 0x8000_0000n, size: 1 << 20 });
    const bare = vm.createVcpu();
    restoreSnapshot([bare], src.snapshot);
    assert.equal(u64(bare.getOneReg(rv("timer.compare"))), sstc ? deadline : 1n);
  });
});
