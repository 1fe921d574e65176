/**
 * Precise translation invalidation (issue 13 point 2; privileged spec "Supervisor
 * Memory-Management Fence Instruction" and "Memory Privilege in sstatus Register"):
 * `sfence.vma addr` drops the translations of that address's leaf (4 KiB page or superpage) in
 * the TLBs and in every virtual-pc look-up, and nothing else (an unfenced stale translation may
 * legally stay, a fenced one never); clearing SUM and changing mode drop exactly the entries the
 * new state forbids. The host rewrites PTEs in RAM between programs, as another vCPU would.
 * On the reference interpreter the page walks are counted (`Hart.stats.walks`) to show the other
 * translations stayed cached.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { I, R, li, place } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import type { Hart } from "../../../src/backends/soft/riscv/hart.js";
import { eager, ENGINE_TIERS } from "./tiers.js";

/** Layout (offsets into RAM): programs, the trap handler, page tables, data pages. */
const PROG = 0x1000;
const HANDLER = 0x800;
const ROOT = 0x10000;
const L1 = 0x11000;
const L0 = 0x12000;
const PAGE = { A: 0x20000, B: 0x21000, C: 0x22000, D: 0x23000, U: 0x24000, UCODE: 0x25000 };
const FN_A = 0x26000;
const FN_B = 0x27000;
const BIG_A = 0x200000;
const BIG_B = 0x400000;
/** Virtual addresses: 4 KiB pages under L0, a 2 MiB superpage at L1 index 1. */
const VA0 = 0x4000_0000n;
const VA1 = 0x4000_1000n;
const VA_U = 0x4000_2000n;
const VA_UCODE = 0x4000_3000n;
const VA_FN = 0x4000_4000n;
const VA_BIG = 0x4020_0000n;
/** A 2 MiB code superpage at L1 index 2 and the two RAM ranges it is mapped to in turn. */
const VA_SUPER = 0x4040_0000n;
const SUPER_CODE = { A: 0x600000, B: 0x400000 };
/** PTE flags (privileged spec "Sv39"): V R W X U A D. */
const KERNEL_RWX = 0xcfn;
const KERNEL_RW = 0xc7n;
const KERNEL_RX = 0xcbn;
const USER_RW = 0xd7n;
const USER_RX = 0xdbn;
const NEXT = 0x1n;
const SUM = 1n << 18n;

const pte = (offset: number, flags: bigint): bigint =>
  (((BigInt(BASE) + BigInt(offset)) >> 12n) << 10n) | flags;
/** sfence.vma rs1, rs2. */
const sfence = (rs1: number, rs2: number): number =>
  ((0x09 << 25) | (rs2 << 20) | (rs1 << 15) | 0x73) >>> 0;
/** The u64 each data page holds at `off`: its own offset, tagged. */
const marker = (page: number): bigint => 0x5eed_0000_0000n + BigInt(page);

interface Guest {
  readonly hart: Hart;
  readonly view: DataView;
  readonly ram: Uint8Array;
  /** Places `words` as the next program (a page of its own) and runs it to an S-mode ecall. */
  run(words: readonly number[], regs?: Record<number, bigint>): void;
  setPte(table: number, index: number, value: bigint): void;
  walks(): number;
}

function guest(options: (typeof ENGINE_TIERS)[number]["options"]): Guest {
  const { hart, view, ram } = hartWith([], { ...options, ramSize: 8 << 20 });
  const setPte = (table: number, index: number, value: bigint): void => {
    view.setBigUint64(table + 8 * index, value, true);
  };
  setPte(ROOT, 2, pte(0, KERNEL_RWX)); // identity gigapage over RAM (code, handler)
  setPte(ROOT, 1, pte(L1, NEXT));
  setPte(L1, 0, pte(L0, NEXT));
  setPte(L1, 1, pte(BIG_A, KERNEL_RW));
  setPte(L0, 0, pte(PAGE.A, KERNEL_RW));
  setPte(L0, 1, pte(PAGE.B, KERNEL_RW));
  setPte(L0, 2, pte(PAGE.U, USER_RW));
  setPte(L0, 3, pte(PAGE.UCODE, USER_RX));
  setPte(L0, 4, pte(FN_A, KERNEL_RX));
  for (const p of [...Object.values(PAGE), BIG_A + 0x7000, BIG_A + 0x9000]) {
    view.setBigUint64(p, marker(p), true);
  }
  for (const p of [BIG_B + 0x7000, BIG_B + 0x9000]) view.setBigUint64(p, marker(p), true);
  // U code: load through a1, then ecall (from U: a trap to the handler).
  place(ram, PAGE.UCODE, [I.ld(R.s2, R.a1, 0), I.ecall()]);
  // Two versions of a function at VA_FN: `li a0, 1; ret` and `li a0, 2; ret`.
  place(ram, FN_A, [I.addi(R.a0, R.zero, 1), I.jalr(0, R.ra, 0)]);
  place(ram, FN_B, [I.addi(R.a0, R.zero, 2), I.jalr(0, R.ra, 0)]);
  place(ram, HANDLER, [I.ecall()]);
  hart.setCsr("stvec", BigInt(BASE + HANDLER));
  hart.setCsr("satp", (8n << 60n) | (BigInt(BASE + ROOT) >> 12n));
  let next = PROG;
  const run = (words: readonly number[], regs: Record<number, bigint> = {}): void => {
    // At 0x40 into the page: no virtual-pc cache index of VA_FN (0) is taken by a program.
    place(ram, next + 0x40, words);
    hart.setPc(BigInt(BASE + next + 0x40));
    next += 0x1000;
    for (const [r, v] of Object.entries(regs)) hart.setX(Number(r), v);
    const stop = hart.run(100_000);
    assert.equal(stop.kind, "ecall");
    assert.equal(hart.getMode(), 1);
  };
  const walks = (): number => hart.stats.walks;
  return { hart, view, ram, run, setPte, walks };
}

for (const tier of ENGINE_TIERS.map(eager)) {
  const interp = tier.name === "interpreter";
  describe(`sfence.vma, SUM and mode changes on the ${tier.name} tier`, () => {
    it("sfence.vma addr drops that page's translation and keeps the others", () => {
      const g = guest(tier.options);
      const regs = { [R.a0]: VA0, [R.a1]: VA1 };
      g.run([I.ld(R.s1, R.a0, 0), I.ld(R.s2, R.a1, 0), I.ecall()], regs);
      assert.equal(g.hart.getX(R.s1), marker(PAGE.A));
      assert.equal(g.hart.getX(R.s2), marker(PAGE.B));
      g.setPte(L0, 0, pte(PAGE.C, KERNEL_RW));
      g.setPte(L0, 1, pte(PAGE.D, KERNEL_RW));
      const before = g.walks();
      g.run([sfence(R.a0, 0), I.ld(R.s1, R.a0, 0), I.ld(R.s2, R.a1, 0), I.ecall()], regs);
      assert.equal(g.hart.getX(R.s1), marker(PAGE.C), "a fenced page is never stale");
      assert.equal(g.hart.getX(R.s2), marker(PAGE.B), "the unfenced page's entry stayed");
      // Two walks: VA0 again and the new program's code page; VA1 stayed in the TLB.
      if (interp) assert.equal(g.walks() - before, 2);
      // A fence for another ASID concerns no cached translation (they are all of ASID 0).
      g.run([sfence(R.a1, R.t0), I.ld(R.s2, R.a1, 0), I.ecall()], { ...regs, [R.t0]: 7n });
      assert.equal(g.hart.getX(R.s2), marker(PAGE.B));
      // A fence for the current ASID (0) drops the address as rs2 = x0 does.
      g.run([sfence(R.a1, R.t0), I.ld(R.s2, R.a1, 0), I.ecall()], { ...regs, [R.t0]: 0n });
      assert.equal(g.hart.getX(R.s2), marker(PAGE.D));
      g.setPte(L0, 0, pte(PAGE.A, KERNEL_RW));
      g.run([sfence(0, 0), I.ld(R.s1, R.a0, 0), I.ecall()], regs);
      assert.equal(g.hart.getX(R.s1), marker(PAGE.A), "sfence.vma x0 drops everything");
    });

    it("AMOs use the TLB and see a fenced remapping", () => {
      const g = guest(tier.options);
      const regs = { [R.a0]: VA0, [R.t0]: 1n };
      const amo = [I.amoaddD(R.s1, R.a0, R.t0), I.amoaddD(R.s2, R.a0, R.t0), I.ecall()];
      const before = g.walks();
      g.run(amo, regs);
      assert.equal(g.hart.getX(R.s2), marker(PAGE.A) + 1n);
      // The code page and VA0 once: the second AMO found VA0 in the TLB.
      if (interp) assert.equal(g.walks() - before, 2);
      g.setPte(L0, 0, pte(PAGE.C, KERNEL_RW));
      g.run([sfence(R.a0, 0), ...amo], regs);
      assert.equal(g.hart.getX(R.s1), marker(PAGE.C));
      assert.equal(g.view.getBigUint64(PAGE.C, true), marker(PAGE.C) + 2n);
      assert.equal(g.view.getBigUint64(PAGE.A, true), marker(PAGE.A) + 2n);
    });

    it("sfence.vma inside a superpage drops every 4 KiB entry made from it", () => {
      const g = guest(tier.options);
      const regs = {
        [R.a1]: VA1,
        [R.a2]: VA_BIG + 0x7000n,
        [R.a3]: VA_BIG + 0x9000n,
        [R.a4]: VA_BIG + 0x10_0000n,
      };
      const loads = [I.ld(R.s1, R.a2, 0), I.ld(R.s2, R.a3, 0), I.ld(R.s3, R.a1, 0)];
      g.run([...loads, I.ecall()], regs);
      assert.equal(g.hart.getX(R.s1), marker(BIG_A + 0x7000));
      g.setPte(L1, 1, pte(BIG_B, KERNEL_RW));
      g.setPte(L0, 1, pte(PAGE.D, KERNEL_RW));
      const before = g.walks();
      g.run([sfence(R.a4, 0), ...loads, I.ecall()], regs);
      assert.equal(g.hart.getX(R.s1), marker(BIG_B + 0x7000));
      assert.equal(g.hart.getX(R.s2), marker(BIG_B + 0x9000));
      assert.equal(g.hart.getX(R.s3), marker(PAGE.B), "the unfenced page's entry stayed");
      // The two superpage pages and the new program's code page; VA1 stayed in the TLB.
      if (interp) assert.equal(g.walks() - before, 3);
    });

    it("clearing SUM makes a U page inaccessible to S-mode at once; setting it, accessible", () => {
      const g = guest(tier.options);
      const regs = { [R.t0]: SUM, [R.a5]: VA_U, [R.a0]: VA0 };
      g.run([I.ld(R.s3, R.a0, 0), I.csrrs(0, 0x100, R.t0), I.ld(R.s1, R.a5, 0), I.ecall()], regs);
      assert.equal(g.hart.getX(R.s1), marker(PAGE.U));
      g.run([I.csrrc(0, 0x100, R.t0), I.ld(R.s2, R.a5, 0), I.ecall()], regs);
      assert.equal(g.hart.getCsr("scause"), 13n, "load page fault");
      assert.equal(g.hart.getCsr("stval"), VA_U);
      assert.equal(g.hart.getPc(), BigInt(BASE + HANDLER));
      g.hart.setX(R.s1, 0n);
      g.run([I.csrrs(0, 0x100, R.t0), I.ld(R.s1, R.a5, 0), I.ecall()], regs);
      assert.equal(g.hart.getX(R.s1), marker(PAGE.U));
      // SUM toggles keep the entries of S pages (and none of U pages was left to drop twice).
      const before = g.walks();
      g.run(
        [I.csrrc(0, 0x100, R.t0), I.csrrs(0, 0x100, R.t0), I.ld(R.s3, R.a0, 0), I.ecall()],
        regs,
      );
      // Only the new program's code page: VA0's entry survived both toggles.
      if (interp) assert.equal(g.walks() - before, 1);
    });

    it("a mode change drops what the new mode may not use: S pages in U, U code in S", () => {
      const g = guest(tier.options);
      // S loads VA1 (cached), then sret to U code at VA_UCODE, which loads VA1: page fault.
      g.run([I.ld(R.s1, R.a1, 0), I.csrrw(0, 0x141, R.t1), I.sret()], {
        [R.a1]: VA1,
        [R.t1]: VA_UCODE,
      });
      assert.equal(g.hart.getCsr("scause"), 13n, "load page fault from U");
      assert.equal(g.hart.getCsr("sepc"), VA_UCODE);
      assert.equal(g.hart.getCsr("stval"), VA1);
      // Back in S: the U code page it just ran must not be executable.
      g.run([I.jalr(R.ra, R.t1, 0), I.ecall()], { [R.t1]: VA_UCODE });
      assert.equal(g.hart.getCsr("scause"), 12n, "fetch page fault");
      assert.equal(g.hart.getCsr("stval"), VA_UCODE);
    });
  });
}

/**
 * The virtual-pc look-ups: at normal hotness the function runs in the fast interpreter (decode
 * cache look-up by virtual page), compiled on first sight it runs from the block cache and, on
 * the wasm tier, from the wasm dispatch cache.
 */
for (const tier of [
  ...ENGINE_TIERS,
  ...ENGINE_TIERS.filter((t) => t.options.translate).map(eager),
]) {
  const hot = tier.options.hotThreshold === 1 ? ", compiled at once" : "";
  describe("sfence.vma and the virtual-pc look-ups", () => {
    it(`code remapped at a virtual pc runs as the new code after the fence (${tier.name}${hot})`, () => {
      const g = guest(tier.options);
      const call = [I.jalr(R.ra, R.s4, 0), I.addi(R.s5, R.a0, 0)];
      // Called often enough for every tier's caches to hold it.
      g.run(
        [...li(R.s6, 8n), ...call, I.addi(R.s6, R.s6, -1), I.bne(R.s6, R.zero, -12), I.ecall()],
        {
          [R.s4]: VA_FN,
        },
      );
      assert.equal(g.hart.getX(R.s5), 1n);
      g.setPte(L0, 4, pte(FN_B, KERNEL_RX));
      g.run([sfence(R.s4, 0), ...call, I.ecall()], { [R.s4]: VA_FN });
      assert.equal(g.hart.getX(R.s5), 2n);
    });

    it(`code in a remapped superpage runs as the new code after a fence elsewhere in it (${tier.name}${hot})`, () => {
      const g = guest(tier.options);
      // Two 2 MiB code superpages with the function 0x3000 into each; the fence names another
      // 4 KiB page of the superpage, which must still drop every look-up made through it.
      place(g.ram, SUPER_CODE.A + 0x3000, [I.addi(R.a0, R.zero, 1), I.jalr(0, R.ra, 0)]);
      place(g.ram, SUPER_CODE.B + 0x3000, [I.addi(R.a0, R.zero, 2), I.jalr(0, R.ra, 0)]);
      g.setPte(L1, 2, pte(SUPER_CODE.A, KERNEL_RX));
      const fn = VA_SUPER + 0x3000n;
      const call = [I.jalr(R.ra, R.s4, 0), I.addi(R.s5, R.a0, 0)];
      g.run(
        [...li(R.s6, 8n), ...call, I.addi(R.s6, R.s6, -1), I.bne(R.s6, R.zero, -12), I.ecall()],
        { [R.s4]: fn },
      );
      assert.equal(g.hart.getX(R.s5), 1n);
      g.setPte(L1, 2, pte(SUPER_CODE.B, KERNEL_RX));
      g.run([sfence(R.s3, 0), ...call, I.ecall()], { [R.s4]: fn, [R.s3]: VA_SUPER + 0x5000n });
      assert.equal(g.hart.getX(R.s5), 2n);
    });

    // The engine skips a fence whose leaf no code look-up went through (code-leaves.ts): a leaf
    // it forgot at one fence must be noted again when its code is looked up again, and a new
    // map generation (sfence.vma x0) must not hide the look-ups made under it.
    it(`code remapped twice, with fences of data pages between, runs as the newest code (${tier.name}${hot})`, () => {
      const g = guest(tier.options);
      const call = [I.jalr(R.ra, R.s4, 0), I.addi(R.s5, R.a0, 0)];
      const loop = [
        ...li(R.s6, 8n),
        ...call,
        I.addi(R.s6, R.s6, -1),
        I.bne(R.s6, R.zero, -12),
        I.ecall(),
      ];
      const regs = { [R.s4]: VA_FN, [R.s3]: VA0 };
      g.run(loop, regs);
      assert.equal(g.hart.getX(R.s5), 1n);
      g.setPte(L0, 4, pte(FN_B, KERNEL_RX));
      g.run([sfence(R.s3, 0), sfence(R.s4, 0), ...loop], regs);
      assert.equal(g.hart.getX(R.s5), 2n, "after the first fence of the code page");
      g.setPte(L0, 4, pte(FN_A, KERNEL_RX));
      g.run([sfence(R.s3, 0), sfence(R.s4, 0), ...loop], regs);
      assert.equal(g.hart.getX(R.s5), 1n, "after the second fence of the code page");
      g.run([sfence(0, 0), ...loop], regs);
      g.setPte(L0, 4, pte(FN_B, KERNEL_RX));
      g.run([sfence(R.s3, 0), sfence(R.s4, 0), ...loop], regs);
      assert.equal(g.hart.getX(R.s5), 2n, "after a fence under a new map generation");
    });
  });
}
