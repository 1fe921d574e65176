/**
 * The bundled executable (scripts/bundle.mjs → dist/bin/regvisor.js, package.json "bin") finds
 * everything it names relative to itself or the package root from dist/bin: package.json, the
 * demo guests, the soft vCPU worker and its hart module, the KVM backend and its vCPU thread,
 * the register catalogs and x86 boot structures it loads on first use. And it stays lazy: a soft
 * run loads no koffi, so a RISC-V boot does not pay for the KVM backend.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { REPO } from "./run-file-helpers.js";

const BUNDLE = join(REPO, "dist/bin/regvisor.js");
const noKvm = kvmUnavailableReason();

function bundle(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BUNDLE, ...argv], { encoding: "utf8", env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Whether Node's module debug output shows koffi being loaded. */
function loadsKoffi(stderr: string): boolean {
  return /^MODULE \d+: .*koffi/m.test(stderr);
}

describe("the bundled regvisor executable", () => {
  it("is the package's bin and prints the package.json version", () => {
    const pkg = JSON.parse(readFileSync(join(REPO, "package.json"), "utf8")) as {
      version: string;
      bin: Record<string, string>;
    };
    assert.equal(pkg.bin.regvisor, "dist/bin/regvisor.js");
    const r = bundle(["--version"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it("runs the RISC-V demo inline without loading koffi, and `run` without --backend loads it", () => {
    const env = { ...process.env, NODE_DEBUG: "module" };
    const soft = bundle(["run", "--backend", "soft"], env);
    assert.equal(soft.status, 0, soft.stderr);
    assert.match(soft.stdout, /fib\(90\) = 2880067194370816120\n/);
    assert.ok(!loadsKoffi(soft.stderr), "a soft run loaded koffi");
    // The check is real: choosing a backend asks the KVM backend whether /dev/kvm is usable.
    const auto = bundle(["run"], env);
    assert.equal(auto.status, 0, auto.stderr);
    assert.ok(loadsKoffi(auto.stderr), "the KVM backend did not load koffi");
  });

  it("runs the RISC-V demo threaded: its vCPU worker and hart module are found", () => {
    const r = bundle(["run", "--backend", "soft", "--mode", "threaded"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /fib\(90\) = 2880067194370816120\n/);
  });

  it("decodes ids of every arch (catalogs loaded on first use)", () => {
    const ids: string[] = [];
    for (const [arch, name] of [
      ["riscv", "core.ra"],
      ["arm64", "MDCCINT_EL1"],
      ["x86", "IA32_TSC"],
    ] as const) {
      const r = bundle(["regs", "encode", arch, name]);
      assert.equal(r.status, 0, r.stderr);
      const id = /^0x[0-9a-f]{16}/m.exec(r.stdout)?.[0];
      assert.ok(id !== undefined, r.stdout);
      ids.push(id);
    }
    const d = bundle(["regs", "decode", ...ids]);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /riscv +8 +core\.ra /);
    assert.match(d.stdout, /arm64 +8 +MDCCINT_EL1 /);
    assert.match(d.stdout, /x86 +8 +IA32_TSC /);
  });

  it(
    "runs the x86 demo on KVM: the backend and its vCPU thread are found",
    { skip: noKvm ?? false },
    () => {
      const r = bundle(["run", "--backend", "kvm"]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /64-bit long mode/);
    },
  );
});
