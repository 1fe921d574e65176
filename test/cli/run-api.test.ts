/**
 * `regvisor run --api PATH`: the control socket serves the running machine (src/vmm/api/
 * server.ts over the Machine), `regvisor ctl` and `curl --unix-socket` drive it, and the socket
 * goes away with the run. The guest is the soft backend's spinning RISC-V test guest, so the
 * test needs no /dev/kvm.
 */
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MachineStatus } from "../../src/vmm/api/control.js";
import {
  REPO,
  assertOneLineError,
  buildGuests,
  hasCommand,
  lastLine,
  regvisor,
} from "./run-file-helpers.js";

const BIN = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));
const skip = buildGuests("guests/riscv/tests", ["riscv64-unknown-elf-gcc"]);
const SPIN = join(REPO, "guests/riscv/tests/build/spin.elf");

interface Done {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command without blocking this process's event loop. */
function exec(cmd: string, argv: readonly string[]): Promise<Done> {
  return new Promise((resolve) => {
    execFile(cmd, argv, { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code;
      resolve({ status: typeof code === "number" ? code : 0, stdout, stderr });
    });
  });
}

const ctl = (argv: readonly string[]): Promise<Done> =>
  exec(process.execPath, [BIN, "ctl", ...argv]);

/** Starts `regvisor run --api path …` in the background; resolves when it exits. */
function startRun(path: string, args: readonly string[]): Promise<Done> {
  const child = spawn(process.execPath, [BIN, "run", "--api", path, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => {
    child.on("exit", (status) => {
      resolve({ status, stdout, stderr });
    });
  });
}

/** Waits until the socket file exists (the server listens before the guest runs). */
async function waitForSocket(path: string): Promise<void> {
  for (let i = 0; i < 300 && !existsSync(path); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.ok(existsSync(path), `the control socket ${path} appeared`);
}

describe("regvisor run --api", { skip: skip ?? false }, () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "regvisor-run-api-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("ctl status, pause, resume and quit drive the running machine; quit ends it with 0", async () => {
    const path = join(dir, "ctl.sock");
    const run = startRun(path, ["--timeout", "20", SPIN]);
    await waitForSocket(path);

    let r = await ctl([path, "status"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^running: 1 vCPU, \d+ exits, up [\d.]+ s \(elf on riscv, soft \(inline\)\)\n$/,
    );

    r = await ctl([path, "pause"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^paused: /);
    // Paused: no vCPU enters the guest, so the exit count stands still.
    const a = JSON.parse((await ctl([path, "status", "--json"])).stdout) as MachineStatus;
    await new Promise((res) => setTimeout(res, 200));
    const b = JSON.parse((await ctl([path, "status", "--json"])).stdout) as MachineStatus;
    assert.equal(a.state, "paused");
    assert.equal(b.exits, a.exits);

    r = await ctl([path, "resume"]);
    assert.match(r.stdout, /^running: /);
    r = await ctl([path, "quit"]);
    assert.equal(r.status, 0, r.stderr);

    const done = await run;
    assert.equal(done.status, 0, done.stderr);
    assert.match(
      lastLine(done.stderr),
      /^regvisor: the machine was stopped by a quit request at pc=0x[0-9a-f]+ after \d+ exits; exit status 0$/,
    );
    assert.equal(existsSync(path), false, "the socket is removed when the run ends");
  });

  it(
    "answers curl --unix-socket: status, pause, errors 404/405/400, quit",
    { skip: hasCommand("curl") ? false : "curl is not installed" },
    async () => {
      const path = join(dir, "curl.sock");
      const run = startRun(path, ["--timeout", "20", SPIN]);
      await waitForSocket(path);
      const curl = (args: readonly string[]): Promise<Done> =>
        exec("curl", ["-s", "-w", "\\n%{http_code}", "--unix-socket", path, ...args]);
      const split = (d: Done): [unknown, string] => {
        const at = d.stdout.lastIndexOf("\n");
        return [JSON.parse(d.stdout.slice(0, at)), d.stdout.slice(at + 1)];
      };

      let [body, code] = split(await curl(["http://localhost/status"]));
      assert.equal(code, "200");
      assert.equal((body as MachineStatus).state, "running");
      assert.equal((body as MachineStatus).backend, "soft (inline)");

      [body, code] = split(await curl(["-X", "PUT", "http://localhost/pause"]));
      assert.equal(code, "200");
      assert.equal((body as MachineStatus).state, "paused");

      [body, code] = split(await curl(["http://localhost/nope"]));
      assert.equal(code, "404");
      assert.match((body as { error: string }).error, /nope/);
      [, code] = split(await curl(["http://localhost/pause"]));
      assert.equal(code, "405");
      [, code] = split(await curl(["-X", "PUT", "-d", "{not json", "http://localhost/snapshot"]));
      assert.equal(code, "400");

      [, code] = split(await curl(["-X", "PUT", "http://localhost/quit"]));
      assert.equal(code, "200");
      const done = await run;
      assert.equal(done.status, 0, done.stderr);
    },
  );

  it("refuses a socket path that is a regular file, in one line, before the guest runs", () => {
    const path = join(dir, "taken");
    writeFileSync(path, "not a socket");
    const r = regvisor(["run", "--api", path, "--timeout", "5", SPIN]);
    assertOneLineError(r, 1, /taken/);
    assert.equal(r.stdout, "");
  });

  it("--api needs a FILE (the demo has no control socket)", () => {
    const r = regvisor(["run", "--api", join(dir, "x.sock")]);
    assertOneLineError(r, 2, /--api needs a FILE/);
  });
});
