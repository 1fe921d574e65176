import { describe, it, beforeEach, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ControlError,
  type MachineControl,
  type MachineState,
  type MachineStatus,
} from "../../../src/vmm/api/control.js";
import { ApiClientError, apiRequest } from "../../../src/vmm/api/client.js";
import { startApiServer, type ApiServer } from "../../../src/vmm/api/server.js";

/** A machine double that records every call the server makes. */
class FakeMachine implements MachineControl {
  state: MachineState = "running";
  calls: string[] = [];
  snapshotFailure: Error | undefined;

  status(): MachineStatus {
    return {
      state: this.state,
      vcpus: 2,
      exits: 42,
      uptimeMs: 1500,
      guest: "elf",
      arch: "riscv",
      backend: "soft threaded",
    };
  }
  pause(): Promise<void> {
    this.calls.push("pause");
    if (this.state === "stopped") throw new ControlError(409, "the machine has stopped");
    this.state = "paused";
    return Promise.resolve();
  }
  resume(): Promise<void> {
    this.calls.push("resume");
    if (this.state === "stopped") throw new ControlError(409, "the machine has stopped");
    this.state = "running";
    return Promise.resolve();
  }
  async snapshot(path: string) {
    this.calls.push(`snapshot ${path}`);
    // A snapshot takes a moment; a concurrent quit must wait for it.
    await new Promise((r) => setTimeout(r, 30));
    if (this.snapshotFailure) throw this.snapshotFailure;
    return { path, bytes: 1234 };
  }
  quit(): Promise<void> {
    this.calls.push("quit");
    this.state = "stopped";
    return Promise.resolve();
  }
}

/** Sends raw bytes and returns everything the server answers until it closes. */
function raw(path: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let text = "";
    socket.on("data", (chunk) => (text += chunk.toString("latin1")));
    socket.on("end", () => {
      resolve(text);
    });
    socket.on("error", reject);
    socket.write(bytes);
    setTimeout(() => socket.end(), 200);
  });
}

describe("control socket server", () => {
  let dir: string;
  let machine: FakeMachine;
  let server: ApiServer;
  let path: string;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "regvisor-api-"));
    path = join(dir, "api.sock");
    machine = new FakeMachine();
    server = await startApiServer({ path, control: machine, maxBodyBytes: 1024 });
  });
  afterEach(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("creates the socket with mode 0600 and removes it on close", async () => {
    assert.ok(statSync(path).isSocket());
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await server.close();
    assert.equal(existsSync(path), false);
  });

  it("GET /status answers the machine's status", async () => {
    const r = await apiRequest(path, "GET", "/status");
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, machine.status());
    assert.deepEqual(machine.calls, []);
  });

  it("PUT /pause, /resume and /quit call the machine and answer its new status", async () => {
    let r = await apiRequest(path, "PUT", "/pause");
    assert.equal((r.body as MachineStatus).state, "paused");
    r = await apiRequest(path, "PUT", "/resume", {});
    assert.equal((r.body as MachineStatus).state, "running");
    r = await apiRequest(path, "PUT", "/quit");
    assert.equal((r.body as MachineStatus).state, "stopped");
    assert.deepEqual(machine.calls, ["pause", "resume", "quit"]);
  });

  it("PUT /snapshot resolves the path and answers what was written", async () => {
    const r = await apiRequest(path, "PUT", "/snapshot", { path: "rel/x.snap" });
    assert.equal(r.status, 200);
    const want = join(process.cwd(), "rel/x.snap");
    assert.deepEqual(r.body, { path: want, bytes: 1234 });
    assert.deepEqual(machine.calls, [`snapshot ${want}`]);
  });

  it("PUT /gdb hands the address to the gdb hook, or answers 409 without one", async () => {
    let r = await apiRequest(path, "PUT", "/gdb", { address: "127.0.0.1:1234" });
    assert.equal(r.status, 409);
    assert.match((r.body as { error: string }).error, /has none/);
    for (const body of [{}, { address: 7 }, { address: "" }, { address: ":1", x: 1 }]) {
      assert.equal((await apiRequest(path, "PUT", "/gdb", body)).status, 400);
    }
    const asked: string[] = [];
    const withGdb = join(dir, "gdb.sock");
    await using second = await startApiServer({
      path: withGdb,
      control: machine,
      gdb: (address) => {
        asked.push(address);
        return Promise.resolve({ endpoint: "127.0.0.1:4321" });
      },
    });
    r = await apiRequest(second.path, "PUT", "/gdb", { address: ":0" });
    assert.deepEqual([r.status, r.body, asked], [200, { endpoint: "127.0.0.1:4321" }, [":0"]]);
    assert.deepEqual(machine.calls, []);
  });

  it("runs operations one at a time in arrival order", async () => {
    const both = await Promise.all([
      apiRequest(path, "PUT", "/snapshot", { path: "/tmp/a.snap" }),
      apiRequest(path, "PUT", "/quit"),
    ]);
    assert.deepEqual(
      both.map((r) => r.status),
      [200, 200],
    );
    assert.deepEqual(machine.calls, ["snapshot /tmp/a.snap", "quit"]);
  });

  it("answers a state conflict with 409 and the machine's one-line reason", async () => {
    await apiRequest(path, "PUT", "/quit");
    const r = await apiRequest(path, "PUT", "/pause");
    assert.equal(r.status, 409);
    assert.deepEqual(r.body, { error: "the machine has stopped" });
  });

  it("answers a failed operation with 500 and its first line", async () => {
    machine.snapshotFailure = new Error("disk full\nstack line");
    const r = await apiRequest(path, "PUT", "/snapshot", { path: "/tmp/x" });
    assert.equal(r.status, 500);
    assert.deepEqual(r.body, { error: "disk full" });
  });

  const malformed: [string, "GET" | "PUT", string, unknown, number, RegExp][] = [
    ["an unknown path", "GET", "/nope", undefined, 404, /no such endpoint/],
    ["a wrong method", "GET", "/pause", undefined, 405, /\/pause takes PUT/],
    ["a non-object body", "PUT", "/pause", [1], 400, /must be a JSON object/],
    [
      "an unknown field",
      "PUT",
      "/snapshot",
      { path: "/x", force: true },
      400,
      /unknown field "force"/,
    ],
    ["a missing field", "PUT", "/snapshot", {}, 400, /missing field "path"/],
    ["a mistyped field", "PUT", "/snapshot", { path: 7 }, 400, /"path" must be a non-empty string/],
    ["an empty path", "PUT", "/snapshot", { path: "" }, 400, /non-empty string/],
    ["a NUL in the path", "PUT", "/snapshot", { path: "a\0b" }, 400, /without NUL/],
    ["a body on status", "GET", "/status", { x: 1 }, 400, /unknown field "x"/],
  ];
  for (const [what, method, route, body, status, message] of malformed) {
    it(`refuses ${what} with ${status} and changes nothing`, async () => {
      const r = await apiRequest(path, method, route, body);
      assert.equal(r.status, status);
      assert.match((r.body as { error: string }).error, message);
      assert.deepEqual(machine.calls, []);
      assert.equal(machine.state, "running");
    });
  }

  it("refuses invalid JSON, an oversized body and garbage bytes, and keeps serving", async () => {
    let text = await raw(
      path,
      "PUT /pause HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\nconnection: close\r\n\r\n{oops",
    );
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /not valid JSON/);
    text = await raw(
      path,
      `PUT /snapshot HTTP/1.1\r\nhost: x\r\ncontent-length: 5000\r\n\r\n${"x".repeat(5000)}`,
    );
    assert.match(text, /^HTTP\/1\.1 413 /);
    text = await raw(path, "\x00\x01\x02 not http at all\r\n\r\n");
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.deepEqual(machine.calls, []);
    const r = await apiRequest(path, "GET", "/status");
    assert.equal(r.status, 200);
  });

  it("survives a client that disconnects mid-request", async () => {
    await new Promise<void>((resolve) => {
      const socket = connect(path, () => {
        socket.write("PUT /snapshot HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{");
        setTimeout(() => {
          socket.destroy();
          resolve();
        }, 50);
      });
    });
    assert.deepEqual(machine.calls, []);
    assert.equal((await apiRequest(path, "GET", "/status")).status, 200);
  });

  it(
    "works with curl --unix-socket",
    { skip: hasCurl() ? false : "curl is not installed" },
    async () => {
      const status = await run("curl", ["-s", "--unix-socket", path, "http://localhost/status"]);
      assert.deepEqual(JSON.parse(status.stdout), machine.status());
      const paused = await run("curl", [
        "-s",
        "-X",
        "PUT",
        "--unix-socket",
        path,
        "http://localhost/pause",
      ]);
      assert.equal((JSON.parse(paused.stdout) as MachineStatus).state, "paused");
    },
  );
});

const run = promisify(execFile);

function hasCurl(): boolean {
  return spawnSync("curl", ["--version"]).status === 0;
}

describe("startApiServer() refuses paths it must not take", () => {
  it("a regular file, a live socket, and a path too long for a Unix socket", async () => {
    const dir = mkdtempSync(join(tmpdir(), "regvisor-api-"));
    try {
      const file = join(dir, "file");
      writeFileSync(file, "keep me");
      await assert.rejects(startApiServer({ path: file, control: new FakeMachine() }), {
        code: "API_SERVER",
        message: /exists and is not a socket/,
      });
      assert.equal(statSync(file).size, 7);

      const live = join(dir, "live.sock");
      const other = createServer().listen(live);
      await new Promise((r) => other.once("listening", r));
      await assert.rejects(startApiServer({ path: live, control: new FakeMachine() }), {
        message: /another process is listening/,
      });
      other.close();

      const long = join(dir, "x".repeat(120));
      await assert.rejects(startApiServer({ path: long, control: new FakeMachine() }), {
        message: /Unix sockets allow 107/,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("replaces a stale socket left by a dead process", async () => {
    const dir = mkdtempSync(join(tmpdir(), "regvisor-api-"));
    try {
      const path = join(dir, "stale.sock");
      // A process killed while listening leaves its socket file behind.
      const child = spawnSync(process.execPath, [
        "-e",
        `require("node:net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`,
      ]);
      assert.equal(child.signal, "SIGKILL");
      assert.ok(statSync(path).isSocket());
      const server = await startApiServer({ path, control: new FakeMachine() });
      assert.equal((await apiRequest(path, "GET", "/status")).status, 200);
      await server.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("apiRequest()", () => {
  it("names the socket and the likely cause when nothing is there", async () => {
    await assert.rejects(apiRequest("/nonexistent/regvisor.sock", "GET", "/status"), (e) => {
      assert.ok(e instanceof ApiClientError);
      assert.match(e.message, /no control socket at \/nonexistent\/regvisor\.sock/);
      return true;
    });
  });
});
