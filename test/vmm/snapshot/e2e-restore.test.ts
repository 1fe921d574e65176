/**
 * Snapshot mid-run → restore in a NEW PROCESS → the same output and final registers as an
 * uninterrupted run, on both backends (the CLI in child processes; the baseline in this one).
 * Left out of the register comparison: IA32_TSC and timer.time (they count on), and on KVM
 * the CPUID pseudo-register, which is boot configuration: the machine takes it from
 * KVM_GET_SUPPORTED_CPUID, whose APIC-ID fields (leaf 1 EBX[31:24], leaf 0xB EDX) follow the
 * host CPU of the booting thread on this host (measured), so two independent boots may differ;
 * the restored vCPU must instead hold exactly the CPUID of the snapshot, which is checked.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { lookupReg } from "../../../src/abi/catalog.js";
import { valueHex } from "../../../src/vmm/snapshot/describe.js";
import { decodeSnapshot } from "../../../src/vmm/snapshot/index.js";
import { demoBaseline } from "./demo-run.js";
import { KVM_SKIP, TIME_VARYING, cli, differingRegs, tempDir, type RegMap } from "./e2e-helpers.js";

interface RestoreJson {
  backend: string;
  resumedAtExit: number;
  output: string;
  outputBefore: string;
  combinedOutput: string;
  clean: boolean;
  exits: number;
  registers: { name: string; value: string }[];
}

interface Case {
  readonly backend: "kvm" | "soft";
  readonly mode?: "inline" | "threaded";
  readonly restoreMode?: "inline" | "threaded";
  readonly exit: number;
  readonly why: string;
}

const SOFT_CASES: readonly Case[] = [
  { backend: "soft", mode: "inline", exit: 1, why: "after the first DBCN write" },
  { backend: "soft", mode: "inline", exit: 5, why: "the last console exit before SRST" },
  { backend: "soft", mode: "threaded", exit: 3, why: "threaded source and destination" },
  {
    backend: "soft",
    mode: "inline",
    restoreMode: "threaded",
    exit: 2,
    why: "inline snapshot resumed threaded",
  },
];

const KVM_CASES: readonly Case[] = [
  { backend: "kvm", exit: 0, why: "before the first KVM_RUN" },
  { backend: "kvm", exit: 66, why: "the IN of n: KVM completes it on the next KVM_RUN" },
  { backend: "kvm", exit: 96, why: "the last OUT before HLT" },
];

let softBase: { output: string; exits: number; regs: RegMap } | undefined;
let kvmBase: { output: string; exits: number; regs: RegMap } | undefined;

async function base(c: Case): Promise<{ output: string; exits: number; regs: RegMap }> {
  if (c.backend === "kvm") return (kvmBase ??= await demoBaseline("kvm"));
  return (softBase ??= await demoBaseline("soft"));
}

async function runCase(c: Case): Promise<void> {
  using dir = tempDir();
  const file = dir.file("demo.snap");
  const runArgs = ["run", "--backend", c.backend, "--snapshot-at-exit", String(c.exit)];
  if (c.mode !== undefined) runArgs.push("--mode", c.mode);
  const first = cli([...runArgs, "--snapshot-out", file]);
  assert.equal(first.status, 0, first.stderr);
  assert.match(first.stderr, new RegExp(`snapshot at exit ${c.exit} `));

  const restoreArgs = ["restore", file, "--json", "--dump-regs"];
  if (c.restoreMode !== undefined) restoreArgs.push("--mode", c.restoreMode);
  const second = cli(restoreArgs);
  assert.equal(second.status, 0, second.stderr);
  const json = JSON.parse(second.stdout) as RestoreJson;
  const expected = await base(c);

  assert.equal(first.stdout + json.output, expected.output, "run + restore output");
  assert.equal(json.outputBefore, first.stdout);
  assert.equal(json.combinedOutput, expected.output);
  assert.equal(json.clean, true);
  assert.equal(json.resumedAtExit, c.exit);
  assert.equal(json.exits, expected.exits, "exits before + after = uninterrupted");
  const wantBackend = c.backend === "kvm" ? "kvm" : `soft-${c.restoreMode ?? c.mode ?? "inline"}`;
  assert.equal(json.backend, wantBackend);

  const restored = new Map(json.registers.map((r) => [r.name, r.value]));
  const skip = new Set([...TIME_VARYING[c.backend], ...(c.backend === "kvm" ? ["CPUID"] : [])]);
  assert.deepEqual(differingRegs(expected.regs, restored, skip), []);
  for (const name of skip) assert.ok(restored.has(name), `${name} is still listed`);
  if (c.backend === "kvm") {
    const snap = decodeSnapshot(new Uint8Array(readFileSync(file)));
    const cpuid = snap.vcpus[0]?.regs.find((r) => r.id === lookupReg("x86", "CPUID").id);
    assert.ok(cpuid !== undefined);
    assert.equal(restored.get("CPUID"), valueHex(cpuid.value), "CPUID is the snapshot's");
  }
}

describe("snapshot → restore in a new process → same output and registers (soft)", () => {
  for (const c of SOFT_CASES) {
    const how = c.restoreMode === undefined ? c.mode : `${c.mode} → ${c.restoreMode}`;
    it(`soft ${how ?? ""} at exit ${c.exit} (${c.why})`, async () => {
      await runCase(c);
    });
  }
});

describe("snapshot → restore in a new process → same output and registers (KVM)", () => {
  for (const c of KVM_CASES) {
    it(`kvm at exit ${c.exit} (${c.why})`, { skip: KVM_SKIP }, async () => {
      await runCase(c);
    });
  }
});
