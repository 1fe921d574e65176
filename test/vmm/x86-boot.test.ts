import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { checkRegions, writeImage, type GuestRam } from "../../src/vmm/guest-memory.js";
import { ImageError, loadFlat } from "../../src/vmm/image.js";
import { loadElf } from "../../src/vmm/elf.js";
import {
  X86_BOOT_LAYOUT,
  X86_SELECTORS,
  defaultX86Mode,
  mappedGib,
  x86BootState,
  type X86BootState,
} from "../../src/vmm/x86-boot.js";
import {
  buildIdentityPageTables,
  decodeDescriptor,
  encodeDescriptor,
  type KvmSegment,
} from "../../src/vmm/x86-tables.js";
import { EM_TEST, buildElf, pattern } from "./elf-builder.js";

const MiB = 1n << 20n;
const GiB = 1n << 30n;
const ram: GuestRam = { base: 0n, size: 16n * MiB };

/** Guest RAM after writing the boot blobs (and a tiny image at 1 MiB). */
function memoryWith(state: X86BootState, size = ram.size): Uint8Array {
  const memory = new Uint8Array(Number(size));
  writeImage({ base: 0n, size }, memory, loadFlat(pattern(16), MiB), { blobs: state.blobs });
  return memory;
}

/**
 * A 4-level walk as the CPU does it (SDM Vol. 3A §4.5): PML4E, PDPTE, then either a 2 MiB
 * PDE (PS=1) or a PTE. Returns the physical address, or undefined when a level is not present.
 */
function walk(memory: Uint8Array, cr3: bigint, va: bigint): bigint | undefined {
  const view = new DataView(memory.buffer);
  const entry = (table: bigint, index: bigint): bigint =>
    view.getBigUint64(Number((table & ~0xfffn) + index * 8n), true);
  const addrMask = 0x000f_ffff_ffff_f000n;
  const pml4e = entry(cr3, (va >> 39n) & 511n);
  if ((pml4e & 1n) === 0n) return undefined;
  const pdpte = entry(pml4e & addrMask, (va >> 30n) & 511n);
  if ((pdpte & 1n) === 0n) return undefined;
  assert.equal(pdpte & 0x80n, 0n, "no 1 GiB pages");
  const pde = entry(pdpte & addrMask, (va >> 21n) & 511n);
  if ((pde & 1n) === 0n) return undefined;
  assert.equal(pde & 0x80n, 0x80n, "2 MiB pages");
  assert.equal(pde & 2n, 2n, "writable");
  return (pde & 0x000f_ffff_ffe0_0000n) | (va & 0x1f_ffffn);
}

/** A segment's fields as a descriptor holds them (no selector, no KVM "unusable" flag). */
function cached(seg: KvmSegment): Omit<KvmSegment, "selector" | "unusable"> {
  const { base, limit, type, present, dpl, db, s, l, g, avl } = seg;
  return { base, limit, type, present, dpl, db, s, l, g, avl };
}

/** The GDT descriptor a selector names, decoded. */
function gdtEntry(memory: Uint8Array, state: X86BootState, selector: number): KvmSegment {
  const at = Number(state.sregs.gdt.base) + (selector & ~7);
  assert.ok((selector & ~7) + 7 <= state.sregs.gdt.limit, "selector inside the GDT limit");
  return decodeDescriptor(new DataView(memory.buffer).getBigUint64(at, true));
}

describe("x86 long mode", () => {
  const state = x86BootState({ mode: "long", entry: MiB, ram });
  const memory = memoryWith(state);

  it("turns on paging, PAE and long mode with cr3 at the PML4", () => {
    const { sregs, regs } = state;
    assert.equal(sregs.cr0 & 0x8000_0001n, 0x8000_0001n, "PG|PE");
    assert.equal(sregs.cr4 & 0x20n, 0x20n, "PAE");
    assert.equal(sregs.efer & 0x500n, 0x500n, "LME|LMA");
    assert.equal(sregs.cr3, X86_BOOT_LAYOUT.pageTables);
    assert.equal(regs.rip, MiB);
    assert.equal(regs.rflags, 2n);
    assert.equal(regs.rsp, ram.size);
  });

  it("identity-maps sample addresses across the first 4 GiB", () => {
    const samples = [
      0n,
      0x1000n,
      0x1f_ffffn,
      0x20_0000n,
      MiB,
      ram.size - 1n,
      GiB + 0x1234n,
      0xfee0_0000n,
      4n * GiB - 1n,
    ];
    for (const va of samples)
      assert.equal(walk(memory, state.sregs.cr3, va), va, `va ${va.toString(16)}`);
    assert.equal(walk(memory, state.sregs.cr3, 4n * GiB), undefined, "nothing past the map");
  });

  it("identity-maps random addresses (property)", () => {
    fc.assert(
      fc.property(
        fc.bigInt({ min: 0n, max: 4n * GiB - 1n }),
        (va) => walk(memory, state.sregs.cr3, va) === va,
      ),
      { numRuns: 2000 },
    );
  });

  it("maps all of a RAM larger than 4 GiB", () => {
    const big = { base: 0n, size: 6n * GiB };
    assert.equal(mappedGib(big.size), 6n);
    const s = x86BootState({ mode: "long", entry: 5n * GiB, ram: big });
    const tables = s.blobs.find((b) => b.label === "x86 page tables");
    assert.ok(tables !== undefined);
    assert.equal(tables.bytes.length, (2 + 6) * 4096);
    const memory = new Uint8Array(0x1000 + tables.bytes.length);
    memory.set(tables.bytes, Number(tables.addr));
    assert.equal(walk(memory, s.sregs.cr3, 6n * GiB - 8n), 6n * GiB - 8n);
    assert.equal(s.regs.rsp, 6n * GiB);
  });

  it("loads segment registers that match their GDT descriptors", () => {
    const { sregs } = state;
    assert.equal(sregs.cs.selector, X86_SELECTORS.code);
    assert.equal(sregs.cs.l, 1);
    assert.equal(sregs.cs.db, 0);
    for (const [name, seg] of Object.entries({
      cs: sregs.cs,
      ds: sregs.ds,
      ss: sregs.ss,
      tr: sregs.tr,
    })) {
      assert.deepEqual(cached(gdtEntry(memory, state, seg.selector)), cached(seg), name);
    }
    assert.equal(sregs.tr.s, 0);
    assert.equal(sregs.tr.type, 0xb, "busy 64-bit TSS");
    assert.equal(sregs.tr.base, X86_BOOT_LAYOUT.tss);
    assert.equal(sregs.ldt.unusable, 1);
    assert.equal(sregs.gdt.base, X86_BOOT_LAYOUT.gdt);
    assert.equal(sregs.gdt.limit, 5 * 8 - 1, "null, code, data and a 16-byte TSS descriptor");
  });

  it("reserves its blobs, which fit RAM and overlap neither each other nor a 1 MiB kernel", () => {
    checkRegions(ram, [...state.reserved, { label: "kernel", start: MiB, size: 8n * MiB }]);
    assert.deepEqual(
      state.reserved.map((r) => [r.label, r.start, r.size]),
      [
        ["x86 GDT", 0x500n, 40n],
        ["x86 TSS", 0x580n, 0x68n],
        ["x86 page tables", 0x1000n, 0x6000n],
      ],
    );
  });

  it("an image over the page tables is refused before anything is written", () => {
    const memory = new Uint8Array(Number(ram.size));
    assert.throws(
      () => {
        writeImage(ram, memory, loadFlat(pattern(64), 0x2000n), { blobs: state.blobs });
      },
      (e: unknown) =>
        e instanceof ImageError &&
        e.code === "IMAGE_OVERLAP" &&
        e.message.includes("x86 page tables"),
    );
    assert.ok(memory.every((b) => b === 0));
  });
});

describe("x86 protected mode", () => {
  const state = x86BootState({ mode: "protected", entry: MiB, ram });
  const memory = memoryWith(state);

  it("uses flat 32-bit segments, PE without paging, and no page tables", () => {
    const { sregs } = state;
    assert.equal(sregs.cr0 & 0x8000_0001n, 1n);
    assert.equal(sregs.efer, 0n);
    assert.equal(sregs.cs.db, 1);
    assert.equal(sregs.cs.l, 0);
    assert.equal(sregs.cs.limit, 0xffff_ffff);
    assert.equal(sregs.ds.base, 0n);
    assert.ok(!state.blobs.some((b) => b.label === "x86 page tables"));
    for (const seg of [sregs.cs, sregs.ds, sregs.tr]) {
      assert.deepEqual(cached(gdtEntry(memory, state, seg.selector)), cached(seg));
    }
    assert.equal(sregs.gdt.limit, 4 * 8 - 1);
  });

  it("refuses an entry at or above 4 GiB", () => {
    assert.throws(
      () =>
        x86BootState({ mode: "protected", entry: 1n << 32n, ram: { base: 0n, size: 8n * GiB } }),
      ImageError,
    );
    const s = x86BootState({ mode: "protected", entry: MiB, ram: { base: 0n, size: 8n * GiB } });
    assert.equal(s.regs.rsp, 0xffff_fff0n, "stack below 4 GiB");
  });
});

describe("x86 real mode", () => {
  it("splits the entry into CS:IP with a 64 KiB-aligned CS and writes nothing", () => {
    for (const [entry, cs, ip] of [
      [0x7c00n, 0, 0x7c00n],
      [0x1_0000n, 0x1000, 0n],
      [0xf_fff0n, 0xf000, 0xfff0n],
    ] as const) {
      const s = x86BootState({ mode: "real", entry, ram });
      assert.equal(s.sregs.cs.selector, cs);
      assert.equal(s.sregs.cs.base, BigInt(cs) * 16n);
      assert.equal(s.regs.rip, ip);
      assert.equal(s.sregs.cs.base + s.regs.rip, entry);
      assert.equal(s.sregs.cs.limit, 0xffff);
      assert.equal(s.sregs.cr0 & 1n, 0n);
      assert.deepEqual(s.blobs, []);
      assert.deepEqual(s.reserved, []);
    }
  });

  it("refuses an entry above the first MiB", () => {
    assert.throws(
      () => x86BootState({ mode: "real", entry: 0x10_0000n, ram }),
      /real mode reaches only the first MiB/,
    );
  });
});

describe("x86 boot helpers", () => {
  it("defaultX86Mode(): long for ELF64, protected for ELF32, real for flat", () => {
    const seg = [{ paddr: MiB, data: pattern(8) }];
    assert.equal(
      defaultX86Mode(
        loadElf(buildElf({ bits: 64, machine: EM_TEST.X86_64, entry: MiB, segments: seg })),
      ),
      "long",
    );
    assert.equal(
      defaultX86Mode(
        loadElf(buildElf({ bits: 32, machine: EM_TEST.I386, entry: MiB, segments: seg })),
      ),
      "protected",
    );
    assert.equal(defaultX86Mode(loadFlat(pattern(8), 0x7c00n)), "real");
  });

  it("descriptor encode/decode round-trips (property)", () => {
    const segment = fc.record({
      base: fc.bigInt({ min: 0n, max: 0xffff_ffffn }),
      limit: fc.nat({ max: 0xf_ffff }),
      selector: fc.constant(0),
      type: fc.nat({ max: 15 }),
      present: fc.nat({ max: 1 }),
      dpl: fc.nat({ max: 3 }),
      db: fc.nat({ max: 1 }),
      s: fc.nat({ max: 1 }),
      l: fc.nat({ max: 1 }),
      g: fc.constant(0),
      avl: fc.nat({ max: 1 }),
      unusable: fc.constant(0),
    });
    fc.assert(
      fc.property(segment, (seg) => {
        assert.deepEqual({ ...decodeDescriptor(encodeDescriptor(seg)) }, { ...seg });
      }),
    );
    assert.equal(
      encodeDescriptor({ ...decodeDescriptor(0x00af_9b00_0000_ffffn) }),
      0x00af_9b00_0000_ffffn,
      "the classic 64-bit code descriptor",
    );
  });

  it("buildIdentityPageTables() refuses a bad size or alignment", () => {
    assert.throws(() => buildIdentityPageTables(0x1000n, 0), RangeError);
    assert.throws(() => buildIdentityPageTables(0x1000n, 513), RangeError);
    assert.throws(() => buildIdentityPageTables(0x1010n, 1), RangeError);
  });
});
