import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createSoftVm } from "../../../src/backends/soft/index.js";
import { tempDir } from "./procs.js";
import type { Vm } from "../../../src/backends/vcpu.js";
import { receiveMigration, type MigrationTarget } from "../../../src/vmm/migration/destination.js";
import { Migration, type MigrationSource } from "../../../src/vmm/migration/source.js";
import { Precopy } from "../../../src/vmm/migration/precopy.js";
import { touchedPages } from "../../../src/vmm/migration/native-io.js";
import {
  DESTINATION_PHASES,
  encodeReply,
  GO,
  ReplyDecoder,
  type Reply,
} from "../../../src/vmm/migration/handshake.js";
import {
  encodeEndFrame,
  encodeLayoutFrame,
  encodeMetaFrame,
  encodePagesFrame,
  encodeRoundFrame,
  encodeStreamHeader,
  encodeSwitchoverFrame,
  encodeDeviceFrame,
  encodeVcpuFrame,
  HEADER_FLAG_ROUND_ACKS,
  MAX_PAGES_PER_FRAME,
  PAGE_BYTES,
  StreamDecoder,
} from "../../../src/vmm/migration/stream.js";
import { concatBytes } from "../../../src/vmm/snapshot/bytes.js";
import {
  connectChannel,
  listenOnce,
  type Channel,
  parseMigrationUri,
  type MigrationUri,
} from "../../../src/vmm/migration/transport.js";

const BASE = 0x8000_0000n;
const SIZE = 4 * 1024 * 1024;

/** A source over a soft VM whose "guest" is a timer that keeps writing pages and logging them. */
function dirtySource(vm: Vm) {
  const mem = vm.memory[0];
  assert.ok(mem !== undefined);
  let counter = 1;
  let running = true;
  const pauses: string[] = [];
  const write = (): void => {
    if (!running) return;
    // Every tick: 16 pages get the counter, one page is cleared (a zero page after data).
    for (let i = 0; i < 16; i++) {
      const page = (counter * 7 + i * 13) % (SIZE / PAGE_BYTES);
      new DataView(mem.bytes.buffer, mem.bytes.byteOffset).setUint32(
        page * PAGE_BYTES + 8,
        counter,
        true,
      );
      vm.markDirty?.(BASE + BigInt(page * PAGE_BYTES), PAGE_BYTES);
    }
    const cleared = (counter * 31) % (SIZE / PAGE_BYTES);
    mem.view(cleared * PAGE_BYTES, PAGE_BYTES).fill(0);
    vm.markDirty?.(BASE + BigInt(cleared * PAGE_BYTES), PAGE_BYTES);
    counter++;
  };
  const timer = setInterval(write, 1);
  const source: MigrationSource = {
    arch: "riscv",
    backend: "soft-inline",
    ram: { memory: vm.memory, getDirtyLog: (slot) => vm.getDirtyLog?.(slot) ?? new Uint8Array(0) },
    describe: () => ({ guest: "test", memBytes: SIZE }),
    pause: () => {
      running = false;
      pauses.push("pause");
      return Promise.resolve();
    },
    resume: () => {
      running = true;
      pauses.push("resume");
      return Promise.resolve();
    },
    capture: () =>
      Promise.resolve({
        vcpus: [],
        devices: [{ name: "test", data: new Uint8Array([counter & 0xff]) }],
      }),
  };
  return {
    source,
    pauses,
    stop: () => {
      clearInterval(timer);
    },
  };
}

function newVm(): Vm {
  const vm = createSoftVm({ mode: "inline" });
  const mem = vm.addMemory({ guestPhysAddr: BASE, size: SIZE, logDirty: true });
  // Non-trivial initial content: every 3rd page holds data.
  for (let p = 0; p < SIZE / PAGE_BYTES; p += 3)
    mem.view(p * PAGE_BYTES, PAGE_BYTES).fill(p & 0xff);
  return vm;
}

/**
 * Destinations of one fresh soft VM with BASE/SIZE RAM; `applied.devices` counts the devices of
 * the last applyDevices, and `hooks` run in the applies (default: nothing).
 */
function targetFactory(
  applied: { devices: number },
  hooks: { applyVcpus?: () => void; applyDevices?: () => void } = {},
) {
  return {
    arches: ["riscv"] as const,
    build: (): MigrationTarget => {
      const vm = createSoftVm({ mode: "inline" });
      vm.addMemory({ guestPhysAddr: BASE, size: SIZE });
      return {
        memory: vm.memory,
        applyVcpus: () => {
          hooks.applyVcpus?.();
        },
        applyDevices: (devices) => {
          applied.devices = devices.length;
          hooks.applyDevices?.();
        },
        [Symbol.dispose]: () => {
          vm.close();
        },
      };
    },
  };
}

/** HEADER, META and LAYOUT of a stream for targetFactory's machine. */
function streamHead(): Uint8Array[] {
  return [
    encodeStreamHeader("riscv", "soft-inline"),
    ...encodeMetaFrame({ guest: "test", memBytes: SIZE }),
    ...encodeLayoutFrame([{ slot: 0, flags: 0, guestPhysAddr: BASE, length: SIZE }]),
  ];
}

/** An in-process destination listening on loopback, and a channel connected to it. */
async function loopbackDestination(factory = targetFactory({ devices: 0 })) {
  const listener = await listenOnce(parseMigrationUri("tcp:127.0.0.1:0"));
  const received = listener.accept().then((ch) => receiveMigration(ch, factory));
  const ch = await connectChannel(listener.uri);
  return { listener, received, ch };
}

/** The destination's replies on `ch` up to and including `ready`. */
async function repliesUntilReady(ch: Channel): Promise<Reply[]> {
  const decoder = new ReplyDecoder();
  const replies: Reply[] = [];
  while (!replies.some((r) => r.reply === "ready")) {
    const bytes = await ch.read(5000);
    assert.ok(bytes !== undefined, "the destination hung up");
    replies.push(...decoder.push(bytes));
  }
  return replies;
}

async function migrateOnce(uri: MigrationUri) {
  using vm = newVm();
  const { source, pauses, stop } = dirtySource(vm);
  const listener = await listenOnce(uri);
  const applied = { devices: 0 };
  const received = listener.accept().then((ch) => receiveMigration(ch, targetFactory(applied)));
  try {
    const migration = new Migration(source, listener.uri, { downtimeLimitMs: 50 });
    const status = await migration.run();
    const got = await received;
    using target = got.target;
    assert.equal(status.status, "completed", status.error);
    assert.deepEqual(pauses, ["pause"]);
    assert.equal(applied.devices, 1);
    // The destination's own share of the switchover, as it timed it (`ready` reply).
    assert.deepEqual(Object.keys(status.destinationPhases ?? {}), [...DESTINATION_PHASES]);
    assert.ok(typeof status.destinationCpuMs === "number");
    const a = vm.memory[0]?.bytes;
    const b = target.memory[0]?.bytes;
    assert.ok(a !== undefined && b !== undefined);
    // Every page equal: the source is paused (no writes since) and nothing was lost.
    assert.ok(Buffer.from(a).equals(Buffer.from(b)), "destination RAM differs from the source's");
    assert.ok((status.rounds ?? 0) >= 1);
    assert.ok((status.zeroPages ?? 0) > 0);
    return status;
  } finally {
    stop();
    await listener.close();
  }
}

describe("Migration (in-process, soft VMs, a RAM writer racing the pre-copy)", () => {
  it("moves every page over tcp on loopback", async () => {
    await migrateOnce(parseMigrationUri("tcp:127.0.0.1:0"));
  });

  it("moves every page over a unix socket", async () => {
    const dir = tempDir();
    await migrateOnce(parseMigrationUri(`unix:${join(dir, "m.sock")}`));
  });

  it("the destination acknowledges each ROUND once its pages are stored, only when asked", async () => {
    for (const flags of [HEADER_FLAG_ROUND_ACKS, 0]) {
      const { listener, received, ch } = await loopbackDestination();
      try {
        const data = new Uint8Array(PAGE_BYTES).fill(7);
        await ch.write([
          encodeStreamHeader("riscv", "soft-inline", flags),
          ...encodeMetaFrame({ guest: "test", memBytes: SIZE }),
          ...encodeLayoutFrame([{ slot: 0, flags: 0, guestPhysAddr: BASE, length: SIZE }]),
          ...encodePagesFrame(0, [{ index: 3, data }]),
          ...encodeRoundFrame(1, 1n, 1n),
          ...encodeEndFrame(),
        ]);
        const replies = await repliesUntilReady(ch);
        await ch.write([GO]);
        const got = await received;
        using target = got.target;
        assert.deepEqual(
          replies,
          flags === 0
            ? [{ reply: "ready" }]
            : [{ reply: "round", round: 1, stateFirst: true }, { reply: "ready" }],
        );
        assert.equal(target.memory[0]?.bytes[3 * PAGE_BYTES], 7);
      } finally {
        ch.destroy();
        await listener.close();
      }
    }
  });

  it("stores a page that arrives cut across two reads (one copy from each chunk) and the run around it", async () => {
    const { listener, received, ch } = await loopbackDestination();
    try {
      // Pages 20..23, each byte distinct within its page, so a misplaced byte shows.
      const pages = [20, 21, 22, 23].map((index) => ({
        index,
        data: Uint8Array.from({ length: PAGE_BYTES }, (_, i) => (index * 7 + i * 13) & 0xff),
      }));
      const frame = concatBytes(encodePagesFrame(0, pages));
      // Cut inside page 21: the destination gets the frame in two reads.
      const cut = 16 + 8 + 8 * pages.length + PAGE_BYTES + 1234;
      await ch.write([...streamHead(), frame.subarray(0, cut)]);
      await ch.flushed();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await ch.write([frame.subarray(cut), ...encodeEndFrame()]);
      await repliesUntilReady(ch);
      await ch.write([GO]);
      using target = (await received).target;
      const ram = target.memory[0]?.bytes;
      assert.ok(ram !== undefined);
      for (const p of pages) {
        const got = ram.subarray(p.index * PAGE_BYTES, (p.index + 1) * PAGE_BYTES);
        assert.ok(Buffer.from(got).equals(p.data), `page ${p.index} differs`);
      }
      assert.ok(ram.subarray(19 * PAGE_BYTES, 20 * PAGE_BYTES).every((b) => b === 0));
      assert.ok(ram.subarray(24 * PAGE_BYTES, 25 * PAGE_BYTES).every((b) => b === 0));
    } finally {
      ch.destroy();
      await listener.close();
    }
  });

  it("stream 1.3: the vCPUs are applied once the announced state is in, before the last pages; the devices after END", async () => {
    const listener = await listenOnce(parseMigrationUri("tcp:127.0.0.1:0"));
    const events: string[] = [];
    const received = listener.accept().then((channel) =>
      receiveMigration(channel, {
        arches: ["riscv"],
        build: (): MigrationTarget => {
          const vm = createSoftVm({ mode: "inline" });
          const mem = vm.addMemory({ guestPhysAddr: BASE, size: SIZE });
          // What page 4 holds when each step runs: the last pages land between the two.
          const page4 = () => mem.view(4 * PAGE_BYTES, 1)[0];
          return {
            memory: vm.memory,
            applyVcpus: (vcpus, devices) => {
              events.push(`vcpus ${vcpus.length}+${devices.length}, page 4 = ${page4()}`);
            },
            applyDevices: (devices) => {
              events.push(`devices ${devices.length}, page 4 = ${page4()}`);
            },
            [Symbol.dispose]: () => {
              vm.close();
            },
          };
        },
      }),
    );
    const ch = await connectChannel(listener.uri);
    try {
      await ch.write([
        ...streamHead(),
        ...encodePagesFrame(0, [{ index: 3, data: new Uint8Array(PAGE_BYTES).fill(7) }]),
        ...encodeSwitchoverFrame(2),
        ...encodeVcpuFrame({ index: 0, regs: [] }, "riscv"),
        ...encodeDeviceFrame({ name: "test", data: new Uint8Array([1]) }),
        ...encodePagesFrame(0, [{ index: 4, data: new Uint8Array(PAGE_BYTES).fill(9) }]),
        ...encodeEndFrame(),
      ]);
      await repliesUntilReady(ch);
      await ch.write([GO]);
      using target = (await received).target;
      assert.deepEqual(events, ["vcpus 1+1, page 4 = 0", "devices 1, page 4 = 9"]);
      assert.equal(target.memory[0]?.bytes[3 * PAGE_BYTES], 7);
    } finally {
      ch.destroy();
      await listener.close();
    }
  });

  it("the destination's ready reply carries its switchover stages in the order they ran, and its CPU time", async () => {
    /** Works for `ms`, of wall time and of this process's CPU time (a stage that computes). */
    const burn = (ms: number): void => {
      const start = performance.now();
      const cpu = process.cpuUsage();
      const used = (): number => {
        const u = process.cpuUsage(cpu);
        return (u.user + u.system) / 1000;
      };
      while (performance.now() - start < ms || used() < ms);
    };
    const vcpu = encodeVcpuFrame({ index: 0, regs: [] }, "riscv");
    const device = encodeDeviceFrame({ name: "test", data: new Uint8Array([1]) });
    const pages = encodePagesFrame(0, [{ index: 4, data: new Uint8Array(PAGE_BYTES).fill(9) }]);
    // 1.3: the state, then the last pages; 1.2: SWITCHOVER, the pages, then the state.
    const orders: [Uint8Array[], string[]][] = [
      [
        [...encodeSwitchoverFrame(2), ...vcpu, ...device, ...pages],
        ["state", "vcpus", "pages", "devices"],
      ],
      [
        [...encodeSwitchoverFrame(), ...pages, ...vcpu, ...device],
        ["pages", "state", "vcpus", "devices"],
      ],
    ];
    for (const [tail, stages] of orders) {
      const { listener, received, ch } = await loopbackDestination(
        targetFactory(
          { devices: 0 },
          {
            applyVcpus: () => {
              burn(30);
            },
            applyDevices: () => {
              burn(15);
            },
          },
        ),
      );
      try {
        await ch.write([
          ...streamHead(),
          ...encodePagesFrame(0, [{ index: 3, data: new Uint8Array(PAGE_BYTES).fill(7) }]),
          ...tail,
          ...encodeEndFrame(),
        ]);
        const ready = (await repliesUntilReady(ch)).find((r) => r.reply === "ready");
        await ch.write([GO]);
        (await received).target[Symbol.dispose]();
        assert.ok(ready?.reply === "ready");
        const phases = ready.phases ?? {};
        assert.deepEqual(Object.keys(phases), stages);
        assert.ok((phases.vcpus ?? 0) >= 30, JSON.stringify(phases));
        assert.ok((phases.devices ?? 0) >= 15, JSON.stringify(phases));
        // Both applies burned CPU (the process's, all threads: at least theirs).
        assert.ok((ready.cpuMs ?? 0) >= 45, `cpuMs ${ready.cpuMs}`);
      } finally {
        ch.destroy();
        await listener.close();
      }
    }
  });

  it("stream 1.3: pages before the announced state is complete, a state frame too many, an END without all of it: refused", async () => {
    const vcpu = encodeVcpuFrame({ index: 0, regs: [] }, "riscv");
    const device = encodeDeviceFrame({ name: "test", data: new Uint8Array([1]) });
    const pages = encodePagesFrame(0, [{ index: 4, data: undefined }]);
    const cases: [Uint8Array[], RegExp][] = [
      [[...encodeSwitchoverFrame(2), ...vcpu, ...pages], /PAGES frame out of order/],
      [[...encodeSwitchoverFrame(1), ...vcpu, ...device], /DEVICE frame out of order/],
      [[...encodeSwitchoverFrame(2), ...vcpu, ...encodeEndFrame()], /END frame out of order/],
      [[...vcpu, ...encodeSwitchoverFrame(1)], /SWITCHOVER frame out of order/],
    ];
    for (const [tail, why] of cases) {
      const { listener, received, ch } = await loopbackDestination();
      try {
        await ch.write([...streamHead(), ...tail]);
        await assert.rejects(received, why);
      } finally {
        ch.destroy();
        await listener.close();
      }
    }
  });

  it("a destination that does not ask for stateFirst (1.2) gets the last pages first, then the state, then END", async () => {
    using vm = newVm();
    const { source, stop } = dirtySource(vm);
    const listener = await listenOnce(parseMigrationUri("tcp:127.0.0.1:0"));
    // A 1.2 destination in JS: round acknowledgements without stateFirst or switchover.
    const kinds = listener.accept().then(async (ch) => {
      const decoder = new StreamDecoder();
      const seen: string[] = [];
      for (;;) {
        const bytes = await ch.read(5000);
        assert.ok(bytes !== undefined, "the source hung up");
        for (const item of decoder.push(bytes)) {
          seen.push(item.kind);
          if (item.kind === "round")
            await ch.write([encodeReply({ reply: "round", round: item.round })]);
        }
        if (decoder.ended) break;
      }
      await ch.write([encodeReply({ reply: "ready" })]);
      assert.deepEqual([...((await ch.read(5000)) ?? [])], [...GO]);
      ch.destroy();
      return seen;
    });
    try {
      const status = await new Migration(source, listener.uri, { downtimeLimitMs: 50 }).run();
      assert.equal(status.status, "completed", status.error);
      // Its ready reply had no timeline: none shown.
      assert.equal(status.destinationPhases, undefined);
      assert.equal(status.destinationCpuMs, undefined);
      const seen = await kinds;
      // After the last round: no SWITCHOVER, the last pages (if the writer dirtied any), the
      // state, END.
      const tail = seen.slice(seen.lastIndexOf("round") + 1);
      assert.deepEqual(
        tail.filter((k) => k !== "pages"),
        ["device", "end"],
      );
      assert.ok(!tail.slice(tail.indexOf("device")).includes("pages"), tail.join(" "));
    } finally {
      stop();
      await listener.close();
    }
  });

  it("fails with one line and resumes nothing when nobody listens", async () => {
    using vm = newVm();
    const { source, pauses, stop } = dirtySource(vm);
    stop();
    const dir = tempDir();
    const status = await new Migration(
      source,
      parseMigrationUri(`unix:${join(dir, "none")}`),
    ).run();
    assert.equal(status.status, "failed");
    assert.match(status.error ?? "", /Cannot connect to unix:.*ENOENT/);
    assert.deepEqual(pauses, []);
  });
});

describe("parseMigrationUri()", () => {
  it("reads tcp and unix forms and defaults the host to loopback", () => {
    assert.deepEqual(parseMigrationUri("tcp::4444"), {
      kind: "tcp",
      host: "127.0.0.1",
      port: 4444,
    });
    assert.deepEqual(parseMigrationUri("tcp:[::1]:5"), { kind: "tcp", host: "::1", port: 5 });
    assert.deepEqual(parseMigrationUri("unix:/tmp/x"), { kind: "unix", path: "/tmp/x" });
  });
  it("refuses other forms with the accepted ones", () => {
    for (const bad of ["tcp:host", "tcp:h:x", "tcp:h:70000", "udp:1", "unix:", "/tmp/x"]) {
      assert.throws(() => parseMigrationUri(bad), /use tcp:HOST:PORT or unix:PATH/);
    }
  });
});

describe("Precopy", () => {
  it("keeps every PAGES frame within 4096 entries when a zero group fills a frame exactly", async () => {
    // Regression: 3840 data pages, then a 256-page zero group (the frame is full at 4096), then
    // more data: the 4097th entry must not go into the same frame (RangeError).
    using vm = createSoftVm({ mode: "inline" });
    const mem = vm.addMemory({ guestPhysAddr: BASE, size: 8192 * PAGE_BYTES, logDirty: true });
    for (let p = 0; p < 8192; p++) {
      if (p < 3840 || p >= 4096) mem.view(p * PAGE_BYTES, 1).fill(1 + (p % 200));
    }
    const decoder = new StreamDecoder();
    decoder.push(encodeStreamHeader("riscv", "soft-inline"));
    const seen = new Map<number, boolean>();
    const precopy = new Precopy(
      { memory: vm.memory, getDirtyLog: (slot) => vm.getDirtyLog(slot) },
      (chunks) => {
        for (const item of decoder.push(concatBytes([...chunks]))) {
          if (item.kind !== "pages") continue;
          assert.ok(item.pages.length <= MAX_PAGES_PER_FRAME);
          for (const page of item.pages) seen.set(page.index, page.data !== undefined);
        }
        return Promise.resolve();
      },
      { downtimeLimitMs: 1000, maxRounds: 1 },
    );
    await precopy.iterate();
    await precopy.finish();
    assert.equal(seen.size, 8192);
    assert.equal(seen.get(3845), false, "a zero page travels as a flag");
    assert.equal(seen.get(4096), true);
  });

  it("copies pages while the guest runs, sends the last ones by reference, and reuses a frame buffer only after the socket is done with it", async () => {
    using vm = createSoftVm({ mode: "inline" });
    const pages = 2048;
    const mem = vm.addMemory({ guestPhysAddr: BASE, size: pages * PAGE_BYTES, logDirty: true });
    const ram = mem.view(0, pages * PAGE_BYTES);
    const fill = (pass: number): void => {
      // Runs of dirty pages with gaps and zero pages between them.
      for (let p = 0; p < pages; p++) {
        if (p % 7 !== 3) ram.fill((p + pass) % 251 || 1, p * PAGE_BYTES, (p + 1) * PAGE_BYTES);
      }
      vm.markDirty(BASE, pages * PAGE_BYTES);
    };
    fill(1);
    const held: { chunks: Uint8Array[]; sent?: () => void }[] = [];
    let finishing = false;
    const precopy = new Precopy(
      { memory: vm.memory, getDirtyLog: (slot) => vm.getDirtyLog(slot) },
      (chunks, sent) => {
        for (const c of chunks) {
          // While the guest runs no frame may alias guest RAM; paused, every data page does.
          if (c.length >= PAGE_BYTES) assert.equal(c.buffer === ram.buffer, finishing);
        }
        // Hold every frame (and its buffer) unsent until the end: a buffer handed out again
        // before `sent` would overwrite a held frame and fail its CRC below.
        held.push({ chunks: [...chunks], ...(sent === undefined ? {} : { sent }) });
        return Promise.resolve();
      },
      { downtimeLimitMs: 0, maxRounds: 2 },
    );
    await precopy.iterate();
    fill(2);
    finishing = true;
    const last = await precopy.finish();
    assert.equal(last, pages, "every page was marked dirty");
    const decoder = new StreamDecoder();
    decoder.push(encodeStreamHeader("riscv", "soft-inline"));
    const got = new Uint8Array(pages * PAGE_BYTES);
    let finalParts = 0;
    for (const frame of held) {
      for (const item of decoder.push(concatBytes(frame.chunks))) {
        if (item.kind !== "pages") continue;
        for (const page of item.pages) {
          if (page.data === undefined)
            got.fill(0, page.index * PAGE_BYTES, (page.index + 1) * PAGE_BYTES);
          else got.set(page.data, page.index * PAGE_BYTES);
        }
      }
      if (frame.chunks.some((c) => c.buffer === ram.buffer)) finalParts += frame.chunks.length;
    }
    assert.deepEqual(got, ram.slice(), "the destination's copy equals the RAM at the pause");
    // By reference, a run of consecutive data pages (six here) is one part of the writev.
    assert.ok(finalParts > 0 && finalParts < pages / 2, `${finalParts} parts`);
    for (const frame of held) frame.sent?.();
  });

  it("reports the dirty set of every round and why it switched over: fits, no-progress, max-rounds", async () => {
    using vm = createSoftVm({ mode: "inline" });
    const pages = 64;
    const mem = vm.addMemory({ guestPhysAddr: BASE, size: pages * PAGE_BYTES, logDirty: true });
    const run = async (redirty: boolean, downtimeLimitMs: number) => {
      const precopy = new Precopy(
        { memory: vm.memory, getDirtyLog: (slot) => vm.getDirtyLog(slot) },
        () => Promise.resolve(),
        {
          downtimeLimitMs,
          maxRounds: 3,
          // 2 MB/s: 64 data pages (263 KB) take ~131 ms, so the expected switchover is ~131 ms.
          maxBandwidth: 2_000_000,
          // The "guest" rewrites every page during each round, as the 64 MiB payload does.
          settle: () => {
            if (redirty) {
              mem.view(0, pages * PAGE_BYTES).fill(7);
              vm.markDirty(BASE, pages * PAGE_BYTES);
            }
            return Promise.resolve();
          },
        },
      );
      await precopy.iterate();
      return precopy.progress;
    };
    const quiet = await run(false, 50);
    assert.deepEqual(
      [quiet.dirtyByRound, quiet.switchover, quiet.expectedDowntimeMs],
      [[0], "fits", 0],
    );
    // Within twice the limit: round 2 re-sent all 64 pages and all 64 were dirtied again.
    const stalled = await run(true, 100);
    assert.deepEqual([stalled.dirtyByRound, stalled.switchover], [[pages, pages], "no-progress"]);
    // Beyond twice the limit the rounds go on to maxRounds.
    const busy = await run(true, 50);
    assert.deepEqual([busy.dirtyByRound, busy.switchover], [[pages, pages, pages], "max-rounds"]);
    assert.ok(busy.expectedDowntimeMs > 100, `${busy.expectedDowntimeMs} ms expected`);
  });

  it("round 1 sends a page the page tables call untouched as zero without reading it; later rounds read every page", async () => {
    using vm = createSoftVm({ mode: "inline" });
    const pages = 1024;
    const mem = vm.addMemory({ guestPhysAddr: BASE, size: pages * PAGE_BYTES, logDirty: true });
    mem.view(0, pages * PAGE_BYTES).fill(5);
    const decoder = new StreamDecoder();
    decoder.push(encodeStreamHeader("riscv", "soft-inline"));
    const data = new Set<number>();
    let asked = 0;
    const precopy = new Precopy(
      { memory: vm.memory, getDirtyLog: (slot) => vm.getDirtyLog(slot) },
      (chunks) => {
        for (const item of decoder.push(concatBytes([...chunks]))) {
          if (item.kind !== "pages") continue;
          for (const p of item.pages) {
            if (p.data === undefined) data.delete(p.index);
            else data.add(p.index);
          }
        }
        return Promise.resolve();
      },
      {
        downtimeLimitMs: 0,
        maxRounds: 2,
        // Claims pages 256-767 (whole groups and parts of others) were never touched, although
        // they hold data: only round 1 may believe it.
        touched: (view, out) => {
          asked++;
          assert.equal(view.length, pages * PAGE_BYTES);
          out.fill(1);
          out.fill(0, 256, 768);
          return true;
        },
        settle: () => {
          vm.markDirty(BASE, pages * PAGE_BYTES);
          return Promise.resolve();
        },
      },
    );
    await precopy.iterate();
    assert.equal(asked, 1, "looked up in round 1 only");
    assert.equal(precopy.progress.zeroPages, 512);
    // Round 2 read every page again and sent them all as data.
    assert.equal(data.size, pages);
  });

  it("touchedPages(): pages of guest RAM never touched are 0, written or read ones 1; other memory cannot tell", (t) => {
    using vm = createSoftVm({ mode: "inline" });
    const mem = vm.addMemory({ guestPhysAddr: BASE, size: 64 * PAGE_BYTES });
    const view = mem.view(0, 64 * PAGE_BYTES);
    const out = new Uint8Array(64);
    if (!touchedPages(view, out)) {
      t.skip("no addon, REGVISOR_NATIVE=0 or no /proc/self/pagemap: every page is read");
      return;
    }
    view[5 * PAGE_BYTES + 100] = 1;
    assert.equal(view[9 * PAGE_BYTES], 0); // a read maps the zero page: touched too
    view[63 * PAGE_BYTES] = 2;
    assert.equal(touchedPages(view, out), true);
    // The backend may have touched pages of the slot itself; these three are certainly touched.
    for (const page of [5, 9, 63]) assert.equal(out[page], 1, `page ${page}`);
    const untouched = [...out].filter((b) => b === 0).length;
    assert.ok(untouched > 32, `${untouched} of 64 pages untouched`);
    // Every page reported untouched reads as zero.
    out.forEach((b, page) => {
      if (b === 0)
        assert.ok(view.subarray(page * PAGE_BYTES, (page + 1) * PAGE_BYTES).every((x) => x === 0));
    });
    // Not page-aligned, or a plain heap buffer: undefined is refused, the caller reads pages.
    assert.equal(touchedPages(view.subarray(1, 1 + PAGE_BYTES), new Uint8Array(1)), false);
    assert.equal(touchedPages(new Uint8Array(4 * PAGE_BYTES), new Uint8Array(4)), false);
  });

  it("finish() merges and counts dirty logs of any length and alignment", async () => {
    using vm = createSoftVm({ mode: "inline" });
    const pages = 200;
    vm.addMemory({ guestPhysAddr: BASE, size: pages * PAGE_BYTES });
    // Logs 25 bytes long at an odd offset: neither whole words nor 4-byte aligned.
    const log = (set: readonly number[]): Uint8Array => {
      const bytes = new Uint8Array(1 + pages / 8).subarray(1);
      for (const p of set) bytes[p >> 3] = (bytes[p >> 3] ?? 0) | (1 << (p & 7));
      return bytes;
    };
    const logs = [log([]), log([0, 31, 32, 100, 199]), log([31, 198, 199])];
    const precopy = new Precopy(
      { memory: vm.memory, getDirtyLog: () => logs.shift() ?? log([]) },
      () => Promise.resolve(),
      { downtimeLimitMs: 1e9, maxRounds: 1 },
    );
    await precopy.iterate();
    assert.deepEqual(precopy.progress.dirtyByRound, [5]);
    assert.equal(await precopy.finish(), 6);
  });

  it("finish() hands each slot's last dirty log to the sink's sendDirty, but frames them itself under a bandwidth cap", async () => {
    using vm = createSoftVm({ mode: "inline" });
    const pages = 64;
    const mem = vm.addMemory({ guestPhysAddr: BASE, size: pages * PAGE_BYTES, logDirty: true });
    mem.view(5 * PAGE_BYTES, 1).fill(7);
    const run = async (maxBandwidth?: number) => {
      const handed: { slot: number; pages: number; bytes: number; dirty: number[] }[] = [];
      let framed = 0;
      const precopy = new Precopy(
        { memory: vm.memory, getDirtyLog: () => Uint8Array.of(0x21, 0, 0, 0, 0, 0, 0, 0) },
        () => Promise.resolve(),
        {
          downtimeLimitMs: 300,
          maxRounds: 1,
          ...(maxBandwidth === undefined ? {} : { maxBandwidth }),
        },
      );
      const count = await precopy.finish({
        write: () => {
          framed++;
          return Promise.resolve();
        },
        sendDirty: (slot, bitmap) => {
          const dirty = [...Array(slot.pages).keys()].filter(
            (p) => ((bitmap[p >> 3] ?? 0) >> (p & 7)) & 1,
          );
          const bytes = slot.windows.reduce((n, w) => n + w.length, 0);
          handed.push({ slot: slot.slot, pages: slot.pages, bytes, dirty });
          return Promise.resolve({ pages: 2, zeroPages: 1, written: 4152 });
        },
      });
      return { count, handed, framed, progress: precopy.progress };
    };
    const direct = await run();
    assert.equal(direct.count, 2);
    assert.deepEqual(direct.handed, [
      { slot: mem.slot, pages, bytes: pages * PAGE_BYTES, dirty: [0, 5] },
    ]);
    assert.equal(direct.framed, 0);
    assert.deepEqual(
      [direct.progress.pagesSent, direct.progress.zeroPages, direct.progress.transferredBytes],
      [2, 1, 4152],
    );
    const capped = await run(1e9);
    assert.deepEqual([capped.count, capped.handed.length, capped.framed], [2, 0, 1]);
  });

  it("sends a page as zero only when every byte is zero (one byte anywhere makes it data)", async () => {
    using vm = createSoftVm({ mode: "inline" });
    const pages = 512;
    const mem = vm.addMemory({ guestPhysAddr: BASE, size: pages * PAGE_BYTES, logDirty: true });
    const marked = [0, 1, 255, 256, 300, 511];
    const offsets = [0, 1, 2047, PAGE_BYTES - 2, PAGE_BYTES - 1, 4000];
    marked.forEach((page, i) => mem.view(page * PAGE_BYTES + (offsets[i] ?? 0), 1).fill(9));
    const decoder = new StreamDecoder();
    decoder.push(encodeStreamHeader("riscv", "soft-inline"));
    const data = new Set<number>();
    const precopy = new Precopy(
      { memory: vm.memory, getDirtyLog: (slot) => vm.getDirtyLog(slot) },
      (chunks) => {
        for (const item of decoder.push(concatBytes([...chunks]))) {
          if (item.kind === "pages") for (const p of item.pages) if (p.data) data.add(p.index);
        }
        return Promise.resolve();
      },
      { downtimeLimitMs: 1000, maxRounds: 1 },
    );
    await precopy.iterate();
    assert.deepEqual(
      [...data].sort((a, b) => a - b),
      marked,
    );
    assert.equal(precopy.progress.zeroPages, pages - marked.length);
  });
});
