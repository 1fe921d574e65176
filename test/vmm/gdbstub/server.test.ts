import { describe, it, after, afterEach } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import { KvmSystem, kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { planGdbRegisters } from "../../../src/vmm/arch/riscv/gdb.js";
import { planGdbRegisters as planX86 } from "../../../src/vmm/arch/x86/gdb.js";
import { framePacket } from "../../../src/vmm/gdbstub/packet.js";
import {
  isLoopback,
  parseGdbAddress,
  startGdbServer,
  type GdbServer,
} from "../../../src/vmm/gdbstub/server.js";
import { reg, TestTarget } from "./test-target.js";
import { lookupReg } from "../../../src/abi/catalog.js";
import { withX86PseudoField } from "../../../src/abi/arch/x86/pseudo-fields.js";

const GDB = "gdb-multiarch";
const noGdb = spawnSync(GDB, ["--version"]).status === 0 ? false : `${GDB} is not installed`;

/** Runs gdb-multiarch in batch mode against `endpoint` with `commands`; resolves to its output. */
function gdb(endpoint: string, commands: readonly string[]): Promise<string> {
  const args = ["-nx", "-batch", "-ex", `target remote ${endpoint}`];
  for (const c of commands) args.push("-ex", c);
  return new Promise((resolve) => {
    execFile(GDB, args, { timeout: 30_000 }, (_error, stdout, stderr) => {
      resolve(stdout + stderr);
    });
  });
}

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

  it(
    "real GDB reads x86 registers by GDB's names from the KVM pseudo-registers",
    { skip: noGdb || (kvmUnavailableReason() ?? false) },
    async () => {
      using kvm = KvmSystem.open();
      using vm = kvm.createVm();
      const x86 = new TestTarget(vm, { ramBase: 0n, vcpus: 1 });
      const vcpu = x86.vcpus[0];
      assert.ok(vcpu !== undefined);
      const REGS = lookupReg("x86", "REGS").id;
      const SREGS = lookupReg("x86", "SREGS").id;
      let regs = vcpu.getOneReg(REGS);
      regs = withX86PseudoField(REGS, regs, "rip", 0x1234n);
      regs = withX86PseudoField(REGS, regs, "rax", 0xdeadn);
      vcpu.setOneReg(REGS, regs);
      vcpu.setOneReg(SREGS, withX86PseudoField(SREGS, vcpu.getOneReg(SREGS), "cr3", 0x5000n));
      const plan = planX86(vcpu.regList());
      const stub = await startGdbServer({
        address: parseGdbAddress(":0"),
        target: x86,
        planner: () => plan,
      });
      try {
        const out = await gdb(stub.endpoint, [
          "info registers rip rax",
          "p/x $cr3",
          "p $cs",
          "set $rbx = 77",
          "p $rbx",
          "p $ftag",
        ]);
        assert.match(out, /rip\s+0x1234/);
        assert.match(out, /rax\s+0xdead\s+57005/);
        assert.match(out, /\$1 = 0x5000/);
        assert.match(out, /\$3 = 77/);
        assert.match(out, /\$4 = 65535/); // all x87 registers empty
        const after = vcpu.getOneReg(REGS);
        assert.equal(after[8], 77); // rbx is the second u64 of kvm_regs
      } finally {
        await stub.close();
      }
    },
  );
});
