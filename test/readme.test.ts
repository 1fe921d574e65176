/**
 * The README's quick-start code, run as written (through the package's own entry points), so
 * the documentation cannot drift from the API.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg, regSize } from "../src/index.js";
import type { Vm } from "../src/index.js";
import { KvmSystem, kvmUnavailableReason } from "../src/backends/kvm/index.js";
import { createSoftVm } from "../src/backends/soft/index.js";

function saveState(vm: Vm): Uint8Array {
  const vcpu = vm.createVcpu();
  const ids = vcpu.regList();
  const bytes = vcpu.getManyRegs(ids);
  assert.equal(
    bytes.length,
    ids.reduce((n, id) => n + regSize(id), 0),
  );
  return bytes;
}

describe("README quick start", () => {
  it("saveState() works on the soft backend in a Worker", () => {
    using vm = createSoftVm({ mode: "threaded" });
    const state = saveState(vm);
    assert.ok(state.length > 0);
    assert.equal(lookupReg("riscv", "pc").arch, vm.arch);
  });

  it("saveState() works on /dev/kvm", { skip: kvmUnavailableReason() ?? false }, () => {
    using kvm = KvmSystem.open();
    using vm = kvm.createVm();
    assert.ok(saveState(vm).length > 0);
  });
});
