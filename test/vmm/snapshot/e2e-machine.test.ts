/**
 * Snapshots of any machine (issue 11 point 7), through the CLI in new processes: a bare-metal
 * RISC-V ELF and an x86 ELF stopped at exit N and restored in a NEW process print exactly what
 * an uninterrupted run prints, with the same status; a machine with a virtio-blk disk restores
 * only onto the same disk (a changed or missing one is refused in one line naming it, and
 * nothing runs) unless --allow-disk-change; a running machine is snapshotted through the
 * control socket (`regvisor ctl PATH snapshot FILE`) and goes on running.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { decodeSnapshot } from "../../../src/vmm/snapshot/index.js";
import {
  REPO,
  assertOneLineError,
  buildGuests,
  lastLine,
  regvisor,
} from "../../cli/run-file-helpers.js";
import { tempDir } from "./e2e-helpers.js";

const BIN = fileURLToPath(new URL("../../../src/cli/bin.js", import.meta.url));
const riscvSkip = buildGuests("guests/riscv/tests", ["riscv64-unknown-elf-gcc"]);
const noKvm = kvmUnavailableReason();
const x86Skip =
  noKvm === undefined ? buildGuests("guests/x86/tests", ["as", "ld"]) : `/dev/kvm: ${noKvm}`;
const riscv = (name: string): string => join(REPO, "guests/riscv/tests/build", name);
const x86 = (name: string): string => join(REPO, "guests/x86/tests/build", name);

/**
 * Runs FILE whole, then stopped at exit N + restored in a new process; both must agree. Console
 * input goes to the restored run only: bytes a UART took into its FIFO before the snapshot are
 * device state and travel in the file, so the first run gets none to keep the split exact.
 */
function sameAsUninterrupted(args: readonly string[], n: number, input = ""): void {
  using dir = tempDir();
  const snap = dir.file("m.snap");
  const whole = regvisor(["run", ...args], input);
  const first = regvisor(
    ["run", ...args, "--snapshot-at-exit", String(n), "--snapshot-out", snap],
    "",
  );
  assert.equal(first.status, 0, first.stderr);
  assert.match(lastLine(first.stderr), new RegExp(`snapshot at exit ${n} .* written to`));
  const second = regvisor(["restore", snap], input);
  assert.equal(second.status, whole.status, second.stderr);
  assert.equal(first.stdout + second.stdout, whole.stdout);
  assert.match(lastLine(second.stderr), new RegExp(`^regvisor: resumed .* at exit ${n}; `));
}

describe("snapshot at exit N → restore in a new process", () => {
  it(
    "a bare-metal RISC-V ELF (SBI console, UART, PLIC state)",
    { skip: riscvSkip ?? false },
    () => {
      sameAsUninterrupted([riscv("console.elf")], 30);
    },
  );

  it(
    "an x86 ELF in long mode (port 0xe9, COM1 input, exit port)",
    { skip: x86Skip ?? false },
    () => {
      sameAsUninterrupted([x86("long.elf")], 20, "hi!");
    },
  );
});

describe("disks are reattached by path and checked", { skip: riscvSkip ?? false }, () => {
  it("a changed or missing disk is refused in one line naming it; --allow-disk-change overrides", () => {
    using dir = tempDir();
    const disk = dir.file("disk.img");
    writeFileSync(disk, new Uint8Array(64 * 1024).fill(7));
    const snap = dir.file("d.snap");
    const args = ["run", riscv("console.elf"), "--disk", disk];
    const first = regvisor([...args, "--snapshot-at-exit", "30", "--snapshot-out", snap]);
    assert.equal(first.status, 0, first.stderr);
    const described = decodeSnapshot(new Uint8Array(readFileSync(snap))).devices.map((d) => d.name);
    assert.ok(described.includes("virtio-blk0"), described.join(","));

    const changed = readFileSync(disk);
    changed[4096] = 8;
    writeFileSync(disk, changed);
    const refused = regvisor(["restore", snap]);
    assertOneLineError(refused, 1, /Cannot reattach disk ".*disk\.img": its contents changed/);
    assert.equal(refused.stdout, "", "nothing ran");
    const allowed = regvisor(["restore", snap, "--allow-disk-change"]);
    assert.equal(allowed.status, 0, allowed.stderr);
    assert.ok(allowed.stdout.length > 0);

    writeFileSync(disk, changed.subarray(0, 4096));
    assertOneLineError(
      regvisor(["restore", snap]),
      1,
      /disk\.img": it is 4096 bytes, the snapshot's was 65536/,
    );
  });
});

/** Spawns `regvisor argv` and resolves once its stdout has shown `ready`. */
function startRun(argv: readonly string[], ready: string) {
  const child = spawn(process.execPath, [BIN, ...argv], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const done = new Promise<number | null>((resolve) => child.on("close", resolve));
  const seen = new Promise<void>((resolve) => {
    child.stdout.on("data", (b: Buffer) => {
      stdout += b.toString();
      if (stdout.includes(ready)) resolve();
    });
  });
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  return { seen, done, out: () => stdout, err: () => stderr };
}

describe("the control socket snapshots a running machine", { skip: riscvSkip ?? false }, () => {
  it("ctl PATH snapshot FILE: pause, capture, write, resume; the file restores", async () => {
    using dir = tempDir();
    const sock = dir.file("api.sock");
    const snap = dir.file("live.snap");
    const run = startRun(["run", "--api", sock, "--timeout", "30", riscv("spin.elf")], "\n");
    await run.seen;
    for (let i = 0; i < 100 && !existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
    const taken = regvisor(["ctl", sock, "snapshot", snap]);
    assert.equal(taken.status, 0, taken.stderr);
    assert.match(taken.stdout, /snapshot written to .*live\.snap: \d+ bytes/);
    const status = JSON.parse(regvisor(["ctl", sock, "status", "--json"]).stdout) as {
      state: string;
    };
    assert.equal(status.state, "running", "resumed after the snapshot");
    assert.equal(regvisor(["ctl", sock, "quit"]).status, 0);
    assert.equal(await run.done, 0, run.err());

    const restored = regvisor(["restore", snap, "--timeout", "0.5"]);
    assert.equal(restored.status, 124, restored.stderr);
    assert.match(
      lastLine(restored.stderr),
      /resumed soft-inline riscv-elf machine at exit \d+; .*--timeout/,
    );
  });
});
