import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { main } from "../../src/cli/main.js";
import { lookupReg } from "../../src/abi/catalog.js";
import { formatRegId, makeRegId } from "../../src/abi/regid.js";

// The shipped executable (package.json "bin"), bundled by scripts/bundle.mjs.
const BIN = fileURLToPath(new URL("../../bin/regvisor.js", import.meta.url));

async function run(argv: string[]): Promise<{ status: number; stdout: string }> {
  let stdout = "";
  const status = await main(argv, { stdout: (t) => (stdout += t) });
  return { status, stdout };
}

function spawn(argv: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The single object of a one-element JSON array. */
function only(text: string): Record<string, unknown> {
  const arr = JSON.parse(text) as Record<string, unknown>[];
  assert.equal(arr.length, 1);
  const [first] = arr;
  assert.ok(first !== undefined);
  return first;
}

describe("regvisor regs", () => {
  it("decode --json prints one object per id, in order, with the documented keys", async () => {
    const ra = lookupReg("riscv", "core.ra");
    const midr = lookupReg("arm64", "MIDR_EL1");
    const tsc = lookupReg("x86", "IA32_TSC");
    const r = await run([
      "regs",
      "decode",
      formatRegId(ra.id),
      midr.id.toString(10),
      formatRegId(tsc.id),
      "--json",
    ]);
    assert.equal(r.status, 0);
    const parsed = JSON.parse(r.stdout) as Record<string, unknown>[];
    assert.equal(parsed.length, 3);
    assert.deepEqual(
      parsed.map((p) => [p.id, p.arch, p.size, p.known, p.name, p.class]),
      [
        [formatRegId(ra.id), "riscv", 8, true, "core.ra", ra.class],
        [formatRegId(midr.id), "arm64", 8, true, "MIDR_EL1", midr.class],
        [formatRegId(tsc.id), "x86", 8, true, "IA32_TSC", tsc.class],
      ],
    );
    assert.deepEqual(parsed[1]?.fields, { op0: 3, op1: 0, crn: 0, crm: 0, op2: 0 });
    assert.equal((parsed[2]?.fields as Record<string, unknown>).msr, 0x10);
  });

  it("decode gives an unnamed arm64 sysreg its exact generic name", async () => {
    // op0=3 op1=0 CRn=15 CRm=15 op2=7 is an IMPLEMENTATION DEFINED space with no architectural name.
    const id = makeRegId(
      "arm64",
      8,
      (0x13n << 16n) | (3n << 14n) | (0n << 11n) | (15n << 7n) | (15n << 3n) | 7n,
    );
    const r = await run(["regs", "decode", formatRegId(id), "--json"]);
    const obj = only(r.stdout);
    assert.equal(obj.known, true);
    assert.equal(obj.name, "ARM64_SYS_REG(3,0,15,15,7)");
  });

  it("decode reports an id that fits no namespace as unknown", async () => {
    const r = await run(["regs", "decode", "0xa030000000000000", "--json"]);
    const obj = only(r.stdout);
    assert.equal(obj.known, false);
    assert.equal(obj.name, null);
    assert.equal(obj.arch, null);
  });

  it("decode prints an aligned human table", async () => {
    const ra = lookupReg("riscv", "core.ra");
    const r = await run(["regs", "decode", formatRegId(ra.id)]);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    assert.match(lines[0] ?? "", /^ID\s+ARCH\s+SIZE\s+NAME\s+CLASS\s+FIELDS$/);
    assert.equal(lines[0]?.indexOf("NAME"), lines[1]?.indexOf("core.ra"));
  });

  it("encode returns the id of a name, alias or generic name", async () => {
    const r = await run(["regs", "encode", "riscv", "a0", "--json"]);
    assert.equal(r.status, 0);
    const obj = only(r.stdout);
    assert.equal(obj.name, "core.a0");
    assert.equal(obj.id, formatRegId(lookupReg("riscv", "core.a0").id));
    const g = await run(["regs", "encode", "arm64", "ARM64_SYS_REG(3,0,15,15,7)", "--json"]);
    assert.equal(g.status, 0);
  });

  it("list --class filters a catalog", async () => {
    const r = await run(["regs", "list", "riscv", "--class", "core", "--json"]);
    const rows = JSON.parse(r.stdout) as Record<string, unknown>[];
    assert.equal(rows.length, 33);
    assert.ok(rows.every((row) => row.class === "core"));
  });

  const bad: [string, string[]][] = [
    ["decode with no id", ["regs", "decode"]],
    ["decode of a malformed id", ["regs", "decode", "0xnothex"]],
    ["decode of a negative id", ["regs", "decode", "-5"]],
    ["decode of a 65-bit id", ["regs", "decode", "0x1ffffffffffffffff"]],
    ["encode with an unknown arch", ["regs", "encode", "vax", "r0"]],
    ["encode with an unknown name", ["regs", "encode", "riscv", "core.nope"]],
    ["encode with no name", ["regs", "encode", "riscv"]],
    ["list with an unknown arch", ["regs", "list", "z80"]],
    ["list with an unknown class", ["regs", "list", "riscv", "--class", "nope"]],
    ["an unknown flag", ["regs", "decode", "1", "--frobnicate"]],
    ["an unknown subcommand", ["regs", "explode"]],
    ["an unknown command", ["explode"]],
  ];
  for (const [what, argv] of bad) {
    it(`${what} exits non-zero with a one-line error`, () => {
      const r = spawn(argv);
      assert.notEqual(r.status, 0);
      assert.match(r.stderr, /^regvisor: [^\n]+\n$/);
      assert.doesNotMatch(r.stderr, /\n\s+at /);
    });
  }

  it("--version prints the package version", () => {
    const r = spawn(["--version"]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});
