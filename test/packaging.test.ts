/**
 * What users get: the packed file list (`npm pack --dry-run`) holds the library, its docs, the
 * demo guests and the native source — no test files and no built test guests — and the
 * library entry points expose the library, not the demos: `regvisor/snapshot` loads no native
 * code and `regvisor/kvm` / `regvisor/soft` export no demo helpers.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REPO = join(dirname(fileURLToPath(import.meta.url)), "../..");
const NO_KOFFI = join(REPO, "test/data/no-koffi.mjs");

/** The paths `npm pack` would put in the tarball. */
function packedFiles(): string[] {
  const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
    cwd: REPO,
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { files: { path: string }[] }[];
  return (out[0]?.files ?? []).map((f) => f.path);
}

/** Runs `code` as an ES module in the package (self-reference by name) with koffi blocked. */
function withoutKoffi(code: string): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ["--import", NO_KOFFI, "--input-type=module", "-e", code], {
    cwd: REPO,
    encoding: "utf8",
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the npm package", () => {
  it("npm pack ships the library, LICENSE, docs and demo guests, no tests or built test guests", () => {
    // A stray built test guest, as a developer's tree has after the test suite ran.
    const stray = join(REPO, "guests/x86/tests/build/pack-probe.elf");
    mkdirSync(dirname(stray), { recursive: true });
    writeFileSync(stray, "probe");
    let files: string[];
    try {
      files = packedFiles();
    } finally {
      rmSync(stray, { force: true });
    }
    const bad = files.filter((p) => /(^|\/)build\//.test(p) || /^(dist\/)?test\//.test(p));
    assert.deepEqual(bad, []);
    for (const need of [
      "LICENSE",
      "README.md",
      "docs/DESIGN.md",
      "docs/kvm-register-abi.md",
      "dist/src/index.js",
      "dist/src/cli/bin.js",
      "dist/bin/regvisor.js",
      "dist/bin/package.json",
      "dist/bin/cli.cjs",
      "dist/bin/cli.cache",
      "dist/bin/worker.mjs",
      "dist/bin/riscv/hart.mjs",
      "dist/bin/run-thread.mjs",
      "guests/x86/demo.bin",
      "guests/x86/exit-loop.bin",
      "guests/riscv/demo/demo.bin",
      "native/kvm_ioctl.cc",
    ]) {
      assert.ok(files.includes(need), `${need} is not packed`);
    }
  });

  it('import("regvisor/snapshot") does not load koffi', () => {
    const r = withoutKoffi(
      'const m = await import("regvisor/snapshot"); console.log(typeof m.encodeSnapshot);',
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "function\n");
    // The guard is real: the KVM entry point does need koffi.
    const kvm = withoutKoffi('await import("regvisor/kvm");');
    assert.notEqual(kvm.status, 0);
    assert.match(kvm.stderr, /koffi was loaded/);
  });

  it("regvisor/kvm, regvisor/soft and regvisor/snapshot export no demo helpers", async () => {
    const demos = [
      "runDemo",
      "bootFlatGuest",
      "bundledGuest",
      "bundledGuestPath",
      "DEMO_CONSOLE_PORT",
      "runSoftDemo",
      "softDemoImagePath",
      "X86DemoMachine",
      "RiscvDemoMachine",
      "MACHINE_KINDS",
    ];
    for (const entry of ["kvm", "soft", "snapshot"]) {
      const m = (await import(`regvisor/${entry}`)) as Record<string, unknown>;
      const found = demos.filter((name) => name in m);
      assert.deepEqual(found, [], `regvisor/${entry} exports ${found.join(", ")}`);
    }
  });
});
