/**
 * Issue 14 test (c): real gdb-multiarch against an x86-64 ELF with symbols running on KVM —
 * break at a function, `info registers rip rax`, `stepi`, continue to the guest's exit status.
 * The guest runs in the real `Machine` (runGuest, as `regvisor run` does); the stub is the
 * gdbstub server over ./x86-machine-target.ts.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { backendPicker } from "../../../src/cli/backends.js";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { planGdbRegisters } from "../../../src/vmm/arch/x86/gdb.js";
import { parseGdbAddress, startGdbServer } from "../../../src/vmm/gdbstub/server.js";
import { runGuest, type RunSummary } from "../../../src/vmm/runner.js";
import { X86MachineTarget } from "./x86-machine-target.js";

const GDB = "gdb-multiarch";
const SOURCE = fileURLToPath(new URL("../../../../guests/x86/tests/gdb-add.c", import.meta.url));
const ENTRY = 0x10_0000n;

const skip =
  kvmUnavailableReason() === undefined
    ? spawnSync(GDB, ["--version"]).status === 0
      ? spawnSync("gcc", ["--version"]).status === 0
        ? false
        : "needs gcc to build the x86-64 test guest"
      : `needs ${GDB} (scripts/setup.sh installs it)`
    : `needs /dev/kvm: ${kvmUnavailableReason() ?? ""}`;

/** Builds guests/x86/tests/gdb-add.c into `dir` as a static ELF64 at 0x100000 with DWARF. */
function buildGuest(dir: string): string {
  const elf = join(dir, "gdb-add.elf");
  // prettier-ignore
  const r = spawnSync("gcc", [
    "-m64", "-O1", "-g", "-ffreestanding", "-fno-pic", "-no-pie", "-nostdlib", "-static",
    "-fno-stack-protector", "-fcf-protection=none", "-fno-asynchronous-unwind-tables",
    "-mno-red-zone", "-Wl,--build-id=none", `-Wl,-Ttext=0x${ENTRY.toString(16)}`, "-Wl,-e,_start",
    "-o", elf, SOURCE,
  ], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return elf;
}

function gdb(elf: string, endpoint: string, commands: readonly string[]): Promise<string> {
  const args = ["-nx", "-batch", "-ex", "set confirm off", "-ex", `file ${elf}`];
  args.push("-ex", `target remote ${endpoint}`);
  for (const c of commands) args.push("-ex", c);
  return new Promise((resolve) => {
    execFile(GDB, args, { timeout: 60_000 }, (_error, stdout, stderr) => {
      resolve(stdout + stderr);
    });
  });
}

/** Runs the guest under the stub, drives GDB with `commands`, returns its output and the run. */
async function session(commands: readonly string[]): Promise<{ out: string; summary: RunSummary }> {
  const dir = mkdtempSync(join(tmpdir(), "regvisor-x86-gdb-"));
  using backends = backendPicker();
  try {
    const elf = buildGuest(dir);
    let target: X86MachineTarget | undefined;
    const run = runGuest({
      file: new Uint8Array(readFileSync(elf)),
      backendFor: backends.backendFor,
      output: () => undefined,
      collectRegisters: false,
      timeoutMs: 60_000,
      onMachine: (machine) => {
        target = new X86MachineTarget(machine);
      },
    });
    run.then(
      (summary) => target?.ended(summary.ending.status),
      () => target?.ended(255),
    );
    while (target === undefined) await new Promise((resolve) => setImmediate(resolve));
    await target.initialStop;
    const plan = planGdbRegisters(target.regList());
    const stub = await startGdbServer({
      address: parseGdbAddress("127.0.0.1:0"),
      target,
      planner: () => plan,
    });
    let out: string;
    try {
      out = await gdb(elf, stub.endpoint, commands);
    } finally {
      await stub.close();
    }
    return { out, summary: await run };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("real GDB on an x86-64 ELF on KVM", { skip }, () => {
  it("break add, info registers rip rax, stepi, continue to exit status 42", async () => {
    const { out, summary } = await session([
      "info registers rip",
      "break add",
      "continue",
      "info registers rip rax",
      "stepi",
      "info registers rip",
      "x/i $pc",
      "p total",
      "continue",
    ]);
    // The stop at the entry, before any instruction ran.
    assert.match(out, /rip\s+0x10000f\s+0x10000f <_start>/, out);
    assert.match(out, /Breakpoint 1 at 0x100000: file .*gdb-add\.c, line 12\./, out);
    assert.match(out, /Breakpoint 1, add \(a=a@entry=40, b=b@entry=2\) at .*gdb-add\.c:12/, out);
    assert.match(out, /rip\s+0x100000\s+0x100000 <add>\s*\nrax\s+0x[0-9a-f]+/, out);
    // stepi runs `add %esi,%edi` (2 bytes): rip moves to add+2.
    assert.match(out, /rip\s+0x100002\s+0x100002 <add\+2>/, out);
    assert.match(out, /=> 0x100002 <add\+2>:\s+mov\s+%edi,0x[0-9a-f]+\(%rip\)/, out);
    assert.match(out, /\$1 = 0/, "total not stored yet");
    assert.match(out, /\[Inferior 1 \(Remote target\) exited with code 052\]/, out);
    assert.equal(summary.ending.reason, "exit-port");
    assert.equal(summary.ending.status, 42);
  });

  it("a fifth breakpoint cannot be inserted (four debug registers); deleting one lets it run", async () => {
    const { out, summary } = await session([
      "break *0x100000",
      "break *0x100002",
      "break *0x100008",
      "break *0x10000e",
      "break *0x100014",
      "continue",
      "delete 5",
      "continue",
      "continue",
      "p total",
      "delete",
      "continue",
    ]);
    assert.match(
      out,
      /Cannot insert breakpoint 5\.\s*\nCannot access memory at address 0x100014/,
      out,
    );
    assert.match(out, /Breakpoint 1, add/, out);
    assert.match(out, /Breakpoint 2, 0x0000000000100002 in add/, out);
    assert.match(out, /\$1 = 0/, out);
    assert.match(out, /exited with code 052/, out);
    assert.equal(summary.ending.status, 42);
  });
});
