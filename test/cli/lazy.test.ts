import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));
const NO_KOFFI = fileURLToPath(new URL("../../../test/data/no-koffi.mjs", import.meta.url));

function spawn(argv: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", NO_KOFFI, BIN, ...argv], {
    encoding: "utf8",
  });
  return { status: r.status, stderr: r.stderr };
}

describe("the CLI loads backends on demand", () => {
  it("regs decode works where the FFI library cannot load", () => {
    const r = spawn(["regs", "decode", "0x8030000002000001"]);
    assert.equal(r.status, 0, r.stderr);
  });

  it("a soft run never loads the KVM backend (koffi): a RISC-V boot does not pay for it", () => {
    const r = spawn(["run", "--backend", "soft"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /soft guest ended/);
  });

  it("the guard really blocks koffi: a KVM run fails with its error", () => {
    const r = spawn(["run", "--backend", "kvm"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /koffi was loaded/);
  });
});
