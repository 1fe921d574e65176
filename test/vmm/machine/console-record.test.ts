/**
 * `ConsoleRecord`: the console tail a snapshot carries. It copies every write into one buffer
 * (a Linux boot writes ~5 K one-byte chunks) and must still hand back exactly the last `limit`
 * bytes, whatever the mix of write sizes.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ConsoleRecord } from "../../../src/vmm/machine/machine.js";

const text = (s: string): Uint8Array => Buffer.from(s, "latin1");
const str = (b: Uint8Array): string => Buffer.from(b).toString("latin1");

describe("ConsoleRecord", () => {
  it("keeps the last `limit` bytes of many one-byte writes, in order", () => {
    const record = new ConsoleRecord(new Uint8Array(0), 100);
    let all = "";
    for (let i = 0; i < 1000; i++) {
      const c = String.fromCharCode(0x21 + (i % 90));
      record.add(text(c));
      all += c;
      if (i % 97 === 0) assert.equal(str(record.bytes()), all.slice(-100), `after ${i + 1} bytes`);
    }
    assert.equal(str(record.bytes()), all.slice(-100));
  });

  it("starts from its initial bytes and takes writes of every size up to and past the limit", () => {
    let all = "0123456789";
    const record = new ConsoleRecord(text(all), 64);
    for (const size of [1, 63, 64, 65, 3, 200, 7, 0, 130, 1]) {
      const chunk = Array.from({ length: size }, (_, i) =>
        String.fromCharCode(0x41 + ((size + i) % 26)),
      ).join("");
      record.add(text(chunk));
      all += chunk;
      assert.equal(str(record.bytes()), all.slice(-64), `after a ${size}-byte write`);
    }
  });

  it("hands out copies: changing a result or a written chunk changes nothing kept", () => {
    const record = new ConsoleRecord(new Uint8Array(0), 16);
    const chunk = text("abc");
    record.add(chunk);
    chunk.fill(0x7a);
    const out = record.bytes();
    out.fill(0x79);
    assert.equal(str(record.bytes()), "abc");
  });
});
