import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));
const NO_KOFFI = fileURLToPath(new URL("../../../test/data/no-koffi.mjs", import.meta.url));
const REPORT = fileURLToPath(new URL("../../../test/data/report-loads.mjs", import.meta.url));
const DEMO = fileURLToPath(new URL("../../../guests/riscv/demo/demo.bin", import.meta.url));

function spawn(argv: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", NO_KOFFI, BIN, ...argv], {
    encoding: "utf8",
  });
  return { status: r.status, stderr: r.stderr };
}

/** A soft `run FILE` of the RISC-V demo. */
const SOFT_RUN = ["run", "--backend", "soft", "--load-addr", "0x80200000", DEMO];
let softLoads: { loaded: string[]; stderr: string } | undefined;

/** The modules SOFT_RUN loads (test/data/report-loads.mjs), run once for the tests reading them. */
function softRunLoads(): { loaded: string[]; stderr: string } {
  if (softLoads === undefined) {
    const r = spawnSync(process.execPath, ["--import", REPORT, BIN, ...SOFT_RUN], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    const loaded = r.stderr.split("\n").filter((l) => l.startsWith("loaded "));
    softLoads = { loaded, stderr: r.stderr };
  }
  return softLoads;
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

  it("a soft run loads neither the snapshot format and restore code nor node:crypto", () => {
    const { loaded, stderr } = softRunLoads();
    // The report works: the machine itself was loaded.
    assert.ok(loaded.includes("loaded src/vmm/machine/machine.js"), stderr);
    for (const absent of [
      "loaded node:crypto",
      "loaded src/vmm/machine/state.js",
      "loaded src/vmm/snapshot/restore.js",
      "loaded src/vmm/snapshot/format.js",
      "loaded src/vmm/snapshot/crc32c.js",
    ]) {
      assert.ok(!loaded.includes(absent), `${absent}:\n${loaded.join("\n")}`);
    }
  });

  it("a soft run FILE primes the soft engine before it loads the run command (src/cli/early.ts)", () => {
    const { loaded, stderr } = softRunLoads();
    const hart = loaded.indexOf("loaded src/backends/soft/riscv/hart.js");
    const run = loaded.indexOf("loaded src/cli/run.js");
    assert.ok(hart >= 0 && run >= 0, stderr);
    assert.ok(hart < run, `the hart after the run command:\n${loaded.join("\n")}`);
  });

  it("a soft run FILE loads no x86 machine, foreign catalog, register dump or disk code unasked", () => {
    const { loaded, stderr } = softRunLoads();
    assert.ok(loaded.includes("loaded src/vmm/arch/riscv/index.js"), stderr);
    for (const absent of [
      "loaded src/vmm/arch/x86/index.js",
      "loaded src/abi/kvm/x86-structs.js",
      "loaded src/vmm/x86-boot.js",
      "loaded src/vmm/x86-tables.js",
      "loaded src/vmm/runner.js",
      "loaded src/cli/registers.js",
      "loaded src/backends/register-view.js",
      "loaded src/vmm/machine/disks.js",
      // Foreign register catalogs (src/abi/catalog.ts loads each on first use).
      "loaded src/abi/arch/x86/index.js",
      "loaded src/abi/arch/arm64/index.js",
      "loaded src/abi/arch/arm/index.js",
    ]) {
      assert.ok(!loaded.includes(absent), `${absent}:\n${loaded.join("\n")}`);
    }
    // --dump-regs still loads the dump and prints it.
    const dump = spawnSync(process.execPath, [BIN, ...SOFT_RUN, "--dump-regs"], {
      encoding: "utf8",
    });
    assert.equal(dump.status, 0, dump.stderr);
    assert.match(dump.stdout, /^core\.pc +0x[0-9a-f]{16} +8 +0x[0-9a-f]{16}$/m);
  });
});
