import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { MachineControl, MachineStatus } from "../../src/vmm/api/control.js";
import { startApiServer, type ApiServer } from "../../src/vmm/api/server.js";

const BIN = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));

/** Runs the CLI without blocking this process's event loop (the server lives here). */
function cli(argv: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...argv], { timeout: 30_000 }, (error, stdout, stderr) => {
      const code = (error as { code?: unknown } | null)?.code;
      resolve({ status: typeof code === "number" ? code : 0, stdout, stderr });
    });
  });
}

describe("regvisor ctl", () => {
  let dir: string;
  let path: string;
  let server: ApiServer;
  let state: MachineStatus["state"] = "running";
  const calls: string[] = [];
  const control: MachineControl = {
    status: () => ({
      state,
      vcpus: 1,
      exits: 7,
      uptimeMs: 2500,
      guest: "linux",
      arch: "riscv",
      backend: "soft threaded",
    }),
    pause: () => {
      calls.push("pause");
      state = "paused";
      return Promise.resolve();
    },
    resume: () => {
      calls.push("resume");
      state = "running";
      return Promise.resolve();
    },
    snapshot: (p) => {
      calls.push(`snapshot ${p}`);
      return Promise.resolve({ path: p, bytes: 99 });
    },
    quit: () => {
      calls.push("quit");
      state = "stopped";
      return Promise.resolve();
    },
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "regvisor-ctl-"));
    path = join(dir, "api.sock");
    server = await startApiServer({ path, control });
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("status prints one line; --json prints the server's answer", async () => {
    let r = await cli(["ctl", path, "status"]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "running: 1 vCPU, 7 exits, up 2.5 s (linux on riscv, soft threaded)\n");
    r = await cli(["ctl", path, "status", "--json"]);
    assert.equal((JSON.parse(r.stdout) as MachineStatus).exits, 7);
  });

  it("pause, snapshot, resume and quit reach the machine in order", async () => {
    calls.length = 0;
    assert.match((await cli(["ctl", path, "pause"])).stdout, /^paused: /);
    const snap = await cli(["ctl", path, "snapshot", join(dir, "m.snap")]);
    assert.equal(snap.stdout, `snapshot written to ${join(dir, "m.snap")}: 99 bytes\n`);
    assert.match((await cli(["ctl", path, "resume"])).stdout, /^running: /);
    assert.match((await cli(["ctl", path, "quit"])).stdout, /^stopped: /);
    assert.deepEqual(calls, ["pause", `snapshot ${join(dir, "m.snap")}`, "resume", "quit"]);
  });

  it("bad command lines exit 2 with one line and send nothing", async () => {
    calls.length = 0;
    for (const argv of [
      ["ctl"],
      ["ctl", path],
      ["ctl", path, "reboot"],
      ["ctl", path, "pause", "x"],
      ["ctl", path, "snapshot"],
    ]) {
      const r = await cli(argv);
      assert.equal(r.status, 2, argv.join(" "));
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    }
    assert.deepEqual(calls, []);
  });

  it("a missing socket exits 1 with a one-line hint", async () => {
    const r = await cli(["ctl", join(dir, "none.sock"), "status"]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^regvisor: no control socket at .*none\.sock \(is 'regvisor run --api/);
    assert.equal(r.stderr.trim().split("\n").length, 1);
  });
});
