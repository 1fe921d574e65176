import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as regvisor from "../src/index.js";

describe("package entry point", () => {
  it("the README's example works through the public exports", () => {
    const id = regvisor.parseRegId("0x8030000002000001");
    assert.equal(regvisor.regSize(id), 8);
    const decoded = regvisor.decodeReg(id);
    assert.ok(decoded.known);
    assert.equal(decoded.name, "core.ra");
    assert.equal(
      regvisor.formatRegId(regvisor.lookupReg("arm64", "MIDR_EL1").id),
      "0x603000000013c000",
    );
    assert.equal(regvisor.IOCTLS.KVM_GET_ONE_REG.number, 0x4010aeab);
  });

  it("KvmError names the register, the ioctl and the errno", () => {
    const err = new regvisor.KvmError({
      action: "Cannot set",
      ioctl: "KVM_SET_ONE_REG",
      errno: regvisor.ERRNO.EBUSY,
      regId: regvisor.lookupReg("riscv", "core.ra").id,
    });
    assert.equal(
      err.message,
      "Cannot set register 0x8030000002000001 (riscv core.ra): KVM_SET_ONE_REG failed with EBUSY",
    );
    assert.equal(err.code, "KVM_EBUSY");
    assert.ok(err.is("EBUSY"));
    const bare = new regvisor.KvmError({
      ioctl: "KVM_GET_ONE_REG",
      errno: regvisor.ERRNO.ENOENT,
      regId: regvisor.lookupReg("riscv", "timer.state").id,
      index: 3,
    });
    assert.equal(
      bare.message,
      "KVM_GET_ONE_REG failed for register 0x8030000004000003 (riscv timer.state) at batch index 3: ENOENT",
    );
    const json = err.toJSON();
    assert.equal(json.regName, "riscv core.ra");
    assert.equal(json.errnoName, "EBUSY");
  });
});
