import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { translateRiscv } from "../../../src/vmm/arch/riscv/pagewalk.js";

const RAM = 0x8000_0000n;
const SIZE = 0x40_0000; // 4 MiB

/** Guest RAM with helpers to build page tables in it. */
function ram() {
  const bytes = new Uint8Array(SIZE);
  const view = new DataView(bytes.buffer);
  const read = (pa: bigint) => {
    const at = pa - RAM;
    return at < 0n || at + 8n > BigInt(SIZE) ? undefined : view.getBigUint64(Number(at), true);
  };
  const pte = (table: bigint, index: number, value: bigint) => {
    view.setBigUint64(Number(table - RAM) + index * 8, value, true);
  };
  return { read, pte };
}

const V = 1n;
const R = 2n;
const W = 4n;
const X = 8n;
const leaf = (pa: bigint, bits = V | R | W | X) => ((pa >> 12n) << 10n) | bits;
const next = (pa: bigint) => ((pa >> 12n) << 10n) | V;
const satp = (mode: bigint, root: bigint) => (mode << 60n) | (root >> 12n);

describe("translateRiscv()", () => {
  it("Bare mode is the identity", () => {
    assert.equal(
      translateRiscv(0n, 0x1234n, () => undefined),
      0x1234n,
    );
  });

  it("Sv39: 4 KiB pages, 2 MiB and 1 GiB superpages, kernel (negative) addresses", () => {
    const m = ram();
    const root = RAM + 0x1000n;
    const l1 = RAM + 0x2000n;
    const l0 = RAM + 0x3000n;
    // VA 0x0000_0000_4020_1000 → l1 → l0 → 4 KiB page at RAM+0x10000.
    m.pte(root, 1, next(l1));
    m.pte(l1, 1, next(l0));
    m.pte(l0, 1, leaf(RAM + 0x10000n));
    assert.equal(translateRiscv(satp(8n, root), 0x4020_1abcn, m.read), RAM + 0x10abcn);
    // A 2 MiB superpage at l1[2]: VA 0x4040_0000 + off.
    m.pte(l1, 2, leaf(RAM + 0x20_0000n));
    assert.equal(translateRiscv(satp(8n, root), 0x4041_2345n, m.read), RAM + 0x21_2345n);
    // A 1 GiB superpage for the kernel's negative half: root[510] = VA 0xffff_ffff_8000_0000.
    m.pte(root, 510, leaf(0x8000_0000n));
    assert.equal(translateRiscv(satp(8n, root), 0xffff_ffff_8020_0000n, m.read), 0x8020_0000n);
  });

  it("refuses invalid, write-only, misaligned and non-canonical mappings", () => {
    const m = ram();
    const root = RAM + 0x1000n;
    const s = satp(8n, root);
    assert.equal(translateRiscv(s, 0x1000n, m.read), undefined); // V clear
    m.pte(root, 0, leaf(0n, V | W));
    assert.equal(translateRiscv(s, 0x1000n, m.read), undefined); // W without R
    m.pte(root, 0, leaf(0x20_0000n)); // 1 GiB page whose PPN is not 1 GiB aligned
    assert.equal(translateRiscv(s, 0x1000n, m.read), undefined);
    m.pte(root, 0, leaf(0n));
    assert.equal(translateRiscv(s, 0x1000n, m.read), 0x1000n);
    assert.equal(translateRiscv(s, 0x0000_0040_0000_0000n, m.read), undefined); // bit 38 set, not extended
    m.pte(root, 3, next(0x10n << 12n)); // next level outside RAM
    assert.equal(translateRiscv(s, 0xc000_0000n, m.read), undefined);
    assert.equal(translateRiscv(satp(5n, root), 0n, m.read), undefined); // unknown MODE
  });

  it("Sv48 and Sv57 walk four and five levels", () => {
    const m = ram();
    const tables = [1n, 2n, 3n, 4n, 5n].map((n) => RAM + n * 0x1000n);
    const [t0, t1, t2, t3, t4] = tables as [bigint, bigint, bigint, bigint, bigint];
    m.pte(t0, 0, next(t1));
    m.pte(t1, 0, next(t2));
    m.pte(t2, 0, next(t3));
    m.pte(t3, 0, leaf(RAM + 0x8000n));
    assert.equal(translateRiscv(satp(9n, t0), 0x123n, m.read), RAM + 0x8123n);
    m.pte(t3, 0, next(t4));
    m.pte(t4, 0, leaf(RAM + 0x9000n));
    assert.equal(translateRiscv(satp(10n, t0), 0x456n, m.read), RAM + 0x9456n);
  });
});
