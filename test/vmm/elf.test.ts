import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { EM, MAX_PROGRAM_HEADERS, isElf, loadElf } from "../../src/vmm/elf.js";
import { ImageError, imageMemSize, loadFlat, type ImageErrorCode } from "../../src/vmm/image.js";
import { EM_TEST, PF, PT, buildElf, pattern, type ElfSpec } from "./elf-builder.js";

/** Asserts `fn` throws an ImageError with `code` and returns its message. */
function throwsImage(fn: () => unknown, code: ImageErrorCode, message?: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ImageError, `expected ImageError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message !== undefined) assert.match(error.message, message);
    return true;
  });
}

/** Only ImageError or RangeError may escape the loader, whatever the bytes. */
function loadsOrRefuses(bytes: Uint8Array): void {
  try {
    loadElf(bytes);
  } catch (error) {
    if (!(error instanceof ImageError) && !(error instanceof RangeError)) throw error;
  }
}

const text = pattern(0x40);
const rodata = pattern(0x30, 7);
const x64: ElfSpec = {
  bits: 64,
  machine: EM_TEST.X86_64,
  entry: 0x10_0000n,
  segments: [
    { paddr: 0x10_0000n, data: text, flags: PF.R | PF.X },
    { paddr: 0x20_0000n, data: rodata, memsz: 0x1000n, flags: PF.R | PF.W },
  ],
};

describe("loadElf()", () => {
  it("reads an ELF64 x86-64 file: arch, entry, PT_LOAD segments with file bytes and memsz", () => {
    const image = loadElf(buildElf(x64));
    assert.equal(image.arch, "x86");
    assert.equal(image.bits, 64);
    assert.equal(image.machine, EM.X86_64);
    assert.equal(image.entry, 0x10_0000n);
    assert.equal(image.segments.length, 2);
    const [a, b] = image.segments;
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(a.addr, 0x10_0000n);
    assert.deepEqual(a.data, text);
    assert.equal(a.memSize, 0x40n);
    assert.equal(b.addr, 0x20_0000n);
    assert.deepEqual(b.data, rodata);
    assert.equal(b.memSize, 0x1000n);
    assert.equal(imageMemSize(image), 0x1040n);
  });

  it("reads an ELF32 i386 file as 32-bit x86", () => {
    const image = loadElf(buildElf({ ...x64, bits: 32, machine: EM_TEST.I386 }));
    assert.equal(image.arch, "x86");
    assert.equal(image.bits, 32);
    const second = image.segments[1];
    assert.ok(second !== undefined);
    assert.deepEqual(second.data, rodata);
    assert.equal(second.memSize, 0x1000n);
  });

  it("reads an ELF64 RISC-V file and keeps e_flags", () => {
    const bytes = buildElf({
      ...x64,
      machine: EM_TEST.RISCV,
      entry: 0x8020_0000n,
      segments: [{ paddr: 0x8020_0000n, data: text }],
    });
    new DataView(bytes.buffer).setUint32(48, 0x5, true); // EF_RISCV_RVC | EF_RISCV_FLOAT_ABI_DOUBLE
    const image = loadElf(bytes);
    assert.equal(image.arch, "riscv");
    assert.equal(image.flags, 0x5);
    assert.equal(image.entry, 0x8020_0000n);
  });

  it("loads at p_paddr and translates the entry from p_vaddr of the executable segment", () => {
    const image = loadElf(
      buildElf({
        ...x64,
        entry: 0xffff_ffff_8100_0010n,
        segments: [
          { paddr: 0x100_0000n, vaddr: 0xffff_ffff_8100_0000n, data: text, flags: PF.R | PF.X },
        ],
      }),
    );
    assert.equal(image.segments[0]?.addr, 0x100_0000n);
    assert.equal(image.entry, 0x100_0010n);
    assert.equal(image.entryVirtual, 0xffff_ffff_8100_0010n);
  });

  it("skips non-LOAD and empty segments", () => {
    const image = loadElf(
      buildElf({
        ...x64,
        segments: [
          { type: PT.NOTE, paddr: 0n, data: pattern(8) },
          { paddr: 0x30_0000n, memsz: 0n },
          { paddr: 0x10_0000n, data: text },
        ],
      }),
    );
    assert.deepEqual(
      image.segments.map((s) => s.label),
      ["ELF segment 2"],
    );
  });

  it("refuses foreign and unsupported files with a code and a message naming the machine", () => {
    throwsImage(
      () => loadElf(buildElf({ ...x64, machine: EM_TEST.AARCH64 })),
      "IMAGE_WRONG_ARCH",
      /AArch64 \(EM 183\)/,
    );
    throwsImage(
      () => loadElf(buildElf({ ...x64, machine: 9999 })),
      "IMAGE_WRONG_ARCH",
      /unknown machine \(EM 9999\)/,
    );
    throwsImage(
      () => loadElf(buildElf({ ...x64, bits: 32, machine: EM_TEST.RISCV })),
      "IMAGE_WRONG_ARCH",
      /RV32/,
    );
    throwsImage(() => loadElf(buildElf({ ...x64, bits: 32 })), "IMAGE_BAD_HEADER", /x86-64/);
    throwsImage(
      () => loadElf(buildElf({ ...x64, bigEndian: true })),
      "IMAGE_UNSUPPORTED",
      /big-endian/,
    );
    throwsImage(() => loadElf(buildElf({ ...x64, type: 1 })), "IMAGE_UNSUPPORTED", /ET_REL/);
    throwsImage(() => loadElf(buildElf({ ...x64, type: 4 })), "IMAGE_UNSUPPORTED", /core dump/);
    throwsImage(
      () =>
        loadElf(
          buildElf({
            ...x64,
            segments: [{ type: PT.INTERP, paddr: 0n, data: pattern(4) }, ...x64.segments],
          }),
        ),
      "IMAGE_UNSUPPORTED",
      /dynamically linked/,
    );
  });

  it("refuses a file that is not ELF, and a short prefix of the magic as truncated", () => {
    throwsImage(() => loadElf(new TextEncoder().encode("#!/bin/sh\necho hi\n")), "IMAGE_BAD_MAGIC");
    throwsImage(() => loadElf(Uint8Array.of(0x7f, 0x45)), "IMAGE_TRUNCATED");
    throwsImage(() => loadElf(new Uint8Array(0)), "IMAGE_TRUNCATED");
    assert.equal(isElf(buildElf(x64)), true);
    assert.equal(isElf(Uint8Array.of(0x7f, 0x45, 0x4c)), false);
  });

  it("refuses bad header fields and absurd program header counts", () => {
    const bytes = buildElf(x64);
    const set = (at: number, v: number): Uint8Array => {
      const copy = bytes.slice();
      copy[at] = v;
      return copy;
    };
    throwsImage(() => loadElf(set(4, 3)), "IMAGE_BAD_HEADER", /class 3/);
    throwsImage(() => loadElf(set(5, 0)), "IMAGE_BAD_HEADER", /data encoding/);
    throwsImage(() => loadElf(set(6, 2)), "IMAGE_BAD_HEADER", /version/);
    throwsImage(() => loadElf(set(20, 2)), "IMAGE_BAD_HEADER", /e_version/);
    throwsImage(() => loadElf(set(52, 10)), "IMAGE_BAD_HEADER", /e_ehsize/);
    throwsImage(
      () => loadElf(buildElf({ ...x64, phentsize: 64 })),
      "IMAGE_BAD_HEADER",
      /e_phentsize/,
    );
    throwsImage(() => loadElf(buildElf({ ...x64, phnum: 0xffff })), "IMAGE_BAD_HEADER", /e_phnum/);
    throwsImage(
      () => loadElf(buildElf({ ...x64, phnum: MAX_PROGRAM_HEADERS + 1 })),
      "IMAGE_BAD_HEADER",
    );
    throwsImage(() => loadElf(buildElf({ ...x64, phnum: 0 })), "IMAGE_EMPTY");
    throwsImage(
      () => loadElf(buildElf({ ...x64, phnum: 40 })),
      "IMAGE_TRUNCATED",
      /program header table/,
    );
    throwsImage(() => loadElf(buildElf({ ...x64, phoff: 1n << 62n })), "IMAGE_TRUNCATED");
    throwsImage(() => loadElf(buildElf({ ...x64, phoff: (1n << 64n) - 8n })), "IMAGE_TRUNCATED");
    throwsImage(
      () => loadElf(buildElf({ ...x64, segments: [{ type: PT.NOTE, paddr: 0n }] })),
      "IMAGE_EMPTY",
    );
  });

  it("refuses inconsistent segments: filesz > memsz, data outside the file, address overflow", () => {
    const one = (seg: ElfSpec["segments"][number], bits: 32 | 64 = 64): Uint8Array =>
      buildElf({
        ...x64,
        bits,
        machine: bits === 64 ? EM_TEST.X86_64 : EM_TEST.I386,
        segments: [seg],
      });
    throwsImage(
      () => loadElf(one({ paddr: 0x1000n, data: text, memsz: 0x10n })),
      "IMAGE_BAD_SEGMENT",
      /p_filesz/,
    );
    throwsImage(
      () => loadElf(one({ paddr: 0x1000n, data: text, offset: 0x10_0000n })),
      "IMAGE_TRUNCATED",
      /segment 0/,
    );
    throwsImage(
      () => loadElf(one({ paddr: 0x1000n, data: text, filesz: 0x41n, memsz: 0x100n })),
      "IMAGE_TRUNCATED",
    );
    throwsImage(
      () => loadElf(one({ paddr: 0x1000n, data: text, offset: (1n << 64n) - 0x10n })),
      "IMAGE_TRUNCATED",
    );
    throwsImage(
      () => loadElf(one({ paddr: (1n << 64n) - 0x10n, data: text })),
      "IMAGE_BAD_SEGMENT",
      /64-bit address space/,
    );
    throwsImage(
      () => loadElf(one({ paddr: 0xffff_fff0n, data: text }, 32)),
      "IMAGE_BAD_SEGMENT",
      /32-bit address space/,
    );
    throwsImage(
      () => loadElf(one({ paddr: 0x1000n, vaddr: (1n << 64n) - 0x10n, data: text })),
      "IMAGE_BAD_SEGMENT",
    );
  });

  for (const bits of [32, 64] as const) {
    it(`ELF${bits}: truncation at every offset throws IMAGE_TRUNCATED, never anything else`, () => {
      const bytes = buildElf({
        ...x64,
        bits,
        machine: bits === 64 ? EM_TEST.X86_64 : EM_TEST.I386,
      });
      for (let n = 0; n < bytes.length; n++) {
        throwsImage(() => loadElf(bytes.subarray(0, n)), "IMAGE_TRUNCATED");
      }
      assert.equal(loadElf(bytes).segments.length, 2);
    });

    it(`ELF${bits}: every single-byte change in the headers loads or throws ImageError`, () => {
      const bytes = buildElf({
        ...x64,
        bits,
        machine: bits === 64 ? EM_TEST.X86_64 : EM_TEST.I386,
      });
      const headers = bits === 64 ? 64 + 2 * 56 : 52 + 2 * 32;
      for (let at = 0; at < headers; at++) {
        for (const v of [0x00, 0x01, 0x02, 0x7f, 0x80, 0xff]) {
          const copy = bytes.slice();
          copy[at] = v;
          loadsOrRefuses(copy);
        }
      }
    });
  }

  it("random patches of a valid file load or throw ImageError (property)", () => {
    const base = buildElf(x64);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: base.length - 1 }), fc.integer({ min: 0, max: 255 })), {
          maxLength: 8,
        }),
        fc.nat({ max: base.length }),
        (patches, cut) => {
          const copy = base.slice(0, cut);
          for (const [at, v] of patches) if (at < copy.length) copy[at] = v;
          loadsOrRefuses(copy);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("keeps working after refusing a file and does not copy segment bytes", () => {
    throwsImage(() => loadElf(Uint8Array.of(1, 2, 3, 4)), "IMAGE_BAD_MAGIC");
    const bytes = buildElf(x64);
    const image = loadElf(bytes);
    const data = image.segments[0]?.data;
    assert.ok(data instanceof Uint8Array);
    assert.equal(data.buffer, bytes.buffer);
  });
});

describe("loadFlat()", () => {
  it("makes one segment at the load address, entry defaulting to it", () => {
    const image = loadFlat(text, 0x7c00n);
    assert.equal(image.format, "flat");
    assert.equal(image.arch, undefined);
    assert.equal(image.entry, 0x7c00n);
    assert.deepEqual(image.segments, [
      { label: "flat binary", addr: 0x7c00n, data: text, memSize: 0x40n },
    ]);
    assert.equal(loadFlat(text, 0x1000n, 0x1010n).entry, 0x1010n);
  });

  it("refuses an empty file, an end past 2^64 (ImageError) and negative addresses (RangeError)", () => {
    throwsImage(() => loadFlat(new Uint8Array(0), 0n), "IMAGE_EMPTY");
    throwsImage(() => loadFlat(text, (1n << 64n) - 0x20n), "IMAGE_BAD_SEGMENT");
    assert.throws(() => loadFlat(text, -1n), RangeError);
    assert.throws(() => loadFlat(text, 0n, 1n << 64n), RangeError);
  });

  it("ImageError has a stable code and a JSON form", () => {
    const error = new ImageError("IMAGE_OVERLAP", "x");
    assert.deepEqual(error.toJSON(), { name: "ImageError", code: "IMAGE_OVERLAP", message: "x" });
  });
});
