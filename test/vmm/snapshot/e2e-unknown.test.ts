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
import {
  RestoreError,
  encodeSnapshot,
  inspectSnapshot,
  restoreSnapshot,
} from "../../../src/vmm/snapshot/index.js";
import { RiscvDemoMachine } from "../../../src/vmm/snapshot/machines/index.js";
import { captureMachine, restoreMachine, runMachine } from "../../../src/vmm/snapshot/vm-state.js";
import { baseline } from "./e2e-helpers.js";

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
  close(): void {
    this.inner.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

const PATTERN = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

describe("a register unknown to the catalog, through a real soft machine", () => {
  it("is captured, listed as unknown by inspect, restored opaquely; the guest finishes", () => {
    const whole = baseline(RiscvDemoMachine.boot());
    const wrap = (v: Vcpu): Vcpu => new VendorRegVcpu(v);
    using src = RiscvDemoMachine.boot({ wrapVcpu: wrap });
    runMachine(src, { stopAtExit: 3 });
    const vendorVcpu = src.vcpus[0];
    assert.ok(vendorVcpu !== undefined);
    vendorVcpu.setOneReg(VENDOR, PATTERN);
    const bytes = encodeSnapshot(captureMachine(src));

    const summary = inspectSnapshot(bytes);
    const vcpu0 = summary.vcpus[0];
    assert.ok(vcpu0 !== undefined);
    assert.equal(vcpu0.unknownCount, 1);
    const listed = vcpu0.registers.find((r) => r.name === null);
    assert.equal(listed?.size, 16);

    const restored = restoreMachine(bytes, { wrapVcpu: wrap });
    using machine = restored.machine;
    const report = restored.report;
    assert.deepEqual(machine.vcpus[0]?.getOneReg(VENDOR), PATTERN);
    assert.equal(report.registers.vcpus[0]?.comparison.extra.length, 0);
    assert.equal(runMachine(machine).stopped, "finished");
    assert.equal(new TextDecoder().decode(machine.output()), whole.output);
  });

  it("a destination without it refuses (RESTORE_EXTRA, by id) or, with onExtra ignore, reports it", () => {
    using src = RiscvDemoMachine.boot({ wrapVcpu: (v) => new VendorRegVcpu(v) });
    runMachine(src, { stopAtExit: 3 });
    const bytes = encodeSnapshot(captureMachine(src));
    assert.throws(
      () => restoreMachine(bytes),
      (e: unknown) =>
        e instanceof RestoreError &&
        e.code === "RESTORE_EXTRA" &&
        e.details.registers?.[0]?.id === "0x804000007e000001" &&
        e.details.registers[0].name === null,
    );
    const restored = restoreMachine(bytes, { onExtra: "ignore" });
    using machine = restored.machine;
    const report = restored.report;
    assert.equal(report.registers.vcpus[0]?.notWritten[0]?.register.name, null);
    assert.equal(runMachine(machine).stopped, "finished");
  });
});

describe("riscv timer registers with write side effects", () => {
  it("a disarmed timer.state is not written (SET 0 on a disarmed timer is EINVAL)", () => {
    using src = RiscvDemoMachine.boot();
    runMachine(src, { stopAtExit: 2 });
    const { machine, report } = restoreMachine(encodeSnapshot(captureMachine(src)));
    machine.close();
    const skipped = report.registers.vcpus[0]?.skippedUnchanged.map((r) => r.name);
    assert.deepEqual(skipped, ["timer.state"]);
    assert.deepEqual(report.fixups, []);
  });

  it("an armed timer comes back armed with its deadline (compare rewritten after state)", () => {
    using src = RiscvDemoMachine.boot();
    runMachine(src, { stopAtExit: 2 });
    src.quiesce();
    const vcpu = src.softVcpu;
    const deadline = u64(vcpu.getOneReg(rv("timer.time"))) + 1_000_000_000n; // 100 s at 10 MHz
    vcpu.setOneReg(rv("timer.state"), 1n); // arms with deadline 1 (vcpu_timer.c)...
    vcpu.setOneReg(rv("timer.compare"), deadline); // ...so the deadline goes in afterwards
    if (u64(vcpu.getOneReg(rv("isa_ext.sstc"))) === 1n) {
      // With Sstc the deadline is stimecmp and `next_set` stays clear (vcpu_timer.c
      // kvm_riscv_vcpu_update_vstimecmp): state reads OFF and compare alone carries the timer.
      assert.equal(u64(vcpu.getOneReg(rv("timer.state"))), 0n);
      const restored = restoreMachine(encodeSnapshot(captureMachine(src)));
      using machine = restored.machine;
      const dst = machine.vcpus[0];
      assert.ok(dst !== undefined);
      assert.equal(u64(dst.getOneReg(rv("timer.compare"))), deadline, "with its deadline");
      return;
    }
    assert.equal(u64(vcpu.getOneReg(rv("timer.state"))), 1n);
    const snap = captureMachine(src);

    const restored = restoreMachine(encodeSnapshot(snap));
    using machine = restored.machine;
    const report = restored.report;
    const dst = machine.vcpus[0];
    assert.ok(dst !== undefined);
    assert.equal(u64(dst.getOneReg(rv("timer.state"))), 1n, "armed");
    assert.equal(u64(dst.getOneReg(rv("timer.compare"))), deadline, "with its deadline");
    assert.match(report.fixups.join(), /timer\.compare/);

    // Registers alone (no fixup) show why the rewrite exists: arming left compare = 1.
    using bare = RiscvDemoMachine.boot();
    restoreSnapshot(bare.vcpus, snap);
    assert.equal(u64(bare.softVcpu.getOneReg(rv("timer.compare"))), 1n);
  });
});
