import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { lookupReg } from "../../../src/abi/catalog.js";
import { concatBytes } from "../../../src/vmm/snapshot/bytes.js";
import { encodeFrame } from "../../../src/vmm/snapshot/container.js";
import { encodeReply, ReplyDecoder, type Reply } from "../../../src/vmm/migration/handshake.js";
import {
  DEFAULT_STREAM_LIMITS,
  encodeDeviceFrame,
  encodeEndFrame,
  encodeLayoutFrame,
  encodeMetaFrame,
  encodePagesFrame,
  HEADER_FLAG_ROUND_ACKS,
  encodeRoundFrame,
  encodeStreamHeader,
  encodeSwitchoverFrame,
  encodeVcpuFrame,
  FRAME_TYPES,
  MAX_PAGES_PER_FRAME,
  MigrationStreamError,
  PAGE_BYTES,
  PagesFrame,
  StreamDecoder,
  type StreamItem,
} from "../../../src/vmm/migration/stream.js";

const pc = lookupReg("riscv", "core.pc").id;
const a0 = lookupReg("riscv", "core.a0").id;

function page(fill: number): Uint8Array {
  return new Uint8Array(PAGE_BYTES).fill(fill);
}

/** A whole stream: header, META, LAYOUT, two rounds, switchover, END. */
function sampleStream(): Uint8Array {
  const value = (v: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, v, true);
    return b;
  };
  return concatBytes([
    encodeStreamHeader("riscv", "soft-threaded"),
    ...encodeMetaFrame({ guest: "elf", creator: "test" }),
    ...encodeLayoutFrame([{ slot: 0, flags: 1, guestPhysAddr: 0x8000_0000n, length: 1 << 20 }]),
    ...encodePagesFrame(0, [
      { index: 0, data: page(0xaa) },
      { index: 5, data: undefined },
      { index: 255, data: page(0x55) },
    ]),
    ...encodeRoundFrame(1, 3n, 1n),
    ...encodePagesFrame(0, [{ index: 7, data: page(0x01) }]),
    ...encodeVcpuFrame(
      {
        index: 0,
        regs: [
          { id: pc, value: value(0x8020_0000n) },
          { id: a0, value: value(42n) },
        ],
      },
      "riscv",
    ),
    ...encodeDeviceFrame({ name: "uart0", data: new Uint8Array([1, 2, 3]) }),
    ...encodeEndFrame(),
  ]);
}

/** A comparable summary of decoded items (page data by first byte). */
function summary(items: StreamItem[]): unknown[] {
  return items.map((item) => {
    switch (item.kind) {
      case "pages":
        return { pages: item.pages.map((p) => [p.index, p.data?.[0] ?? "zero", p.data?.length]) };
      case "vcpu":
        return { vcpu: item.state.index, regs: item.state.regs.map((r) => [r.id, [...r.value]]) };
      case "device":
        return { device: item.state.name, data: [...item.state.data] };
      default:
        return item;
    }
  });
}

describe("migration stream", () => {
  const stream = sampleStream();
  const whole = summary(new StreamDecoder().push(stream));

  it("decodes what the writer wrote, item by item, and ends at END", () => {
    assert.deepEqual(
      whole.map((i) => (i as { kind?: string }).kind ?? Object.keys(i as object)[0]),
      ["header", "meta", "layout", "pages", "round", "pages", "vcpu", "device", "end"],
    );
    assert.deepEqual(whole[3], {
      pages: [
        [0, 0xaa, PAGE_BYTES],
        [5, "zero", undefined],
        [255, 0x55, PAGE_BYTES],
      ],
    });
    assert.deepEqual(whole[0], {
      kind: "header",
      arch: "riscv",
      backend: "soft-threaded",
      minor: 3,
      flags: 0,
    });
  });

  it("carries the advisory round-acknowledgement flag; required flag bits are refused", () => {
    const [item] = new StreamDecoder().push(
      encodeStreamHeader("riscv", "kvm", HEADER_FLAG_ROUND_ACKS),
    );
    assert.equal(item?.kind === "header" ? item.flags : undefined, HEADER_FLAG_ROUND_ACKS);
    assert.throws(
      () => new StreamDecoder().push(encodeStreamHeader("riscv", "kvm", 1)),
      /required header flags this reader does not know/,
    );
  });

  it("round replies: parsed with their number; a round that is not a count is refused", () => {
    const d = new ReplyDecoder();
    assert.deepEqual(d.push(encodeReply({ reply: "round", round: 3 })), [
      { reply: "round", round: 3 },
    ]);
    for (const bad of ['{"reply":"round"}\n', '{"reply":"round","round":-1}\n']) {
      assert.throws(() => new ReplyDecoder().push(new TextEncoder().encode(bad)), /unknown reply/);
    }
  });

  it("round replies carry stateFirst (1.3) and switchover (1.2) only when true", () => {
    const d = new ReplyDecoder();
    const line = (text: string) => d.push(new TextEncoder().encode(text + "\n"));
    assert.deepEqual(line('{"reply":"round","round":2,"switchover":true,"stateFirst":true}'), [
      { reply: "round", round: 2, switchover: true, stateFirst: true },
    ]);
    assert.deepEqual(line('{"reply":"round","round":4,"stateFirst":1,"switchover":false}'), [
      { reply: "round", round: 4 },
    ]);
  });

  it("ready replies: with or without the destination's timeline; a malformed timeline is refused", () => {
    const d = new ReplyDecoder();
    const line = (text: string) => d.push(new TextEncoder().encode(text + "\n"));
    // A 1.2 destination's reply, and one with a stage this source does not know of.
    assert.deepEqual(line('{"reply":"ready"}'), [{ reply: "ready" }]);
    const timed: Reply = {
      reply: "ready",
      phases: { state: 0.2, vcpus: 1.5, later2: 0 },
      cpuMs: 2.4,
    };
    assert.deepEqual(d.push(encodeReply(timed)), [timed]);
    for (const bad of [
      '{"reply":"ready","phases":[1,2]}',
      '{"reply":"ready","phases":{"state":-1}}',
      '{"reply":"ready","phases":{"state":"1"}}',
      '{"reply":"ready","phases":{"State":1}}',
      '{"reply":"ready","phases":{"state":1},"cpuMs":null}',
      `{"reply":"ready","phases":{${Array.from({ length: 17 }, (_, i) => `"p${i}":1`).join(",")}}}`,
    ]) {
      assert.throws(
        () => new ReplyDecoder().push(new TextEncoder().encode(bad + "\n")),
        /ready reply with a malformed timeline/,
        bad,
      );
    }
  });

  it("SWITCHOVER: empty (1.2) or the count of state frames before the last pages (1.3), bounded", () => {
    const header = encodeStreamHeader("riscv", "kvm");
    const decode = (frame: Uint8Array[]) =>
      new StreamDecoder().push(concatBytes([header, ...frame])).slice(1);
    assert.deepEqual(decode(encodeSwitchoverFrame()), [{ kind: "switchover" }]);
    assert.deepEqual(decode(encodeSwitchoverFrame(3)), [{ kind: "switchover", stateFrames: 3 }]);
    const max = DEFAULT_STREAM_LIMITS.snapshot.maxSections;
    assert.deepEqual(decode(encodeSwitchoverFrame(max)), [
      { kind: "switchover", stateFrames: max },
    ]);
    assert.throws(
      () => decode(encodeSwitchoverFrame(max + 1)),
      (e) =>
        e instanceof MigrationStreamError && e.message.includes("state frames exceed the limit"),
    );
    for (const payload of [new Uint8Array(2), new Uint8Array(8)]) {
      const frame = encodeFrame({ type: FRAME_TYPES.SWITCHOVER, flags: 0, payload: [payload] });
      assert.throws(
        () => decode(frame),
        (e) => e instanceof MigrationStreamError && e.message.includes("not 0 or 4"),
      );
    }
  });

  it("a zero page costs 8 bytes, not 4 KiB", () => {
    const zeros = concatBytes(
      encodePagesFrame(
        0,
        Array.from({ length: 100 }, (_, i) => ({ index: i, data: undefined })),
      ),
    );
    assert.equal(zeros.length, 20 + 8 + 100 * 8);
  });

  it("gives the same items however the bytes are split", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 12 }),
        (cuts) => {
          const d = new StreamDecoder();
          const items: StreamItem[] = [];
          let at = 0;
          for (const c of [...cuts].sort((x, y) => x - y)) {
            // Copy each piece: page views in items must not depend on the caller's buffer.
            items.push(...d.push(stream.slice(at, Math.max(at, c))));
            at = Math.max(at, c);
          }
          items.push(...d.push(stream.slice(at)));
          d.finish();
          assert.deepEqual(summary(items), whole);
        },
      ),
      { numRuns: 150 },
    );
  });

  it("hands out data pages as views of the pushed chunks, one piece per chunk, no copy even of a page a cut splits", () => {
    const run = Array.from({ length: 8 }, (_, i) => ({ index: 10 + i, data: page(0x10 + i) }));
    const frame = concatBytes(encodePagesFrame(0, run));
    const header = encodeStreamHeader("riscv", "kvm");
    const whole = new StreamDecoder();
    whole.push(header);
    const [one] = whole.push(frame);
    assert.ok(one?.kind === "pages");
    assert.deepEqual(
      one.data.map((p) => [p.length, p.buffer === frame.buffer]),
      [[8 * PAGE_BYTES, true]],
    );
    const split = new StreamDecoder();
    split.push(header);
    const cut = 16 + 8 + 8 * 8 + 3 * PAGE_BYTES + 100;
    const a = frame.slice(0, cut);
    const b = frame.slice(cut);
    assert.deepEqual(split.push(a), []);
    const [two] = split.push(b);
    assert.ok(two?.kind === "pages");
    const where = (p: Uint8Array): string =>
      p.buffer === a.buffer ? "a" : p.buffer === b.buffer ? "b" : "copy";
    assert.deepEqual(
      two.data.map((p) => [p.length, where(p)]),
      [
        [3 * PAGE_BYTES + 100, "a"],
        [5 * PAGE_BYTES - 100, "b"],
      ],
    );
    // The views stay valid after more bytes are pushed (the decoder does not reuse chunks).
    split.push(concatBytes(encodeRoundFrame(1, 8n, 0n)));
    assert.deepEqual(
      two.pages.map((p) => [p.index, p.data?.[0], p.data?.[PAGE_BYTES - 1]]),
      run.map((r, i) => [r.index, 0x10 + i, 0x10 + i]),
    );
  });

  it("a stream cut anywhere before END fails finish() with a MigrationStreamError", () => {
    for (let cut = 0; cut < stream.length; cut += 97) {
      const d = new StreamDecoder();
      d.push(stream.subarray(0, cut));
      assert.throws(() => {
        d.finish();
      }, MigrationStreamError);
    }
  });

  it("every flipped byte is refused with a MigrationStreamError and nothing else", () => {
    for (let at = 0; at < stream.length; at += 13) {
      const bad = stream.slice();
      bad[at] = (bad[at] ?? 0) ^ 0x40;
      const d = new StreamDecoder();
      assert.throws(
        () => {
          d.push(bad);
          d.finish();
        },
        (e) => e instanceof MigrationStreamError,
        `flip at ${at}`,
      );
      // A failed decoder stays failed.
      assert.throws(() => d.push(new Uint8Array(1)), MigrationStreamError);
    }
  });

  it("refuses another major, a foreign stream, bytes after END and unknown frames", () => {
    const header = encodeStreamHeader("x86", "kvm");
    const v2 = header.slice();
    v2[8] = 2;
    assert.throws(() => new StreamDecoder().push(v2), /CRC32C mismatch/);
    assert.throws(
      () => new StreamDecoder().push(new TextEncoder().encode("RGVSNAP\0")),
      /not a regvisor migration/,
    );
    const after = concatBytes([header, ...encodeEndFrame(), new Uint8Array([0])]);
    assert.throws(() => new StreamDecoder().push(after), /bytes follow the END frame/);
    const unknown = concatBytes([header, ...encodeFrame({ type: 99, flags: 0, payload: [] })]);
    assert.throws(() => new StreamDecoder().push(unknown), /unknown frame type 99/);
  });

  it("bounds every length before allocating: a hostile frame length or page count", () => {
    const header = encodeStreamHeader("riscv", "kvm");
    const huge = new Uint8Array(16);
    const view = new DataView(huge.buffer);
    view.setUint32(0, FRAME_TYPES.PAGES, true);
    view.setBigUint64(8, 1n << 40n, true);
    assert.throws(
      () => new StreamDecoder().push(concatBytes([header, huge])),
      /frame length 1099511627776 exceeds the limit/,
    );
    const count = new Uint8Array(8);
    new DataView(count.buffer).setUint32(4, MAX_PAGES_PER_FRAME + 1, true);
    const frame = encodeFrame({ type: FRAME_TYPES.PAGES, flags: 0, payload: [count] });
    assert.throws(
      () => new StreamDecoder().push(concatBytes([header, ...frame])),
      /pages exceed the limit/,
    );
    assert.ok(DEFAULT_STREAM_LIMITS.maxFrameBytes < 32 * 1024 * 1024);
  });

  it("PagesFrame by reference: its parts are the caller's bytes, adjacent pages one part", () => {
    const ram = new Uint8Array(6 * PAGE_BYTES).map((_, i) => (i >> 12) + 1);
    const out = new PagesFrame(0, { byReference: true });
    out.data(0, ram.subarray(0, PAGE_BYTES));
    out.dataRun(1, ram.subarray(PAGE_BYTES, 3 * PAGE_BYTES));
    out.zero(3);
    out.data(5, ram.subarray(5 * PAGE_BYTES));
    const parts = out.encode();
    // Header, entry table, pages 0-2 as one view, page 5, CRC.
    assert.deepEqual(
      parts.map((p) =>
        p.buffer === ram.buffer
          ? `ram ${p.byteOffset / PAGE_BYTES}+${p.length / PAGE_BYTES}`
          : p.length,
      ),
      [16, 8 + 5 * 8, "ram 0+3", "ram 5+1", 4],
    );
    const d = new StreamDecoder();
    d.push(encodeStreamHeader("riscv", "kvm"));
    const [item] = d.push(concatBytes(parts));
    assert.ok(item?.kind === "pages");
    assert.deepEqual(
      item.pages.map((p) => [p.index, p.data?.[0] ?? "zero"]),
      [
        [0, 1],
        [1, 2],
        [2, 3],
        [3, "zero"],
        [5, 6],
      ],
    );
    assert.throws(() => {
      out.dataRun(6, new Uint8Array(100));
    }, RangeError);
  });

  it("the writer refuses pages it cannot frame", () => {
    assert.throws(() => encodePagesFrame(0, [{ index: 0, data: new Uint8Array(10) }]), RangeError);
    const many = Array.from({ length: MAX_PAGES_PER_FRAME + 1 }, (_, i) => ({
      index: i,
      data: undefined,
    }));
    assert.throws(() => encodePagesFrame(0, many), RangeError);
  });
});
