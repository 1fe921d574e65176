import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import fc from "fast-check";
import {
  crc32c,
  crc32cJs,
  crc32cNative,
  crc32cPath,
  NATIVE_MIN_BYTES,
} from "../../../src/vmm/snapshot/crc32c.js";

const path = crc32cPath();
const skip = path.kind === "js" ? `no SSE4.2 CRC32C: ${path.reason ?? "?"}` : false;

/** Both paths forced, on `bytes` continuing from `previous`. */
function both(bytes: Uint8Array, previous = 0): { js: number; native: number | undefined } {
  return { js: crc32cJs(bytes, previous), native: crc32cNative(bytes, previous) };
}

describe("crc32cNative() (SSE4.2) against crc32cJs()", { skip }, () => {
  it("gives the check value 0xE3069283 and the RFC 3720 §B.4 vectors on both paths", () => {
    const vectors: [Uint8Array, number][] = [
      [new TextEncoder().encode("123456789"), 0xe3069283],
      [new Uint8Array(32), 0x8a9136aa],
      [new Uint8Array(32).fill(0xff), 0x62a8ab43],
      [Uint8Array.from({ length: 32 }, (_, i) => i), 0x46dd794e],
      [Uint8Array.from({ length: 32 }, (_, i) => 31 - i), 0x113fdb5c],
      [new Uint8Array(0), 0],
    ];
    for (const [bytes, want] of vectors) {
      assert.deepEqual(both(bytes), { js: want, native: want });
    }
  });

  it("agrees at random lengths, offsets and previous values (byte tails and heads included)", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 0, maxLength: 20_000 }),
        fc.nat(15),
        fc.nat(15),
        fc.nat({ max: 0xffffffff }),
        (bytes, head, tail, previous) => {
          const view = bytes.subarray(
            Math.min(head, bytes.length),
            Math.max(Math.min(head, bytes.length), bytes.length - tail),
          );
          const { js, native } = both(view, previous);
          assert.equal(native, js);
        },
      ),
      { numRuns: 200 },
    );
  });

  it("agrees on 4 KiB pages of random data, and crc32c() picks the native path from NATIVE_MIN_BYTES", () => {
    const page = new Uint8Array(4096);
    for (let i = 0; i < page.length; i++) page[i] = (i * 2654435761) >>> 24;
    assert.equal(crc32cNative(page), crc32cJs(page));
    assert.equal(crc32c(page), crc32cJs(page));
    const small = page.subarray(0, NATIVE_MIN_BYTES - 1);
    assert.equal(crc32c(small), crc32cJs(small));
  });

  it("agrees at every length from 1000 to 1300 and at 1 MiB + 13 (the 1 KiB fold path where the CPU has VPCLMULQDQ: each 16-byte tail and byte tail)", () => {
    const data = Uint8Array.from({ length: (1 << 20) + 13 }, (_, i) => (i * 2654435761) >>> 24);
    for (let n = 1000; n <= 1300; n++) {
      const view = data.subarray(n & 7, (n & 7) + n);
      assert.equal(crc32cNative(view, n), crc32cJs(view, n), `length ${n}`);
    }
    assert.equal(crc32cNative(data, 0xdeadbeef), crc32cJs(data, 0xdeadbeef));
  });

  it("continues across chunks on either path: native(b, js(a)) = js(a ++ b)", () => {
    const ab = Uint8Array.from({ length: 10_007 }, (_, i) => (i * 31 + 7) & 0xff);
    for (const cut of [0, 1, 255, 4096, 10_006, 10_007]) {
      const a = ab.subarray(0, cut);
      const b = ab.subarray(cut);
      assert.equal(crc32cNative(b, crc32cJs(a)), crc32cJs(ab));
      assert.equal(crc32cJs(b, crc32cNative(a)), crc32cJs(ab));
    }
  });

  it("reads views of a SharedArrayBuffer (a soft guest's RAM)", () => {
    const shared = new Uint8Array(new SharedArrayBuffer(8192));
    for (let i = 0; i < shared.length; i++) shared[i] = i & 0xff;
    const plain = shared.slice();
    assert.equal(crc32cNative(shared.subarray(3, 8000)), crc32cJs(plain.subarray(3, 8000)));
  });

  it("rejects a non-view with a TypeError", () => {
    assert.throws(
      () => crc32cNative("abc" as unknown as Uint8Array),
      (e: unknown) => e instanceof TypeError && e.message.includes("ArrayBufferView"),
    );
  });
});

describe("crc32cPath()", () => {
  it("names the folded path exactly when the CPU has AVX-512 and VPCLMULQDQ", { skip }, () => {
    // /proc/cpuinfo's flags, as the addon's __builtin_cpu_supports sees them.
    const flags = (/^flags\s*:(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? "")
      .trim()
      .split(/\s+/);
    const fold = ["avx512f", "vpclmulqdq", "pclmulqdq", "sse4_2"].every((f) => flags.includes(f));
    assert.equal(path.kind, fold ? "sse4.2+vpclmulqdq" : "sse4.2");
  });

  it("is the JS loop with REGVISOR_NATIVE=0, with the same results", () => {
    const module = fileURLToPath(new URL("../../../src/vmm/snapshot/crc32c.js", import.meta.url));
    const script = `import("${module}").then((m) => { const b = new Uint8Array(5000).map((_, i) => i * 7); process.stdout.write(JSON.stringify([m.crc32cPath(), m.crc32c(b), m.crc32cNative(b) ?? null])); })`;
    const out = execFileSync(process.execPath, ["-e", script], {
      env: { ...process.env, REGVISOR_NATIVE: "0" },
      encoding: "utf8",
    });
    const b = new Uint8Array(5000).map((_, i) => i * 7);
    assert.deepEqual(JSON.parse(out), [
      { kind: "js", reason: "REGVISOR_NATIVE=0" },
      crc32cJs(b),
      null,
    ]);
  });
});
