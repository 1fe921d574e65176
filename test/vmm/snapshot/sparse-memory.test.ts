/**
 * Sparse guest memory costs what the file holds (issue 12 point 6): a few-KB snapshot that
 * declares gigabytes of zero pages is inspected, diffed, re-encoded and restored without the
 * zero pages ever being built. Bounds are on allocations and resident memory, not time.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  decodeSnapshot,
  diffSnapshots,
  encodeSnapshot,
  inspectSnapshot,
  SnapshotFormatError,
  type MemoryRegion,
  type Snapshot,
} from "../../../src/vmm/snapshot/index.js";
import { demoSnapshot as stopDemo, restoreDemo } from "./demo-run.js";
import { forEachStoredPage, sparseRegion } from "../../../src/vmm/snapshot/memory-pages.js";

const GiB = 2 ** 30;
const PAGE = 4096;
const MiB = 2 ** 20;

/** A sparse region of `length` bytes holding `pages` (page number → fill byte), nothing else. */
function declared(
  slot: number,
  gpa: bigint,
  length: number,
  pages: Map<number, number>,
): MemoryRegion {
  const bitmap = new Uint8Array(Math.ceil(length / PAGE / 8));
  const stored = new Uint8Array(pages.size * PAGE);
  [...pages.keys()]
    .sort((a, b) => a - b)
    .forEach((p, k) => {
      bitmap[p >> 3] = (bitmap[p >> 3] ?? 0) | (1 << (p & 7));
      stored.fill(pages.get(p) ?? 0, k * PAGE, (k + 1) * PAGE);
    });
  return sparseRegion(slot, 0, gpa, { length, bitmap, stored });
}

/** A riscv-demo snapshot after two exits, its RAM `memoryBytes`. */
async function demoSnapshot(memoryBytes: number): Promise<Snapshot> {
  return (await stopDemo("soft", 2, { memSize: BigInt(memoryBytes) })).snapshot;
}

/** Bytes of ArrayBuffers allocated while `f` runs (an expanded region would add its length). */
function arrayBufferGrowth(f: () => void): number {
  const before = process.memoryUsage().arrayBuffers;
  f();
  return process.memoryUsage().arrayBuffers - before;
}

describe("sparse guest memory", () => {
  it("inspect and diff count 4 GiB zero slots from the bitmap, expanding nothing", () => {
    const a = declared(0, 0n, 4 * GiB, new Map([[5, 1]]));
    const b = declared(1, 4n * BigInt(GiB), 4 * GiB, new Map());
    const base: Snapshot = {
      arch: "riscv",
      backend: "soft-inline",
      flags: 0,
      meta: {},
      vcpus: [],
      memory: [a, b],
      devices: [],
    };
    let bytes: Uint8Array = new Uint8Array(0);
    let other: Uint8Array = new Uint8Array(0);
    const grew = arrayBufferGrowth(() => {
      bytes = encodeSnapshot(base);
      other = encodeSnapshot({ ...base, memory: [declared(0, 0n, 4 * GiB, new Map([[7, 2]])), b] });
      const summary = inspectSnapshot(bytes);
      assert.deepEqual(
        summary.memory.map((m) => [m.length, m.pages, m.zeroPages]),
        [
          [4 * GiB, 2 ** 20, 2 ** 20 - 1],
          [4 * GiB, 2 ** 20, 2 ** 20],
        ],
      );
      const d = diffSnapshots(decodeSnapshot(bytes), decodeSnapshot(other));
      assert.deepEqual(
        d.memory.map((m) => [m.slot, m.status, m.changedPages]),
        [[0, "changed", 2]],
      );
    });
    assert.ok(bytes.length < 300_000, `${bytes.length}-byte file`);
    assert.ok(grew < 64 * MiB, `${grew} bytes of ArrayBuffers for 8 GiB declared`);
  });

  it("a decoded sparse region re-encodes as stored and expands its data only when asked", () => {
    const region = declared(
      0,
      0x8000_0000n,
      64 * PAGE,
      new Map([
        [3, 9],
        [63, 4],
      ]),
    );
    const snap = decodeSnapshot(
      encodeSnapshot({
        arch: "riscv",
        backend: "soft-inline",
        flags: 0,
        meta: {},
        vcpus: [],
        memory: [region],
        devices: [],
      }),
    );
    const m = snap.memory[0];
    assert.ok(m !== undefined);
    const pages: number[] = [];
    forEachStoredPage(m, (offset, page) => {
      pages.push(offset / PAGE, page[0] ?? -1);
    });
    assert.deepEqual(pages, [3, 9, 63, 4]);
    assert.equal(m.data.length, 64 * PAGE);
    assert.equal(m.data[3 * PAGE], 9);
    assert.equal(m.data[2 * PAGE], 0);
  });

  it("restore writes only the stored pages: RAM equal, resident memory far below the RAM", async () => {
    const ram = 512 * MiB;
    const snap = await demoSnapshot(ram);
    for (const m of snap.memory) {
      // Restore must not build the zero pages: reading `data` fails the test.
      Object.defineProperty(m, "data", {
        get: () => assert.fail("restore expanded a sparse region"),
      });
    }
    const rss = process.memoryUsage().rss;
    let stored = 0;
    await restoreDemo(snap, {
      beforeRun: (machine) => {
        const grew = process.memoryUsage().rss - rss;
        assert.ok(
          grew < 128 * MiB,
          `restoring ${ram} bytes of mostly zero RAM grew RSS by ${grew}`,
        );
        const live = machine.parts.vm.memory[0];
        assert.ok(live !== undefined);
        const source = snap.memory[0];
        assert.ok(source !== undefined);
        forEachStoredPage(source, (offset, page) => {
          stored++;
          assert.deepEqual(live.view(offset, page.length), page, `page ${offset / PAGE}`);
        });
      },
    });
    assert.ok(stored > 0 && stored < 64, `${stored} pages stored`);
  });

  it("restore refuses declared RAM the machine does not have, before allocating", async () => {
    const snap = await demoSnapshot(16 * MiB);
    const huge = { ...snap, memory: [declared(0, 0x8000_0000n, 4 * GiB, new Map())] };
    await assert.rejects(
      () => restoreDemo(decodeSnapshot(encodeSnapshot(huge))),
      (e: unknown) =>
        e instanceof SnapshotFormatError &&
        e.message.includes('"ram"') &&
        e.message.includes("4294967296"),
    );
  });
});
