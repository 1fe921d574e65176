import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  RISCV_KERNEL_ADDR,
  RISCV_RAM_BASE,
  checkRegions,
  placeAtTop,
  ramBaseFor,
  writeImage,
  type GuestRam,
  type Region,
} from "../../src/vmm/guest-memory.js";
import { ImageError, loadFlat, type GuestImage, type ImageErrorCode } from "../../src/vmm/image.js";
import { loadElf } from "../../src/vmm/elf.js";
import { EM_TEST, buildElf, pattern } from "./elf-builder.js";

const MiB = 1n << 20n;
const ram: GuestRam = { base: RISCV_RAM_BASE, size: 4n * MiB };

function code(fn: () => unknown): ImageErrorCode {
  try {
    fn();
  } catch (error) {
    if (error instanceof ImageError) return error.code;
    throw error;
  }
  assert.fail("expected an ImageError");
}

function image(
  segments: { addr: bigint; data: Uint8Array; memSize?: bigint }[],
  entry?: bigint,
): GuestImage {
  return {
    format: "elf",
    arch: "riscv",
    bits: 64,
    entry: entry ?? segments[0]?.addr ?? 0n,
    segments: segments.map((s, i) => ({
      label: `ELF segment ${i}`,
      addr: s.addr,
      data: s.data,
      memSize: s.memSize ?? BigInt(s.data.length),
    })),
  };
}

/** Memory filled with garbage, so zero-fill and untouched bytes are both visible. */
const dirtyMemory = (): Uint8Array => new Uint8Array(Number(ram.size)).fill(0xaa);

describe("guest memory layout", () => {
  it("uses RAM base 0x80000000 on RISC-V (kernel at +2 MiB) and 0 on x86", () => {
    assert.equal(ramBaseFor("riscv"), 0x8000_0000n);
    assert.equal(RISCV_KERNEL_ADDR - RISCV_RAM_BASE, 2n * MiB);
    assert.equal(ramBaseFor("x86"), 0n);
  });

  it("writeImage() copies file bytes, zero-fills the bss tail and writes blobs", () => {
    const text = pattern(0x100);
    const memory = dirtyMemory();
    const blob = { label: "dtb", addr: ram.base + 3n * MiB, bytes: pattern(16, 9) };
    writeImage(ram, memory, image([{ addr: RISCV_KERNEL_ADDR, data: text, memSize: 0x300n }]), {
      blobs: [blob],
    });
    const at = Number(RISCV_KERNEL_ADDR - ram.base);
    assert.deepEqual(memory.subarray(at, at + 0x100), text);
    assert.ok(memory.subarray(at + 0x100, at + 0x300).every((b) => b === 0));
    assert.equal(memory[at + 0x300], 0xaa, "bytes after memsz are untouched");
    assert.equal(memory[at - 1], 0xaa, "bytes before the segment are untouched");
    assert.deepEqual(memory.subarray(3 * 2 ** 20, 3 * 2 ** 20 + 16), blob.bytes);
  });

  it("writeImage() places a real ELF end to end", () => {
    const elf = buildElf({
      bits: 64,
      machine: EM_TEST.RISCV,
      entry: RISCV_KERNEL_ADDR,
      segments: [{ paddr: RISCV_KERNEL_ADDR, data: pattern(64), memsz: 0x1000n }],
    });
    const memory = dirtyMemory();
    writeImage(ram, memory, loadElf(elf));
    const at = Number(RISCV_KERNEL_ADDR - ram.base);
    assert.deepEqual(memory.subarray(at, at + 64), pattern(64));
    assert.equal(memory[at + 64], 0);
  });

  const cases: [string, GuestImage, ImageErrorCode, readonly Region[]][] = [
    [
      "an image larger than RAM",
      image([{ addr: ram.base, data: pattern(16), memSize: 8n * MiB }]),
      "IMAGE_TOO_BIG",
      [],
    ],
    [
      "a segment below RAM",
      image([{ addr: ram.base - 0x10n, data: pattern(32) }]),
      "IMAGE_OUTSIDE_RAM",
      [],
    ],
    [
      "a segment straddling the end of RAM",
      image([{ addr: ram.base + ram.size - 0x10n, data: pattern(32) }]),
      "IMAGE_OUTSIDE_RAM",
      [],
    ],
    [
      "a segment at x86 address 0 in RISC-V RAM",
      image([{ addr: 0n, data: pattern(32) }]),
      "IMAGE_OUTSIDE_RAM",
      [],
    ],
    [
      "two overlapping segments",
      image([
        { addr: ram.base + 0x1000n, data: pattern(32), memSize: 0x1000n },
        { addr: ram.base + 0x1ff0n, data: pattern(32) },
      ]),
      "IMAGE_OVERLAP",
      [],
    ],
    [
      "a segment over a reserved region",
      image([{ addr: ram.base + 0x1000n, data: pattern(32) }]),
      "IMAGE_OVERLAP",
      [{ label: "x86 page tables", start: ram.base + 0x1010n, size: 0x10n }],
    ],
    [
      "an entry point outside RAM",
      image([{ addr: ram.base, data: pattern(32) }], 0x1000n),
      "IMAGE_BAD_ENTRY",
      [],
    ],
  ];
  for (const [name, img, expected, reserved] of cases) {
    it(`writeImage() refuses ${name} with ${expected} and writes nothing`, () => {
      const memory = dirtyMemory();
      // A valid first segment proves that validation precedes every write.
      const withValid: GuestImage = {
        ...img,
        segments: [
          { label: "first", addr: ram.base + 0x20_0000n, data: pattern(8), memSize: 8n },
          ...img.segments,
        ],
      };
      assert.equal(
        code(() => {
          writeImage(ram, memory, withValid, { reserved });
        }),
        expected,
      );
      assert.ok(memory.every((b) => b === 0xaa));
    });
  }

  it("error messages name both regions and the RAM range", () => {
    assert.throws(() => {
      checkRegions(ram, [
        { label: "ELF segment 1", start: ram.base, size: 0x100n },
        { label: "the device tree", start: ram.base + 0x80n, size: 0x100n },
      ]);
    }, /the device tree at 0x80000080\.\.0x80000180: it overlaps ELF segment 1 at 0x80000000\.\.0x80000100/);
    assert.throws(() => {
      checkRegions(ram, [{ label: "flat binary", start: 0n, size: 1n }]);
    }, /guest RAM is 0x80000000\.\.0x80400000/);
    assert.throws(() => {
      checkRegions(ram, [{ label: "flat binary", start: ram.base, size: 8n * MiB }]);
    }, /8 MiB does not fit in 4 MiB of guest RAM \(use --mem\)/);
  });

  it("accepts adjacent regions, empty regions and a region filling RAM exactly", () => {
    checkRegions(ram, [
      { label: "a", start: ram.base, size: 0x1000n },
      { label: "b", start: ram.base + 0x1000n, size: 0x1000n },
      { label: "empty", start: 0n, size: 0n },
    ]);
    checkRegions(ram, [{ label: "all", start: ram.base, size: ram.size }]);
    writeImage(ram, dirtyMemory(), loadFlat(pattern(16), ram.base + ram.size - 16n));
  });

  it("writeImage() refuses memory of the wrong length with RangeError", () => {
    assert.throws(() => {
      writeImage(ram, new Uint8Array(16), loadFlat(pattern(1), ram.base));
    }, RangeError);
  });

  it("placeAtTop() puts a blob at the top of RAM, aligned, below anything occupying the top", () => {
    assert.equal(placeAtTop(ram, 0x1234n, 2n * MiB, []), ram.base + 2n * MiB);
    assert.equal(placeAtTop(ram, 0x1234n, 8n, []), (ram.base + ram.size - 0x1234n) & ~7n);
    const top: Region = { label: "image", start: ram.base + 3n * MiB, size: MiB };
    assert.equal(placeAtTop(ram, 0x1234n, 0x1000n, [top]), ram.base + 3n * MiB - 0x2000n);
    const full: Region = { label: "image", start: ram.base, size: ram.size };
    assert.equal(
      code(() => placeAtTop(ram, 16n, 8n, [full])),
      "IMAGE_TOO_BIG",
    );
    assert.throws(() => placeAtTop(ram, 16n, 3n, []), RangeError);
  });

  it("validation is all-or-nothing for random layouts (property)", () => {
    const small: GuestRam = { base: RISCV_RAM_BASE, size: 0x8000n };
    const end = small.base + small.size;
    const region = fc.record({
      start: fc.bigInt({ min: small.base - 0x2000n, max: end + 0x1000n }),
      size: fc.bigInt({ min: 1n, max: 0x3000n }),
    });
    fc.assert(
      fc.property(fc.array(region, { minLength: 1, maxLength: 6 }), (regions) => {
        const memory = new Uint8Array(Number(small.size)).fill(0xaa);
        const img = image(regions.map((r) => ({ addr: r.start, data: pattern(Number(r.size)) })));
        const inside = regions.every((r) => r.start >= small.base && r.start + r.size <= end);
        const disjoint = regions.every((a, i) =>
          regions.every(
            (b, j) => i === j || a.start + a.size <= b.start || b.start + b.size <= a.start,
          ),
        );
        try {
          writeImage(small, memory, img);
          assert.ok(inside && disjoint);
          for (const r of regions) {
            const at = Number(r.start - small.base);
            assert.deepEqual(memory.subarray(at, at + Number(r.size)), pattern(Number(r.size)));
          }
        } catch (error) {
          assert.ok(error instanceof ImageError);
          assert.ok(!(inside && disjoint), error.message);
          assert.ok(memory.every((b) => b === 0xaa));
        }
      }),
      { numRuns: 500 },
    );
  });
});
