import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CONSOLE_BUFFER_BYTES,
  bufferedSink,
  type ConsoleSink,
} from "../../../src/vmm/machine/console-sink.js";

/** A sink that records each write it is handed, and answers `full` as its write() result. */
function recorder(): { sink: ConsoleSink; writes: string[]; full: { value: boolean } } {
  const writes: string[] = [];
  const full = { value: false };
  const sink: ConsoleSink = {
    write(bytes) {
      writes.push(Buffer.from(bytes).toString("latin1"));
      return !full.value;
    },
    drained: () => Promise.resolve(),
    onClosed: () => undefined,
  };
  return { sink, writes, full };
}

const text = (s: string): Uint8Array => Buffer.from(s, "latin1");

describe("bufferedSink()", () => {
  it("hands a line over in one write, at its newline, bytes in order", () => {
    const { sink, writes } = recorder();
    const buffered = bufferedSink(sink, 60_000);
    for (const c of "[    0.000000] Linux version\nnext") buffered.write(text(c));
    assert.deepEqual(writes, ["[    0.000000] Linux version\n"]);
    buffered.flush();
    assert.deepEqual(writes, ["[    0.000000] Linux version\n", "next"]);
    buffered.flush();
    assert.equal(writes.length, 2, "an empty flush writes nothing");
  });

  it("a partial line (a prompt) goes out after the delay without a flush", async () => {
    const { sink, writes } = recorder();
    const buffered = bufferedSink(sink, 5);
    buffered.write(text("login: "));
    assert.deepEqual(writes, []);
    await sleep(50);
    assert.deepEqual(writes, ["login: "]);
  });

  it("a write larger than the buffer goes out after what was held, never before it", () => {
    const { sink, writes } = recorder();
    const buffered = bufferedSink(sink, 60_000);
    buffered.write(text("ab"));
    const big = "x".repeat(CONSOLE_BUFFER_BYTES + 1);
    buffered.write(text(big));
    assert.deepEqual(writes, ["ab", big]);
  });

  it("a full buffer is written before it overflows, and no byte is lost or repeated", () => {
    const { sink, writes } = recorder();
    const buffered = bufferedSink(sink, 60_000);
    let all = "";
    for (let i = 0; i < 3 * CONSOLE_BUFFER_BYTES; i++) {
      const c = String.fromCharCode(0x41 + (i % 26));
      all += c;
      buffered.write(text(c));
    }
    buffered.flush();
    assert.equal(writes.join(""), all);
    assert.ok(writes.every((w) => w.length <= CONSOLE_BUFFER_BYTES));
  });

  it("keeps backpressure: a write it passes on to a full sink answers false", () => {
    const { sink, full } = recorder();
    const buffered = bufferedSink(sink, 60_000);
    full.value = true;
    assert.equal(buffered.write(text("a")), true, "held, not yet written");
    assert.equal(buffered.write(text("b\n")), false, "the line went to a full sink");
  });
});
