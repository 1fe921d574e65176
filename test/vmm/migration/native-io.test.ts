import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer, type Server, type Socket } from "node:net";
import { Worker } from "node:worker_threads";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import type { GuestMemory } from "../../../src/backends/vcpu.js";
import { receiveMigration } from "../../../src/vmm/migration/destination.js";
import { IO_CODES, nativeIo, socketFd } from "../../../src/vmm/migration/native-io.js";
import {
  encodeDeviceFrame,
  encodeEndFrame,
  encodeLayoutFrame,
  encodeMetaFrame,
  encodePagesFrame,
  encodeStreamHeader,
  encodeSwitchoverFrame,
  MigrationStreamError,
  PAGE_BYTES,
  PagesFrame,
  type PageOut,
} from "../../../src/vmm/migration/stream.js";
import { Precopy } from "../../../src/vmm/migration/precopy.js";
import { listenOnce, MigrationError } from "../../../src/vmm/migration/transport.js";
import { concatBytes } from "../../../src/vmm/snapshot/bytes.js";

const BASE = 0x8000_0000n;
const SIZE = 4 * 1024 * 1024;
const io = nativeIo();
const skip = io === undefined ? "the native addon (or its SSE4.2 CRC32C) is not available" : false;

/**
 * The other end of the connection in a worker thread, so it keeps sending or reading while
 * this thread blocks in the native call: "feed" writes `bytes` and answers `ready` with GO,
 * "feed-end" writes them and hangs up, "feed-hold" writes them and then goes silent (each
 * hangs up on an `error` reply, as a source does), "sink" collects everything until the
 * connection ends and posts it back.
 */
const PEER = `
const { workerData, parentPort } = require("node:worker_threads");
const { connect } = require("node:net");
const { port, bytes, mode } = workerData;
const s = connect(port, "127.0.0.1");
s.on("error", () => {});
if (mode === "sink") {
  const got = [];
  s.on("data", (b) => got.push(b));
  s.on("close", () => parentPort.postMessage(Buffer.concat(got)));
} else {
  s.write(bytes);
  if (mode === "feed-end") s.end();
  let text = "";
  s.on("data", (b) => {
    text += b.toString();
    if (mode === "feed" && text.includes('"reply":"ready"')) s.end("GO\\n");
    if (text.includes('"reply":"error"')) s.end();
  });
}
`;

function peer(port: number, mode: string, bytes: Uint8Array = new Uint8Array(0)): Worker {
  return new Worker(PEER, { eval: true, workerData: { port, bytes, mode } });
}

/**
 * A loopback connection: `connect(port)` starts the other end (a worker or a process); resolves
 * with this end (its errors ignored: the tests look at the native calls' results) and its fd.
 */
async function accept<T>(
  connect: (port: number) => T,
): Promise<{ server: Server; peer: T; socket: Socket; fd: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  const accepted = new Promise<Socket>((resolve) => server.once("connection", resolve));
  const other = connect(address.port);
  const socket = await accepted;
  socket.on("error", () => undefined);
  const fd = socketFd(socket);
  assert.ok(fd !== undefined);
  return { server, peer: other, socket, fd };
}

/**
 * A connected socket whose peer never reads: a process of its own that connects and pauses (a
 * worker thread's idle socket was reset under a blocked main thread here, which would test
 * something else). `close` ends both.
 */
async function stalledPeer(): Promise<{ fd: number; close: () => void }> {
  const {
    server,
    peer: child,
    socket,
    fd,
  } = await accept((port) =>
    spawn(process.execPath, [
      "-e",
      `require("node:net").connect(${port}, "127.0.0.1").pause(); setTimeout(() => {}, 20000)`,
    ]),
  );
  return {
    fd,
    close: () => {
      socket.destroy();
      child.kill();
      server.close();
    },
  };
}

const head = (): Uint8Array =>
  concatBytes([
    encodeStreamHeader("riscv", "soft-inline"),
    ...encodeMetaFrame({ guest: "native-io-test" }),
    ...encodeLayoutFrame([{ slot: 0, flags: 0, guestPhysAddr: BASE, length: SIZE }]),
  ]);

const page = (index: number, fill: number): PageOut => ({
  index,
  data: new Uint8Array(PAGE_BYTES).fill(fill).map((v, i) => (i % 97 === 0 ? i & 0xff : v)),
});

/**
 * A stream whose switchover has runs of adjacent pages, scattered pages, a page cleared after
 * the pre-copy wrote it, and one page both written and cleared within one frame (either order),
 * in frames from 2 pages to 1 MiB.
 */
function stream(): Uint8Array {
  const precopy = Array.from({ length: 64 }, (_, i) => page(i * 3, 1 + i));
  const big = Array.from({ length: 256 }, (_, i) => page(512 + i, 200 + (i % 50)));
  return concatBytes([
    head(),
    ...encodePagesFrame(0, precopy),
    ...encodeSwitchoverFrame(),
    ...encodePagesFrame(0, [page(0, 9), { index: 3, data: undefined }, page(7, 10), page(8, 11)]),
    ...encodePagesFrame(0, big),
    ...encodePagesFrame(0, [
      page(20, 12),
      { index: 20, data: undefined },
      { index: 21, data: undefined },
      page(21, 13),
      page(1023, 14),
    ]),
    ...encodeEndFrame(),
  ]);
}

/** Runs a destination (native or JS) against `bytes` fed by a worker in `mode`. */
async function receive(bytes: Uint8Array, native: boolean, mode = "feed", idleMs = 5000) {
  const listener = await listenOnce({ kind: "tcp", host: "127.0.0.1", port: 0 });
  let disposed = 0;
  let ram: Uint8Array | undefined;
  const factory = {
    arches: ["riscv"] as const,
    build: () => {
      const vm = createSoftVm({ mode: "inline" });
      vm.addMemory({ guestPhysAddr: BASE, size: SIZE });
      return {
        memory: vm.memory,
        applyVcpus: () => undefined,
        applyDevices: () => undefined,
        [Symbol.dispose]: () => {
          ram = vm.memory[0]?.view(0, SIZE).slice();
          disposed++;
          vm.close();
        },
      };
    },
  };
  const uri = listener.uri;
  assert.ok(uri.kind === "tcp");
  const worker = peer(uri.port, mode, bytes);
  const started = performance.now();
  try {
    const channel = await listener.accept();
    const received = await receiveMigration(channel, factory, { idleMs, native });
    channel.destroy();
    received.target[Symbol.dispose]();
    return { ram, bytes: received.bytes, error: undefined, disposed, ms: 0 };
  } catch (error) {
    return { ram, bytes: 0, error, disposed, ms: performance.now() - started };
  } finally {
    await worker.terminate();
    await listener.close();
  }
}

describe("native switchover I/O (native/sockio.cc)", { skip }, () => {
  it("stores the same RAM as the JS path, every entry kind and order included", async () => {
    const bytes = stream();
    const js = await receive(bytes, false);
    const native = await receive(bytes, true);
    assert.equal(js.error, undefined);
    assert.equal(native.error, undefined);
    assert.equal(native.bytes, bytes.length);
    assert.ok(js.ram !== undefined && native.ram !== undefined);
    assert.ok(Buffer.from(native.ram).equals(Buffer.from(js.ram)));
    // Spot checks against what the stream says, not only against the JS path.
    const at = (index: number, offset = 1): number | undefined =>
      native.ram?.[index * PAGE_BYTES + offset];
    assert.equal(at(0), 9);
    assert.equal(at(3), 0); // cleared after the pre-copy wrote it
    assert.equal(at(6), 3); // pre-copy only
    assert.equal(at(20), 0); // data then zero in one frame
    assert.equal(at(21), 13); // zero then data in one frame
    assert.equal(at(512 + 255), 200 + (255 % 50));
    assert.equal(at(1023), 14);
  });

  it("a corrupted byte in a final page: the CRC32C mismatch the JS path reports, at its offset", async () => {
    const bytes = stream();
    const at = bytes.length - 3 * PAGE_BYTES;
    bytes[at] = (bytes[at] ?? 0) ^ 0x10;
    const js = await receive(bytes, false);
    const native = await receive(bytes, true);
    assert.ok(native.error instanceof MigrationStreamError);
    assert.ok(js.error instanceof MigrationStreamError);
    assert.match(native.error.message, /frame CRC32C mismatch/);
    assert.equal(native.error.message, js.error.message);
    assert.equal(native.disposed, 1);
  });

  it("a final page outside the layout is rejected with the JS path's message", async () => {
    const bytes = concatBytes([
      head(),
      ...encodeSwitchoverFrame(),
      ...encodePagesFrame(0, [page(SIZE / PAGE_BYTES, 1)]),
      ...encodeEndFrame(),
    ]);
    const js = await receive(bytes, false);
    const native = await receive(bytes, true);
    assert.ok(native.error instanceof MigrationError);
    assert.match(native.error.message, /sends page 1024 of slot 0, which has 1024 pages/);
    assert.equal(native.error.message, (js.error as Error).message);
  });

  it("an over-long frame length is refused before anything is read", async () => {
    const frame = concatBytes(encodePagesFrame(0, [page(1, 1)]));
    new DataView(frame.buffer).setBigUint64(8, 1n << 40n, true);
    const r = await receive(concatBytes([head(), ...encodeSwitchoverFrame(), frame]), true);
    assert.ok(r.error instanceof MigrationStreamError);
    assert.match(r.error.message, /frame length 1099511627776 exceeds the limit/);
  });

  it("a source that hangs up mid-frame: one line, disposed", async () => {
    const bytes = stream();
    const r = await receive(bytes.subarray(0, bytes.length - 5000), true, "feed-end");
    assert.ok(r.error instanceof MigrationError);
    assert.match(r.error.message, /closed the connection in the middle of the switchover/);
    assert.equal(r.disposed, 1);
  });

  it("a source that goes silent mid-frame: a timeout after idleMs, not a hang", async () => {
    const bytes = stream();
    const r = await receive(bytes.subarray(0, bytes.length - 5000), true, "feed-hold", 300);
    assert.ok(r.error instanceof MigrationError);
    assert.match(r.error.message, /sent nothing for 300 ms/);
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
    assert.equal(r.disposed, 1);
  });
});

describe("native sendAll()", { skip }, () => {
  /** A connected pair: `server` is this thread's end, the worker (`mode`) the other. */
  async function pair(
    mode: string,
  ): Promise<{ socket: Socket; worker: Worker; close: () => void }> {
    const { server, peer: worker, socket } = await accept((port) => peer(port, mode));
    return { socket, worker, close: () => server.close() };
  }

  it("with appendCrc sends the bytes of PagesFrame.encode(), checksummed as it goes", async () => {
    assert.ok(io !== undefined);
    const ram = new Uint8Array(2 * 1024 * 1024);
    for (let i = 0; i < ram.length; i += 61) ram[i] = (i >> 6) & 0xff;
    const frame = new PagesFrame(0, { byReference: true });
    // Runs of 1..7 pages with gaps: many iovecs, checksum pieces across run boundaries.
    for (let p = 0, n = 1; p + n < 500; p += n + 1, n = (n % 7) + 1) {
      frame.dataRun(p, ram.subarray(p * PAGE_BYTES, (p + n) * PAGE_BYTES));
    }
    const { socket, worker, close } = await pair("sink");
    const got = new Promise<Uint8Array>((resolve) => {
      worker.once("message", (bytes: Uint8Array) => {
        resolve(new Uint8Array(bytes));
      });
    });
    const fd = socketFd(socket);
    assert.ok(fd !== undefined);
    const r = io.sendAll(fd, frame.unchecked(), 5000, true);
    socket.end();
    const want = concatBytes(frame.encode());
    assert.deepEqual(r, { code: IO_CODES.ok, written: want.length, message: "" });
    assert.ok(Buffer.from(await got).equals(Buffer.from(want)));
    await worker.terminate();
    close();
  });

  it("a peer that stops reading: code timeout after timeoutMs, not a hang", async () => {
    assert.ok(io !== undefined);
    const { fd, close } = await stalledPeer();
    const started = performance.now();
    const r = io.sendAll(fd, [new Uint8Array(64 * 1024 * 1024)], 200, true);
    const ms = performance.now() - started;
    assert.equal(r.code, IO_CODES.timeout, r.message);
    assert.ok(r.written < 64 * 1024 * 1024);
    assert.match(r.message, /moved no bytes for 200 ms/);
    assert.ok(ms >= 190 && ms < 5000, `took ${ms} ms`);
    close();
  });
});

describe("native sendPages()", { skip }, () => {
  /** A connected pair: `socket` is this thread's end, a worker collecting the bytes the other. */
  async function sink(): Promise<{ fd: number; got: Promise<Uint8Array>; close: () => void }> {
    const { server, peer: worker, socket, fd } = await accept((port) => peer(port, "sink"));
    const got = new Promise<Uint8Array>((resolve) => {
      worker.once("message", (bytes: Uint8Array) => {
        resolve(new Uint8Array(bytes));
      });
    });
    return {
      fd,
      got,
      close: () => {
        socket.end();
        void got.finally(() => {
          void worker.terminate();
          server.close();
        });
      },
    };
  }

  /** 32 MiB of RAM and a dirty log that exercise every rule of `Precopy.finish`'s framing. */
  function dirtyRam(): { memory: GuestMemory; bitmap: Uint8Array } {
    const pages = 8192;
    const bytes = new Uint8Array(pages * PAGE_BYTES);
    const bitmap = new Uint8Array(pages / 8);
    const dirty = (p: number): void => {
      bitmap[p >> 3] = (bitmap[p >> 3] ?? 0) | (1 << (p & 7));
    };
    const fill = (p: number, v: number): void => {
      bytes.fill(v, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
    };
    // Scattered data pages, a zero page among them, a page whose only byte is its last.
    for (const p of [0, 3, 7, 8, 9, 100]) fill(p, p + 1);
    for (const p of [0, 3, 5, 7, 8, 9, 100, 101]) dirty(p);
    bytes[(101 + 1) * PAGE_BYTES - 1] = 1;
    // 600 data pages in a row: frames cut at 1 MiB of data.
    for (let p = 1024; p < 1624; p++) {
      fill(p, p & 0xff || 1);
      dirty(p);
    }
    // 20 dirty all-zero MiB groups (5120 zero entries: frames cut at 4096 entries), one group
    // with a data page in its middle, and a dirty group that starts off a 256-page boundary.
    for (let p = 2048; p < 2048 + 20 * 256; p++) dirty(p);
    for (let p = 7424; p < 7680; p++) dirty(p);
    fill(7500, 0x5a);
    for (let p = 7700; p < 8192; p++) dirty(p);
    const memory: GuestMemory = {
      slot: 3,
      guestPhysAddr: BASE,
      size: bytes.length,
      bytes,
      view: (offset, length) => bytes.subarray(offset, offset + length),
      readOnly: false,
      logDirty: true,
    };
    return { memory, bitmap };
  }

  it("sends the bytes of Precopy.finish()'s frames, straight from RAM", async () => {
    assert.ok(io !== undefined);
    const { memory, bitmap } = dirtyRam();
    // The JS path: every frame `finish` writes, in order.
    const frames: Uint8Array[] = [];
    const precopy = (log: Uint8Array) =>
      new Precopy({ memory: [memory], getDirtyLog: () => log.slice() }, () => Promise.resolve(), {
        downtimeLimitMs: 300,
        maxRounds: 1,
      });
    const js = precopy(bitmap);
    const count = await js.finish({
      write: (chunks) => {
        frames.push(concatBytes(chunks));
        return Promise.resolve();
      },
    });
    const want = concatBytes(frames);
    const { fd, got, close } = await sink();
    const r = io.sendPages(fd, 3, 8192, [memory.bytes], 1 << 30, bitmap, 5000);
    close();
    assert.deepEqual(r, {
      code: IO_CODES.ok,
      written: want.length,
      message: "",
      pages: count,
      zeroPages: js.progress.zeroPages,
    });
    // Frames were cut at 4096 entries and at 1 MiB of data pages (both rules covered).
    const cuts = frames.map((f) => {
      const view = new DataView(f.buffer, f.byteOffset);
      const entries = view.getUint32(20, true);
      return { entries, data: (Number(view.getBigUint64(8, true)) - 8 - 8 * entries) / PAGE_BYTES };
    });
    assert.ok(
      cuts.some((c) => c.entries === 4096),
      JSON.stringify(cuts),
    );
    assert.ok(cuts.filter((c) => c.data === 256).length >= 2, JSON.stringify(cuts));
    assert.ok(Buffer.from(await got).equals(Buffer.from(want)));
    // Through `finish` (its `sendDirty` sink): the same counts as the JS path.
    const native = precopy(bitmap);
    const { fd: fd2, got: got2, close: close2 } = await sink();
    await native.finish({
      write: () => Promise.reject(new Error("sendDirty must send everything")),
      sendDirty: (slot, log) => {
        const s = io.sendPages(
          fd2,
          slot.slot,
          slot.pages,
          slot.windows,
          slot.windowBytes,
          log,
          5000,
        );
        return Promise.resolve(s);
      },
    });
    close2();
    assert.ok(Buffer.from(await got2).equals(Buffer.from(want)));
    assert.deepEqual(native.progress, js.progress);
  });

  it("a peer that stops reading: code timeout after timeoutMs, not a hang", async () => {
    assert.ok(io !== undefined);
    const { fd, close } = await stalledPeer();
    const ram = new Uint8Array(64 * 1024 * 1024).fill(1);
    const started = performance.now();
    const r = io.sendPages(
      fd,
      0,
      ram.length / PAGE_BYTES,
      [ram],
      1 << 30,
      new Uint8Array(2048).fill(0xff),
      200,
    );
    const ms = performance.now() - started;
    assert.equal(r.code, IO_CODES.timeout, r.message);
    assert.ok(r.written < ram.length);
    assert.match(r.message, /moved no bytes for 200 ms/);
    assert.ok(ms >= 190 && ms < 5000, `took ${ms} ms`);
    close();
  });

  it("refuses windows that do not cover the slot, and a bitmap too short for it", () => {
    assert.ok(io !== undefined);
    const ram = new Uint8Array(1024 * 1024);
    assert.throws(
      () => io.sendPages(0, 0, 512, [ram], 1 << 30, new Uint8Array(64), 100),
      TypeError,
    );
    assert.throws(
      () => io.sendPages(0, 0, 256, [ram], 1 << 30, new Uint8Array(31), 100),
      TypeError,
    );
    assert.throws(
      () => io.sendPages(0, 0, 256, [ram], 4096 * 100, new Uint8Array(32), 100),
      TypeError,
    );
  });
});

/**
 * `bytes` fed by a worker that then goes silent ("feed-hold") or hangs up ("feed-end"); this
 * thread's end of the connection, paused (the native calls read its fd).
 */
async function fed(
  bytes: Uint8Array,
  mode: "feed-hold" | "feed-end" = "feed-hold",
): Promise<{ fd: number; close: () => Promise<void> }> {
  const { server, peer: worker, socket, fd } = await accept((port) => peer(port, mode, bytes));
  socket.pause();
  return {
    fd,
    close: async () => {
      socket.destroy();
      await worker.terminate();
      server.close();
    },
  };
}

/** One 4 MiB slot of fresh RAM for recvPages(). */
const slots = () => [
  {
    slot: 0,
    pages: SIZE / PAGE_BYTES,
    written: new Uint8Array(SIZE / PAGE_BYTES),
    windows: [new Uint8Array(SIZE)],
  },
];

describe("native recvPages() in slices (the pre-copy)", { skip }, () => {
  const recv = (fd: number, slice: number, timeoutMs: number) =>
    io?.recvPages(fd, [], slots(), 1 << 30, 1 << 24, 4096, timeoutMs, slice);

  it("returns at a frame boundary once no next frame starts within the slice, not after the idle timeout", async () => {
    const frames = concatBytes([
      ...encodePagesFrame(0, [page(1, 5)]),
      ...encodePagesFrame(0, [page(2, 6), { index: 3, data: undefined }]),
    ]);
    const { fd, close } = await fed(frames);
    try {
      const t0 = performance.now();
      // The slice (1 s) also covers the worker starting up on a loaded machine.
      const r = recv(fd, 1000, 10_000);
      const ms = performance.now() - t0;
      assert.ok(r !== undefined);
      assert.deepEqual(
        [r.code, r.frames, r.pages, r.consumed, r.rest.length],
        [0, 2, 3, frames.length, 0],
      );
      assert.ok(ms < 5000, `took ${ms} ms`);
    } finally {
      await close();
    }
  });

  it("a slice never cuts a frame: a frame cut off mid-way waits for the idle timeout", async () => {
    const whole = concatBytes(encodePagesFrame(0, [page(1, 5)]));
    const { fd, close } = await fed(concatBytes([whole, whole.subarray(0, 100)]));
    try {
      const r = recv(fd, 2000, 300);
      assert.ok(r !== undefined);
      assert.deepEqual([r.code, r.frames], [IO_CODES.timeout, 1]);
    } finally {
      await close();
    }
  });
});

describe("native recvPages() at a frame of another type", { skip }, () => {
  it("hands back that frame and what arrived after it, for the JS decoder without a read of its own", async () => {
    const pages = concatBytes(encodePagesFrame(0, [page(1, 5)]));
    const after = concatBytes([
      ...encodeSwitchoverFrame(2),
      ...encodeDeviceFrame({ name: "a", data: new Uint8Array(300).fill(1) }),
      ...encodeDeviceFrame({ name: "b", data: new Uint8Array(5000).fill(2) }),
      ...encodeEndFrame(),
    ]);
    const { fd, close } = await fed(concatBytes([pages, after]));
    try {
      // Until the first frame of another type (no slice): the worker's one write is all there.
      const r = io?.recvPages(fd, [], slots(), 1 << 30, 1 << 24, 4096, 10_000, -1);
      assert.ok(r !== undefined);
      assert.deepEqual([r.code, r.frames, r.consumed], [0, 1, pages.length]);
      assert.ok(Buffer.from(r.rest).equals(Buffer.from(after)), `rest ${r.rest.length} bytes`);
    } finally {
      await close();
    }
  });
});

describe("native recvSome() (the switchover's handshake)", { skip }, () => {
  const recvSome = io?.recvSome;

  it("reads what came, then a timeout when nothing more does, then the end of the stream", async () => {
    assert.ok(recvSome !== undefined, "the addon has no recvSome");
    const line = new TextEncoder().encode('{"reply":"ready"}\n');
    for (const mode of ["feed-hold", "feed-end"] as const) {
      const { fd, close } = await fed(line, mode);
      try {
        // The worker's first bytes may take a while to start on a loaded machine.
        const first = recvSome(fd, 4096, 10_000);
        assert.ok(first.code === IO_CODES.ok, `code ${first.code}`);
        assert.ok(Buffer.from(first.bytes).equals(line));
        const t0 = performance.now();
        const next = recvSome(fd, 4096, 150);
        const ms = performance.now() - t0;
        if (mode === "feed-hold") {
          assert.equal(next.code, IO_CODES.timeout);
          assert.ok(ms >= 140, `returned after ${ms} ms`);
        } else {
          assert.equal(next.code, IO_CODES.closed);
        }
      } finally {
        await close();
      }
    }
  });

  it("at most maxBytes at a time; a bad argument is a TypeError", async () => {
    assert.ok(recvSome !== undefined, "the addon has no recvSome");
    const bytes = new Uint8Array(100).map((_, i) => i);
    const { fd, close } = await fed(bytes);
    try {
      const a = recvSome(fd, 60, 10_000);
      const b = recvSome(fd, 60, 10_000);
      assert.ok(a.code === IO_CODES.ok && b.code === IO_CODES.ok);
      assert.ok(Buffer.concat([a.bytes, b.bytes]).equals(bytes));
      assert.equal(a.bytes.length, 60);
      assert.throws(() => recvSome(fd, 0, 10), TypeError);
    } finally {
      await close();
    }
  });
});
