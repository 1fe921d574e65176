/**
 * Soft guest RAM: every slot size up to the 4 GiB one typed array holds (the hart's DataView and
 * Atomics views over a 2–4 GiB slot), one-line refusal above it, `GuestMemory.view()`, and
 * `close()` letting go of the RAM.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { createSoftVm } from "../../../src/backends/soft/create.js";
import { Slot } from "../../../src/backends/soft/riscv/memory.js";
import { SOFT_MAX_SLOT_BYTES, allocGuestMemory } from "../../../src/backends/soft/vm.js";

const GIB = 2 ** 30;

describe("soft guest RAM", () => {
  for (const size of [3 * GIB, 4 * GIB]) {
    it(`a ${size / GIB} GiB memslot gets whole Atomics views (no int32 count)`, () => {
      const bytes = allocGuestMemory(size);
      const slot = new Slot({ slot: 0, gpa: 0x8000_0000, bytes, readonly: false });
      assert.equal(slot.size, size);
      assert.equal(slot.i32?.length, size / 4);
      assert.equal(slot.i64?.length, size / 8);
      assert.ok(slot.i32 instanceof Int32Array);
      Atomics.store(slot.i32, size / 4 - 1, 0x1234);
      assert.equal(slot.dv.getInt32(size - 4, true), 0x1234);
    });
  }

  it("allocGuestMemory() above 4 GiB is refused in one line that says why", () => {
    assert.equal(SOFT_MAX_SLOT_BYTES, 4 * GIB);
    assert.throws(
      () => allocGuestMemory(4 * GIB + 4096),
      (e: unknown) =>
        e instanceof RangeError &&
        !e.message.includes("\n") &&
        e.message.includes("at most 4294967296 bytes (4 GiB) in Node 20"),
    );
  });

  it("GuestMemory.view() is a bounds-checked zero-copy window", () => {
    using vm = createSoftVm();
    const ram = vm.addMemory({ guestPhysAddr: 0x8000_0000n, size: 1 << 20 });
    ram.view(4096, 2).set([7, 9]);
    assert.deepEqual([...ram.bytes.subarray(4096, 4098)], [7, 9]);
    assert.deepEqual([...(vm.memory[0]?.view(4097, 1) ?? [])], [9]);
    assert.throws(() => ram.view((1 << 20) - 1, 2), RangeError);
    assert.throws(() => ram.view(-1, 1), RangeError);
  });

  it("close() drops the VM's hold on guest RAM", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const vm = createSoftVm();
    vm.createVcpu();
    const ref = new WeakRef(vm.addMemory({ guestPhysAddr: 0x8000_0000n, size: 1 << 20 }).bytes);
    vm.close();
    // Collection happens on a later turn; the VM object itself stays reachable here.
    await new Promise((resolve) => setImmediate(resolve));
    gc();
    assert.equal(ref.deref(), undefined, "the closed VM still holds its RAM");
    assert.ok(vm.memory.length === 0);
  });
});
