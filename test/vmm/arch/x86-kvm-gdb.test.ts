/**
 * Issue 14 test (c): `regvisor run --gdb … --gdb-wait` with an x86-64 ELF with symbols on KVM,
 * driven by a real gdb-multiarch in batch mode — break at a function, `info registers rip rax`,
 * `stepi`, continue to the guest's exit status — and the four-breakpoint limit of this host
 * (docs/kvm-guest-debug.md). Skips visibly without /dev/kvm, gdb-multiarch or gcc.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";

const BIN = fileURLToPath(new URL("../../../src/cli/bin.js", import.meta.url));
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

/** Runs gdb-multiarch in batch mode on `elf` against `endpoint`; resolves to its output. */
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

/** What `regvisor run` printed and how it ended. */
interface RunEnd {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Builds the guest, starts `regvisor run --gdb 127.0.0.1:0 --gdb-wait` on it, drives GDB with
 * `commands` once the stub listens; returns GDB's output and the run's end.
 */
async function session(commands: readonly string[]): Promise<{ out: string; run: RunEnd }> {
  const dir = mkdtempSync(join(tmpdir(), "regvisor-x86-gdb-"));
  try {
    const elf = buildGuest(dir);
    const child = spawn(process.execPath, [BIN, "run", "--gdb", "127.0.0.1:0", "--gdb-wait", elf], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const guard = setTimeout(() => child.kill("SIGKILL"), 90_000);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    const done = new Promise<RunEnd>((resolve) => {
      child.on("close", (status) => {
        clearTimeout(guard);
        resolve({ status, stdout, stderr });
      });
    });
    const endpoint = await new Promise<string>((resolve, reject) => {
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
        const m = /listening on (\S+) /.exec(stderr);
        if (m !== null) resolve(m[1] ?? "");
      });
      void done.then((r) => {
        reject(new Error(`regvisor ended before listening: ${r.stderr}`));
      });
    });
    const out = await gdb(elf, endpoint, commands);
    return { out, run: await done };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("run --gdb with a real gdb-multiarch (KVM backend, x86-64 ELF)", { skip }, () => {
  it("break add, info registers rip rax, stepi, continue to exit status 42", async () => {
    const { out, run } = await session([
      "info registers rip",
      "info registers orig_rax fs_base gs_base cr0 efer",
      "info registers STAR LSTAR",
      "break add",
      "continue",
      "info registers rip rax",
      "stepi",
      "info registers rip",
      "x/i $pc",
      "p total",
      "continue",
    ]);
    // --gdb-wait: stopped at the entry, before any instruction ran.
    assert.match(out, /rip\s+0x10000f\s+0x10000f <_start>/, out);
    // org.gnu.gdb.i386.linux: orig_rax (no syscall in a vCPU: -1); .segments; system registers
    // (long mode with paging: CR0.PG|PE, EFER.LMA|LME); MSRs by name in org.regvisor.x86.msr.
    assert.match(
      out,
      /orig_rax\s+0xffffffffffffffff\s+-1\s*\nfs_base\s+0x0\s+0\s*\ngs_base\s+0x0/,
      out,
    );
    assert.match(out, /cr0\s+0x8[0-9a-f]{6}[13579bdf]\s/, out);
    assert.match(out, /efer\s+0x5[0-9a-f]{2}\s/, out);
    assert.match(out, /STAR\s+0x[0-9a-f]+\s+\d+\s*\nLSTAR\s+0x[0-9a-f]+/, out);
    assert.match(out, /Breakpoint 1 at 0x100000: file .*gdb-add\.c, line 12\./, out);
    assert.match(out, /Breakpoint 1, add \(a=a@entry=40, b=b@entry=2\) at .*gdb-add\.c:12/, out);
    assert.match(out, /rip\s+0x100000\s+0x100000 <add>\s*\nrax\s+0x[0-9a-f]+/, out);
    // stepi runs `add %esi,%edi` (2 bytes): rip moves to add+2.
    assert.match(out, /rip\s+0x100002\s+0x100002 <add\+2>/, out);
    assert.match(out, /=> 0x100002 <add\+2>:\s+mov\s+%edi,0x[0-9a-f]+\(%rip\)/, out);
    assert.match(out, /\$1 = 0/, "total not stored yet (read through the guest's page tables)");
    assert.match(out, /\[Inferior 1 \(Remote target\) exited with code 052\]/, out);
    assert.equal(run.status, 42, run.stderr);
    assert.match(run.stderr, /the guest wrote 42 to the exit port 0xf4/);
  });

  it("a fifth breakpoint cannot be inserted (four debug registers); deleting one lets it run", async () => {
    const { out, run } = await session([
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
    assert.equal(run.status, 42, run.stderr);
  });
});
