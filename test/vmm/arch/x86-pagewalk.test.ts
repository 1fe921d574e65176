import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { X86_PSEUDO, pseudoValueFromStruct } from "../../../src/abi/arch/x86/pseudo.js";
import { encodeKvmSregs, zeroKvmSregs } from "../../../src/abi/kvm/x86-structs.js";
import type { RegId } from "../../../src/abi/regid.js";
import {
  translateVirtual,
  translateX86,
  x86Paging,
  type X86Paging,
} from "../../../src/vmm/arch/x86/pagewalk.js";
import { x86BootState } from "../../../src/vmm/x86-boot.js";

const SIZE = 0x40_0000; // 4 MiB of guest RAM at 0

/** Guest RAM at physical 0 with helpers to build page tables in it. */
function ram() {
  const bytes = new Uint8Array(SIZE);
  const view = new DataView(bytes.buffer);
  const read = (pa: bigint) =>
    pa < 0n || pa + 8n > BigInt(SIZE) ? undefined : view.getBigUint64(Number(pa), true);
  const e64 = (table: bigint, index: number, value: bigint) => {
    view.setBigUint64(Number(table) + index * 8, value, true);
  };
  const e32 = (table: bigint, index: number, value: number) => {
    view.setUint32(Number(table) + index * 4, value, true);
  };
  return { bytes, read, e64, e32 };
}

const P = 1n;
const RW = 2n;
const PS = 0x80n;
const PG = 1n << 31n;
const PE = 1n;
const PAE = 1n << 5n;
const PSE = 1n << 4n;
const LA57 = 1n << 12n;
const LMA = (1n << 10n) | (1n << 8n);
const longMode = (cr3: bigint, cr4 = PAE): X86Paging => ({ cr0: PG | PE, cr3, cr4, efer: LMA });

describe("translateX86()", () => {
  it("paging off: linear = physical, below 4 GiB outside long mode", () => {
    const off: X86Paging = { cr0: PE, cr3: 0n, cr4: 0n, efer: 0n };
    assert.equal(
      translateX86(off, 0x12345n, () => undefined),
      0x12345n,
    );
    assert.equal(
      translateX86(off, 1n << 32n, () => undefined),
      undefined,
    );
    assert.equal(
      translateX86({ ...off, cr0: 0n }, 0xffff0n, () => undefined),
      0xffff0n,
    );
  });

  it("4-level: 4 KiB pages, 2 MiB and 1 GiB pages, the kernel's negative half", () => {
    const m = ram();
    const [pml4, pdpt, pd, pt] = [0x1000n, 0x2000n, 0x3000n, 0x4000n];
    // 0x0000_0040_0060_1abc: PML4[0] → PDPT[1] → PD[3] → PT[1] → frame 0x20_0000.
    m.e64(pml4, 0, pdpt | P | RW);
    m.e64(pdpt, 1, pd | P);
    m.e64(pd, 3, pt | P);
    m.e64(pt, 1, 0x20_0000n | P);
    const p = longMode(pml4 | 0x18n); // PWT/PCD bits in CR3 are not address bits
    assert.equal(translateX86(p, 0x4060_1abcn, m.read), 0x20_0abcn);
    // A 2 MiB page at PD[4] (frame 0x20_0000) and a 1 GiB page at PDPT[2].
    m.e64(pd, 4, 0x20_0000n | P | PS);
    assert.equal(translateX86(p, 0x4081_2345n, m.read), 0x21_2345n);
    m.e64(pdpt, 2, 0x4000_0000n | P | PS);
    assert.equal(translateX86(p, 0x8123_4567n, m.read), 0x4123_4567n);
    // PML4[511] for 0xffff_ff80_0000_0000.. (Linux's top 512 GiB), a 1 GiB page.
    m.e64(pml4, 511, 0x5000n | P);
    m.e64(0x5000n, 510, 0x0n | P | PS);
    assert.equal(translateX86(p, 0xffff_ffff_8012_3456n, m.read), 0x12_3456n);
  });

  it("4-level: not present, non-canonical, tables outside RAM are unmapped", () => {
    const m = ram();
    const p = longMode(0x1000n);
    assert.equal(translateX86(p, 0x1000n, m.read), undefined, "PML4E not present");
    m.e64(0x1000n, 0, 0x2000n | P);
    m.e64(0x2000n, 0, 0x3000n | P);
    m.e64(0x3000n, 0, 0x4000n | P);
    assert.equal(translateX86(p, 0x1000n, m.read), undefined, "PTE not present");
    m.e64(0x4000n, 1, 0x7000n | P);
    assert.equal(translateX86(p, 0x1008n, m.read), 0x7008n);
    assert.equal(translateX86(p, 0x8000_0000_0000n, m.read), undefined, "non-canonical");
    assert.equal(translateX86(p, -1n, m.read), undefined);
    assert.equal(translateX86(p, 1n << 64n, m.read), undefined);
    m.e64(0x1000n, 1, 0x1_0000_0000n | P); // a PDPT beyond RAM
    assert.equal(translateX86(p, 0x80_0000_0000n, m.read), undefined);
  });

  it("5-level (CR4.LA57): one more level and 57-bit canonical addresses", () => {
    const m = ram();
    const [pml5, pml4, pdpt] = [0x1000n, 0x2000n, 0x3000n];
    m.e64(pml5, 1, pml4 | P); // bits 56:48 = 1
    m.e64(pml4, 0, pdpt | P);
    m.e64(pdpt, 0, 0x4000_0000n | P | PS);
    const p = longMode(pml5, PAE | LA57);
    assert.equal(translateX86(p, 0x1_0000_0012_3456n, m.read), 0x4012_3456n);
    // Canonical under LA57 but not under 4-level paging:
    assert.equal(translateX86(longMode(pml5), 0x1_0000_0012_3456n, m.read), undefined);
  });

  it("PAE without long mode: 4 PDPTEs at CR3 bits 31:5, 2 MiB and 4 KiB pages", () => {
    const m = ram();
    const pdpt = 0x1020n; // 32-byte aligned, not page-aligned
    m.e64(pdpt, 2, 0x2000n | P); // va bits 31:30 = 2
    m.e64(0x2000n, 1, 0x20_0000n | P | PS);
    m.e64(0x2000n, 2, 0x3000n | P);
    m.e64(0x3000n, 5, 0x9000n | P);
    const p: X86Paging = { cr0: PG | PE, cr3: pdpt, cr4: PAE, efer: 0n };
    assert.equal(translateX86(p, 0x8020_1234n, m.read), 0x20_1234n);
    assert.equal(translateX86(p, 0x8040_5678n, m.read), 0x9678n);
    assert.equal(translateX86(p, 0x4000_0000n, m.read), undefined);
    assert.equal(translateX86(p, 1n << 32n, m.read), undefined);
  });

  it("32-bit paging: 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36 high bits)", () => {
    const m = ram();
    m.e32(0x1000n, 1, 0x2000 | 1); // va 0x0040_0000..
    m.e32(0x2000n, 3, 0x5000 | 1);
    const p: X86Paging = { cr0: PG | PE, cr3: 0x1000n, cr4: 0n, efer: 0n };
    assert.equal(translateX86(p, 0x0040_3abcn, m.read), 0x5abcn);
    // PDE[2] with PS: a 4 MiB page at 0x0080_0000 plus PSE-36 bits 39:32 = 1 (PDE bit 13).
    m.e32(0x1000n, 2, 0x0080_0000 | (1 << 13) | 0x81);
    assert.equal(translateX86({ ...p, cr4: PSE }, 0x0081_2345n, m.read), (1n << 32n) | 0x81_2345n);
    // Without CR4.PSE the PS bit is ignored: the PDE points at a page table.
    assert.equal(translateX86(p, 0x0081_2345n, m.read), undefined);
  });

  it("walks the page tables --x86-mode long builds (identity map of the first 4 GiB)", () => {
    const m = ram();
    const state = x86BootState({
      mode: "long",
      entry: 0x10_0000n,
      ram: { base: 0n, size: BigInt(SIZE) },
    });
    for (const blob of state.blobs) m.bytes.set(blob.bytes, Number(blob.addr));
    const p = { ...state.sregs };
    for (const va of [0x10_0000n, 0x12_3456n, 0xffff_f000n])
      assert.equal(translateX86(p, va, m.read), va);
    assert.equal(translateX86(p, 1n << 32n, m.read), undefined);
  });
});

describe("translateVirtual()", () => {
  it("reads CR0/CR3/CR4/EFER from the vCPU's SREGS pseudo-register", () => {
    const m = ram();
    m.e64(0x1000n, 0, 0x2000n | P);
    m.e64(0x2000n, 0, 0x4000_0000n | P | PS);
    const state = x86BootState({
      mode: "long",
      entry: 0x10_0000n,
      ram: { base: 0n, size: BigInt(SIZE) },
    });
    const sregs = zeroKvmSregs();
    Object.assign(sregs, {
      cr0: state.sregs.cr0,
      cr3: 0x1000n,
      cr4: state.sregs.cr4,
      efer: state.sregs.efer,
    });
    const value = pseudoValueFromStruct(X86_PSEUDO.SREGS, encodeKvmSregs(sregs));
    const vcpu = {
      getOneReg: (id: RegId) => {
        assert.equal(id, X86_PSEUDO.SREGS.id);
        return value;
      },
    };
    assert.deepEqual(x86Paging(vcpu), {
      cr0: state.sregs.cr0,
      cr3: 0x1000n,
      cr4: state.sregs.cr4,
      efer: state.sregs.efer,
    });
    assert.equal(translateVirtual(vcpu, 0x1234_5678n, m.read), 0x4000_0000n + 0x1234_5678n);
  });
});
