import { describe, it, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import { planGdbRegisters } from "../../../src/vmm/arch/riscv/gdb.js";
import { framePacket } from "../../../src/vmm/gdbstub/packet.js";
import {
  isLoopback,
  parseGdbAddress,
  startGdbServer,
  type GdbServer,
} from "../../../src/vmm/gdbstub/server.js";
import { reg, TestTarget } from "./test-target.js";

const GDB = "gdb-multiarch";
const noGdb = spawnSync(GDB, ["--version"]).status === 0 ? false : `${GDB} is not installed`;

/** Opens a connection, sends `bytes`, collects what comes back for `ms`. */
function exchange(endpoint: string | { port: number }, bytes: Uint8Array, ms = 100) {
  return new Promise<string>((resolve) => {
    const socket =
      typeof endpoint === "string" ? connect(endpoint) : connect(endpoint.port, "127.0.0.1");
    let text = "";
    socket.on("data", (c: Buffer) => (text += c.toString("latin1")));
    socket.on("error", () => undefined);
    socket.on("connect", () => socket.write(bytes));
    setTimeout(() => {
      socket.destroy();
      resolve(text);
    }, ms);
  });
}

describe("parseGdbAddress()", () => {
  it("reads HOST:PORT, :PORT, PORT, [v6]:PORT, tcp: and unix: forms", () => {
    assert.deepEqual(parseGdbAddress("127.0.0.1:1234"), {
      kind: "tcp",
      host: "127.0.0.1",
      port: 1234,
    });
    assert.deepEqual(parseGdbAddress(":1234"), { kind: "tcp", host: "127.0.0.1", port: 1234 });
    assert.deepEqual(parseGdbAddress("1234"), { kind: "tcp", host: "127.0.0.1", port: 1234 });
    assert.deepEqual(parseGdbAddress("[::1]:9"), { kind: "tcp", host: "::1", port: 9 });
    assert.deepEqual(parseGdbAddress("tcp:localhost:1"), {
      kind: "tcp",
      host: "localhost",
      port: 1,
    });
    assert.deepEqual(parseGdbAddress("unix:/tmp/g.sock"), { kind: "unix", path: "/tmp/g.sock" });
    for (const bad of ["", "host", "h:70000", "unix:", "a:b:c"]) {
      assert.throws(() => parseGdbAddress(bad), { code: "GDB_ADDRESS" }, bad);
    }
    assert.equal(isLoopback("127.3.4.5"), true);
    assert.equal(isLoopback("0.0.0.0"), false);
    assert.equal(isLoopback("::1"), true);
  });
});

describe("startGdbServer()", () => {
  let server: GdbServer | undefined;
  const vm = createSoftVm({ mode: "inline" });
  const target = new TestTarget(vm);
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  after(() => {
    vm.close();
  });

  it("refuses a non-loopback address unless remote debuggers are allowed", async () => {
    await assert.rejects(
      startGdbServer({ address: parseGdbAddress("0.0.0.0:0"), target, planner: planGdbRegisters }),
      /listens on loopback only; add --gdb-allow-remote/,
    );
  });

  it("serves one debugger at a time on loopback TCP; a second connection is closed", async () => {
    server = await startGdbServer({
      address: parseGdbAddress(":0"),
      target,
      planner: planGdbRegisters,
    });
    const port = Number(server.endpoint.split(":").at(-1));
    const first = connect(port, "127.0.0.1");
    await new Promise((r) => first.once("connect", r));
    const second = await exchange({ port }, framePacket("qAttached"));
    assert.equal(second, "");
    first.destroy();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(await exchange({ port }, framePacket("qAttached")), "+$1#31");
  });

  it("on unix:PATH the socket is 0600; a debugger leaving mid-run stops the guest", async () => {
    const dir = mkdtempSync(join(tmpdir(), "regvisor-gdb-"));
    try {
      const path = join(dir, "gdb.sock");
      server = await startGdbServer({
        address: { kind: "unix", path },
        target,
        planner: planGdbRegisters,
      });
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const before = target.interrupts;
      await exchange(path, framePacket("c"), 50);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(target.interrupts, before + 1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it(
    "real GDB accepts the target description and reads registers by name",
    { skip: noGdb },
    async () => {
      target.vcpus[0]?.setOneReg(reg("core.pc"), 0x8000_0040n);
      target.vcpus[0]?.setOneReg(reg("csr.sstatus"), 0x2000n);
      target.vcpus[0]?.setOneReg(reg("core.a0"), 42n);
      server = await startGdbServer({
        address: parseGdbAddress(":0"),
        target,
        planner: planGdbRegisters,
      });
      const out = await new Promise<string>((resolve) => {
        execFile(
          GDB,
          [
            "-nx",
            "-batch",
            "-ex",
            `target remote ${server?.endpoint ?? ""}`,
            "-ex",
            "info registers pc a0",
            "-ex",
            "p/x $sstatus",
            "-ex",
            "p $config_isa != 0",
            "-ex",
            "set $a1 = 7",
            "-ex",
            "p $a1",
            "-ex",
            "info threads",
          ],
          { timeout: 30_000 },
          (_error, stdout, stderr) => {
            resolve(stdout + stderr);
          },
        );
      });
      assert.match(out, /pc\s+0x80000040/);
      assert.match(out, /a0\s+0x2a\s+42/);
      assert.match(out, /\$1 = 0x2000/);
      assert.match(out, /\$2 = 1/);
      assert.match(out, /\$3 = 7/);
      assert.match(out, /Thread 2/);
      assert.equal(target.vcpus[0]?.getOneReg(reg("core.a1"))[0], 7);
    },
  );
});
