/**
 * KVM guest RAM: regions above 4 GiB (no single view in Node 20, `view()` reaches every byte),
 * MAP_NORESERVE mappings larger than the host, and `close()` giving every mapping back at once.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { KvmSystem } from "../../../src/backends/kvm/index.js";
import { mapAnonymous, releasesAtOnce } from "../../../src/backends/kvm/ffi.js";
import { MAX_GUEST_WINDOW_BYTES } from "../../../src/backends/vcpu.js";
import { KVM_SKIP } from "./helpers.js";

const GIB = 2 ** 30;

function mappings(): number {
  return readFileSync("/proc/self/maps", "utf8").split("\n").length;
}

const NO_DETACH = releasesAtOnce()
  ? false
  : "the native addon (with detach) is not loaded: released memory is unmapped at GC";

describe("KvmVm guest RAM", { skip: KVM_SKIP }, () => {
  it("addMemory() of 8 GiB works: bytes refuses in one line, view() reaches above 4 GiB", () => {
    using system = KvmSystem.open();
    using vm = system.createVm();
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 8 * GIB });
    assert.equal(ram.size, 8 * GIB);
    assert.throws(() => ram.bytes, /Cannot view 8589934592 bytes .* use window/);
    const high = ram.view(7 * GIB + 5, 3);
    high.set([1, 2, 3]);
    assert.deepEqual([...vm.readGuest(7 * GIB + 5, 3)], [1, 2, 3]);
    vm.writeGuest(5 * GIB - 2, Uint8Array.of(9, 8, 7, 6));
    assert.deepEqual([...ram.view(5 * GIB - 2, 4)], [9, 8, 7, 6]);
    // Any range up to 2 GiB is one view, wherever it starts (the windows overlap).
    assert.equal(ram.view(3 * GIB + 4096, MAX_GUEST_WINDOW_BYTES).length, MAX_GUEST_WINDOW_BYTES);
    assert.equal(ram.view(6 * GIB, 2 * GIB).length, 2 * GIB);
    assert.throws(() => ram.view(8 * GIB - 1, 2), RangeError);
    assert.throws(() => ram.view(GIB, 4 * GIB), /one view is at most 2147483648 bytes/);
  });

  it("a 4 GiB region is one view", () => {
    using system = KvmSystem.open();
    using vm = system.createVm();
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 4 * GIB });
    assert.equal(ram.bytes.length, 4 * GIB);
    ram.bytes[4 * GIB - 1] = 0x5a;
    assert.equal(ram.view(4 * GIB - 1, 1)[0], 0x5a);
  });

  it("guest RAM larger than the host maps (MAP_NORESERVE): 32 GiB on this 24 GiB host", () => {
    using system = KvmSystem.open();
    using vm = system.createVm();
    const ram = vm.addMemory({ guestPhysAddr: 0, size: 32 * GIB });
    ram.view(31 * GIB, 8).fill(1);
    assert.equal(vm.readGuest(31 * GIB + 7, 1)[0], 1);
  });

  it("close() unmaps guest RAM, kvm_run and scratch at once", { skip: NO_DETACH }, () => {
    using system = KvmSystem.open();
    const before = mappings();
    const held: Uint8Array[] = [];
    for (let i = 0; i < 300; i++) {
      const vm = system.createVm();
      const ram = vm.addMemory({ guestPhysAddr: 0, size: 1 << 20 });
      vm.createVcpu().getRegs();
      // A VMM that keeps views after close must not keep the mapping (nor crash on use).
      held.push(ram.bytes);
      vm.close();
    }
    // Each VM maps at least three ranges (RAM, kvm_run, scratch); what remains is the JS heap's
    // own growth, far below one per VM.
    assert.ok(mappings() - before < 100, `${mappings() - before} mappings left by 300 VMs`);
    assert.ok(held.every((view) => view.length === 0 && view[0] === undefined));
  });

  it("released native memory is unreachable, never a fault", () => {
    const mem = mapAnonymous(4096);
    assert.ok(typeof mem !== "number");
    const view = mem.bytes;
    view[0] = 7;
    mem.release();
    mem.release();
    assert.equal(mem.released, true);
    // Addon path: detached (length 0); koffi path: fresh zero pages until collected.
    if (releasesAtOnce()) assert.equal(view.length, 0);
    else assert.equal(view[0], 0);
    assert.throws(() => mem.window(0, 1), /was released/);
  });
});
