import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import { encodeReply } from "../../../src/vmm/migration/handshake.js";
import { receiveMigration } from "../../../src/vmm/migration/destination.js";
import { Migration, type MigrationSource } from "../../../src/vmm/migration/source.js";
import {
  encodeEndFrame,
  encodeLayoutFrame,
  encodeMetaFrame,
  encodeStreamHeader,
  PAGE_BYTES,
  StreamDecoder,
  type StreamItem,
} from "../../../src/vmm/migration/stream.js";
import { listenOnce, MigrationError } from "../../../src/vmm/migration/transport.js";
import { concatBytes } from "../../../src/vmm/snapshot/bytes.js";
import { lookupReg } from "../../../src/abi/catalog.js";

const BASE = 0x8000_0000n;
const SIZE = 8 * 1024 * 1024;

/** A soft VM with data in every page and a source whose pause/resume are recorded. */
function source(): { vm: ReturnType<typeof createSoftVm>; src: MigrationSource; calls: string[] } {
  const vm = createSoftVm({ mode: "inline" });
  const mem = vm.addMemory({ guestPhysAddr: BASE, size: SIZE, logDirty: true });
  for (let p = 0; p < SIZE / PAGE_BYTES; p++) mem.view(p * PAGE_BYTES, 8).fill((p % 250) + 1);
  const calls: string[] = [];
  const pc = lookupReg("riscv", "core.pc").id;
  const src: MigrationSource = {
    arch: "riscv",
    backend: "soft-inline",
    ram: { memory: vm.memory, getDirtyLog: (slot) => vm.getDirtyLog(slot) },
    describe: () => ({ guest: "fault-test" }),
    pause: () => {
      calls.push("pause");
      return Promise.resolve();
    },
    resume: () => {
      calls.push("resume");
      return Promise.resolve();
    },
    capture: () =>
      Promise.resolve({
        vcpus: [{ index: 0, regs: [{ id: pc, value: new Uint8Array(8) }] }],
        devices: [{ name: "dev", data: new Uint8Array(4) }],
      }),
  };
  return { vm, src, calls };
}

/** A fake destination on loopback that does `behave` with each connection. */
async function peer(behave: (socket: Socket) => void): Promise<{ port: number; close(): void }> {
  const server = createServer(behave);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return { port: address.port, close: () => server.close() };
}

/** Decodes what arrives and calls `at` for each item; `at` returning true stops reading. */
function decodeUntil(socket: Socket, at: (item: StreamItem) => boolean): void {
  const decoder = new StreamDecoder();
  socket.on("data", (chunk: Buffer) => {
    try {
      for (const item of decoder.push(new Uint8Array(chunk))) if (at(item)) return;
    } catch {
      socket.destroy();
    }
  });
}

async function migrateTo(port: number, stallMs = 10_000) {
  const { vm, src, calls } = source();
  try {
    const status = await new Migration(
      src,
      { kind: "tcp", host: "127.0.0.1", port },
      {
        downtimeLimitMs: 1000,
        timeouts: { connectMs: 2000, stallMs },
        readyTimeoutMs: 2000,
      },
    ).run();
    return { status, calls };
  } finally {
    vm.close();
  }
}

describe("migration faults: the source keeps the guest and reports one line", () => {
  it("before the first byte: connection refused", async () => {
    const p = await peer((s) => s.destroy());
    p.close();
    const { status, calls } = await migrateTo(p.port);
    assert.equal(status.status, "failed");
    assert.match(status.error ?? "", /^Cannot connect to tcp:127\.0\.0\.1:\d+: ECONNREFUSED/);
    assert.deepEqual(calls, []);
  });

  it("before the first byte: the peer accepts and hangs up", async () => {
    const p = await peer((s) => s.destroy());
    const { status, calls } = await migrateTo(p.port);
    p.close();
    assert.equal(status.status, "failed");
    assert.match(status.error ?? "", /closed the connection|ECONNRESET|EPIPE/);
    assert.deepEqual(calls, []);
  });

  it("mid pre-copy: the connection drops after 1 MiB", async () => {
    let seen = 0;
    const p = await peer((s) =>
      s.on("data", (b: Buffer) => {
        seen += b.length;
        if (seen > 1 << 20) s.destroy();
      }),
    );
    const { status, calls } = await migrateTo(p.port);
    p.close();
    assert.equal(status.status, "failed");
    assert.equal(status.stage, "precopy");
    assert.match(status.error ?? "", /closed the connection|ECONNRESET|EPIPE/);
    assert.deepEqual(calls, []);
  });

  it("mid switchover: the connection drops at the first vCPU state; the guest resumes", async () => {
    const p = await peer((s) => {
      decodeUntil(s, (item) => {
        if (item.kind !== "vcpu") return false;
        s.destroy();
        return true;
      });
    });
    const { status, calls } = await migrateTo(p.port);
    p.close();
    assert.equal(status.status, "failed");
    assert.deepEqual(calls, ["pause", "resume"]);
  });

  it("the destination rejects the state: its one line is the source's report", async () => {
    const p = await peer((s) => {
      decodeUntil(s, (item) => {
        if (item.kind !== "end") return false;
        s.end(encodeReply({ reply: "error", error: "register riscv core pc: size mismatch" }));
        return true;
      });
    });
    const { status, calls } = await migrateTo(p.port);
    p.close();
    assert.equal(status.status, "failed");
    assert.match(status.error ?? "", /destination refused .*size mismatch/);
    assert.deepEqual(calls, ["pause", "resume"]);
  });

  it("the destination rejects early (foreign arch, mid-stream): the source stops at once", async () => {
    const p = await peer((s) => {
      s.once("data", () => s.end(encodeReply({ reply: "error", error: "not this arch" })));
    });
    const { status, calls } = await migrateTo(p.port);
    p.close();
    assert.equal(status.status, "failed");
    assert.match(status.error ?? "", /refused the stream: not this arch/);
    assert.deepEqual(calls, []);
  });

  it("a peer that stops reading: the stall timeout fails the migration", async () => {
    const p = await peer((s) => s.pause());
    const t0 = performance.now();
    const { status, calls } = await migrateTo(p.port, 300);
    p.close();
    assert.equal(status.status, "failed");
    assert.match(status.error ?? "", /took no bytes for 300 ms \(it stopped reading\)/);
    assert.ok(performance.now() - t0 < 5000);
    assert.deepEqual(calls, []);
  });

  it("no ready after END: the commit times out and the guest resumes", async () => {
    const p = await peer((s) => s.on("data", () => undefined));
    const { status, calls } = await migrateTo(p.port);
    p.close();
    assert.equal(status.status, "failed");
    assert.match(status.error ?? "", /did not say ready within 2000 ms/);
    assert.deepEqual(calls, ["pause", "resume"]);
  });
});

describe("migration faults at the destination: everything received is discarded", () => {
  /** Runs a destination against raw `bytes` from a fake source; returns its error and state. */
  async function receive(bytes: Uint8Array, then?: (socket: Socket) => void) {
    const listener = await listenOnce({ kind: "tcp", host: "127.0.0.1", port: 0 });
    let disposed = 0;
    let built = 0;
    const factory = {
      arches: ["riscv"] as const,
      build: () => {
        built++;
        const vm = createSoftVm({ mode: "inline" });
        vm.addMemory({ guestPhysAddr: BASE, size: SIZE });
        return {
          memory: vm.memory,
          applyVcpus: () => undefined,
          applyDevices: () => undefined,
          [Symbol.dispose]: () => {
            disposed++;
            vm.close();
          },
        };
      },
    };
    const result = listener.accept().then((ch) => receiveMigration(ch, factory, { idleMs: 1000 }));
    const { connect } = await import("node:net");
    const uri = listener.uri;
    assert.ok(uri.kind === "tcp");
    const replies: string[] = [];
    const socket = connect(uri.port, "127.0.0.1");
    socket.on("data", (b: Buffer) => replies.push(b.toString()));
    socket.on("error", () => undefined);
    const closed = new Promise((resolve) => socket.on("close", resolve));
    socket.write(bytes);
    then?.(socket);
    const error = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    await closed;
    await listener.close();
    return { error, built, disposed, replies: replies.join("") };
  }

  const head = (arch: "riscv" | "arm64" = "riscv") =>
    concatBytes([
      encodeStreamHeader(arch, "soft-inline"),
      ...encodeMetaFrame({ guest: "x" }),
      ...encodeLayoutFrame([{ slot: 0, flags: 0, guestPhysAddr: BASE, length: SIZE }]),
    ]);

  it("a stream from a foreign arch is refused before anything is built", async () => {
    const r = await receive(head("arm64"));
    assert.ok(r.error instanceof MigrationError);
    assert.match(r.error.message, /Cannot receive a arm64 guest: this destination runs riscv/);
    assert.equal(r.built, 0);
    assert.match(r.replies, /"reply":"error"/);
  });

  it("corrupted bytes fail the CRC; the machine built so far is disposed", async () => {
    const bytes = head();
    const flipped = bytes.slice();
    flipped[flipped.length - 30] = (flipped[flipped.length - 30] ?? 0) ^ 0x40;
    const r = await receive(flipped);
    assert.match(String(r.error), /CRC32C mismatch/);
    assert.equal(r.disposed, r.built);
    assert.match(r.replies, /CRC32C mismatch/);
  });

  it("a source that vanishes mid-stream: one line, disposed", async () => {
    const r = await receive(head(), (s) => s.end());
    assert.match(String(r.error), /closed the connection before the end of the stream/);
    assert.equal(r.disposed, 1);
  });

  it("a source that never says GO: the guest is not handed over", async () => {
    const r = await receive(concatBytes([head(), ...encodeEndFrame()]), (s) => {
      s.once("data", () => s.end());
    });
    assert.match(String(r.error), /without its go-ahead/);
    assert.match(r.replies, /"reply":"ready"/);
    assert.equal(r.disposed, 1);
  });
});
