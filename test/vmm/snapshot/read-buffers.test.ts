/**
 * Restore's reused planning-read buffers (plan-common.ts ReadBuffers) and captureVcpu()'s
 * views: a vCPU that reads into the caller's buffer gets the same buffer on the next restore,
 * never one a plan still alive is using, and a rollback always writes back what this
 * restore read.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupReg } from "../../../src/abi/catalog.js";
import { ERRNO } from "../../../src/abi/kvm/errno.js";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { regSize, type RegId } from "../../../src/abi/regid.js";
import { RestoreError } from "../../../src/vmm/snapshot/errors.js";
import { ReadBuffers } from "../../../src/vmm/snapshot/plan-common.js";
import { captureVcpu, restoreSnapshot, restoreVcpu } from "../../../src/vmm/snapshot/restore.js";
import { FakeVcpu, sameBytes, snapshotOf } from "./fake-vcpu.js";
import { RISCV_NAMES } from "./samples.js";

const rv = (name: string): RegId => lookupReg("riscv", name).id;

/** A fake that, like the KVM backend, can read MANY_REGS into the caller's buffer. */
class IntoVcpu extends FakeVcpu {
  /** Every buffer getManyRegsInto() filled, in order. */
  readonly intoBuffers: Uint8Array[] = [];

  getManyRegsInto(ids: readonly RegId[], out: Uint8Array): void {
    const bytes = this.getManyRegs(ids);
    if (out.length !== bytes.length) throw new RangeError("wrong length");
    out.set(bytes);
    this.intoBuffers.push(out);
  }
}

/** Source and destination over the same names, different values (timer.frequency equal). */
function pair(index = 0, seed = 1n, dstSeed = 50n): { src: FakeVcpu; dst: IntoVcpu } {
  const src = new FakeVcpu("riscv", index).addNamed(RISCV_NAMES, seed);
  const dst = new IntoVcpu("riscv", index).addNamed(RISCV_NAMES, dstSeed);
  dst.values.set(rv("timer.frequency"), src.getOneReg(rv("timer.frequency")));
  dst.readOnly.add(rv("timer.frequency"));
  return { src, dst };
}

/** Another source for `dst`: other values, the same read-only timer.frequency. */
function sourceFor(dst: FakeVcpu, seed: bigint): FakeVcpu {
  const src = new FakeVcpu("riscv", dst.index).addNamed(RISCV_NAMES, seed);
  src.values.set(rv("timer.frequency"), dst.getOneReg(rv("timer.frequency")));
  return src;
}

function assertValues(vcpu: FakeVcpu, want: ReadonlyMap<RegId, Uint8Array>): void {
  for (const [id, value] of want) {
    const got = vcpu.values.get(id);
    assert.ok(got !== undefined && sameBytes(got, value), `register ${id.toString(16)} differs`);
  }
}

describe("ReadBuffers", () => {
  it("hands out distinct buffers of the asked length until reset, then the same ones again", () => {
    const buffers = new ReadBuffers();
    const a = buffers.take(24);
    const b = buffers.take(24);
    const c = buffers.take(8);
    assert.notEqual(a, b);
    assert.deepEqual([a.length, b.length, c.length], [24, 24, 8]);
    buffers.reset();
    const again = [buffers.take(24), buffers.take(24), buffers.take(8)];
    assert.ok(again.includes(a) && again.includes(b) && again.includes(c));
    assert.notEqual(buffers.take(24), a, "a third 24-byte buffer is a new one");
  });
});

describe("restore with reused read buffers", () => {
  it("reads the destination into the same buffer on every restore, and restores each state", () => {
    const { src, dst } = pair();
    restoreVcpu(dst, captureVcpu(src), "riscv");
    assertValues(dst, src.values);
    const later = sourceFor(dst, 9n);
    restoreVcpu(dst, captureVcpu(later), "riscv");
    assertValues(dst, later.values);
    assert.equal(dst.intoBuffers.length, 2);
    assert.equal(dst.intoBuffers[0], dst.intoBuffers[1], "the second restore reused the buffer");
  });

  it("a failed restore after a successful one rolls back to what it read, not older values", () => {
    const written = RISCV_NAMES.filter((n) => n !== "timer.frequency");
    fc.assert(
      fc.property(fc.constantFrom(...written), (failing) => {
        const { src, dst } = pair();
        // The first restore leaves its read (dst's original values) in the shared buffer.
        restoreVcpu(dst, captureVcpu(sourceFor(dst, 20n)), "riscv");
        const before = dst.dump();
        dst.fail = (op, id) =>
          op === "set" && id === rv(failing)
            ? new KvmError({ ioctl: "KVM_SET_ONE_REG", errno: ERRNO.EINVAL, regId: id })
            : undefined;
        assert.throws(
          () => restoreVcpu(dst, captureVcpu(src), "riscv"),
          (e: unknown) => e instanceof RestoreError && e.code === "RESTORE_WRITE",
        );
        assertValues(dst, before);
      }),
    );
  });

  it("plans alive at once (several vCPUs) never share a buffer, and all roll back", () => {
    // vCPUs 1 and 2 plan the same reads (VM-wide registers go through vCPU 0 only), so their
    // buffers have the same length: they must still be two buffers.
    const vcpus = [pair(0, 1n, 50n), pair(1, 2n, 60n), pair(2, 3n, 70n)];
    const s = snapshotOf(...vcpus.map((p) => p.src));
    const before = vcpus.map((p) => p.dst.dump());
    const last = vcpus[2]?.dst;
    assert.ok(last !== undefined);
    last.fail = (op, id) =>
      op === "set" && id === rv("timer.state") ? new Error("injected") : undefined;
    assert.throws(
      () =>
        restoreSnapshot(
          vcpus.map((p) => p.dst),
          s,
        ),
      (e: unknown) => e instanceof RestoreError && e.code === "RESTORE_WRITE",
    );
    const [, one, two] = vcpus.map((p) => p.dst.intoBuffers[0]);
    assert.equal(one?.length, two?.length);
    assert.notEqual(one, two);
    vcpus.forEach((p, i) => {
      assert.ok(p.dst.writes.length > 0, `vCPU ${i} was written before the failure`);
      assertValues(p.dst, before[i] ?? new Map());
    });
  });
});

describe("captureVcpu()", () => {
  it("gives each register its own bytes: exactly its size, overlapping no other value", () => {
    const vcpu = new FakeVcpu("riscv").addNamed(RISCV_NAMES, 3n);
    const before = vcpu.dump();
    const state = captureVcpu(vcpu);
    assertValues(vcpu, new Map(state.regs.map((r) => [r.id, r.value])));
    // Mark every value with its position; an overlap would leave some value with another's.
    state.regs.forEach((r, i) => r.value.fill(i + 1));
    state.regs.forEach((r, i) => {
      assert.equal(r.value.length, regSize(r.id));
      assert.ok(
        r.value.every((x) => x === i + 1),
        `value ${i} was overwritten`,
      );
    });
    assertValues(vcpu, before);
  });
});
