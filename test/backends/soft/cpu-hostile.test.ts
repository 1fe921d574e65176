/**
 * Hostile guests (issue 4 item 6): illegal instructions, wild and misaligned accesses, trap
 * storms, self-modifying code and runaway loops must never throw, hang or corrupt the host:
 * run() always comes back with a stop value within its budget.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { I, R, li } from "./asm.js";
import { RAM_BASE as BASE, hartWith } from "./harness.js";
import type { HartStop } from "../../../src/backends/soft/riscv/contract.js";
import { Hart } from "../../../src/backends/soft/riscv/hart.js";
import { MAX_BLOCKS } from "../../../src/backends/soft/riscv/engine.js";

const CSR = { stvec: 0x105, satp: 0x180 } as const;
/** Offset of an `ecall` used as trap handler: S-mode ecall stops run(), ending the test. */
const STOP = 0x800;
const MODES = [
  { name: "interpreter", translate: false },
  { name: "translator", translate: true, hotThreshold: 1 },
] as const;

/** Runs up to `total` instructions in slices, answering ecalls by skipping them. */
function drive(hart: Hart, total: number): HartStop[] {
  const stops: HartStop[] = [];
  for (let i = 0; i < total / 1000; i++) {
    const s = hart.run(1000);
    stops.push(s);
    if (s.kind === "ecall") hart.setPc(hart.getPc() + 4n);
    else if (s.kind === "mmio") {
      if (s.isWrite) hart.completeMmioStore();
      else hart.completeMmioLoad(0n);
    } else if (s.kind === "fault") break;
  }
  return stops;
}

describe("hostile guests", () => {
  for (const mode of MODES) {
    it(`random bytes as code never escape the hart (${mode.name})`, () => {
      fc.assert(
        fc.property(
          fc.uint8Array({ minLength: 4096, maxLength: 4096 }),
          fc.boolean(),
          (bytes, paging) => {
            const { hart } = hartWith(bytes, { ...mode, ramSize: 1 << 16 });
            // stvec into the same random page; sometimes with a random satp (probably invalid).
            hart.setCsr("stvec", BigInt(BASE + 0x100));
            if (paging) hart.setCsr("satp", (8n << 60n) | BigInt((BASE >>> 12) + 3));
            const stops = drive(hart, 20_000);
            assert.ok(stops.length > 0);
          },
        ),
        { numRuns: 40 },
      );
    });

    it(`an illegal-instruction trap storm stays within the budget (${mode.name})`, () => {
      // stvec points at an illegal instruction: every trap traps again, nothing retires.
      const { hart } = hartWith([0xffffffff], mode);
      hart.setCsr("stvec", BigInt(BASE));
      const stop = hart.run(10_000);
      assert.equal(stop.kind, "budget");
      assert.equal(hart.instret, 0n);
      assert.equal(hart.getCsr("scause"), 2n);
      assert.equal(hart.getCsr("stval"), 0xffffffffn);
    });

    it(`a runaway loop stops exactly at the budget (${mode.name})`, () => {
      const { hart } = hartWith([I.addi(R.a0, R.a0, 1), I.jal(0, -4)], mode);
      for (let i = 0; i < 5; i++) assert.equal(hart.run(1001).kind, "budget");
      assert.equal(hart.instret, 5005n);
      assert.equal(hart.getX(R.a0), 2503n);
    });

    it(`accesses outside RAM become MMIO stops, fetches outside RAM a fault (${mode.name})`, () => {
      const { hart } = hartWith(
        [
          ...li(R.a1, 0x1000n),
          I.ld(R.a0, R.a1, 0),
          ...li(R.a1, 1n << 40n),
          I.sw(R.a1, R.a1, 0),
          I.jalr(0, R.zero, 0),
        ],
        mode,
      );
      let s = hart.run(100);
      assert.deepEqual(s, {
        kind: "mmio",
        gpa: 0x1000n,
        size: 8,
        isWrite: false,
        value: undefined,
      });
      hart.completeMmioLoad(0x1234n);
      assert.equal(hart.getX(R.a0), 0x1234n);
      s = hart.run(100);
      assert.ok(s.kind === "mmio");
      assert.equal(s.gpa, 1n << 40n);
      hart.completeMmioStore();
      s = hart.run(100);
      assert.equal(s.kind, "fault");
    });

    it(`physical addresses beyond 56 bits raise access faults (${mode.name})`, () => {
      const { hart, view } = hartWith([...li(R.a1, 1n << 62n), I.sw(R.a1, R.a1, 0)], mode);
      view.setUint32(STOP, I.ecall(), true);
      hart.setCsr("stvec", BigInt(BASE + STOP));
      assert.equal(hart.run(100).kind, "ecall");
      assert.equal(hart.getCsr("scause"), 7n);
      assert.equal(hart.getCsr("stval"), 1n << 62n);
    });

    it(`a jump to an address beyond 53 bits faults into the guest (${mode.name})`, () => {
      const { hart, view } = hartWith(
        [...li(R.a1, 0x8000_0000_0000_1000n), I.jalr(0, R.a1, 0)],
        mode,
      );
      view.setUint32(STOP, I.ecall(), true);
      hart.setCsr("stvec", BigInt(BASE + STOP));
      assert.equal(hart.run(100).kind, "ecall");
      assert.equal(hart.getCsr("scause"), 1n); // instruction access fault (Bare)
      assert.equal(hart.getCsr("sepc"), 0x8000_0000_0000_1000n);
      assert.equal(hart.getCsr("stval"), 0x8000_0000_0000_1000n);
    });

    it(`misaligned accesses in RAM work, misaligned atomics trap (${mode.name})`, () => {
      const { hart, view } = hartWith(
        [
          ...li(R.a1, BigInt(BASE + 0x401)),
          I.ld(R.a0, R.a1, 0),
          I.amoaddD(R.a2, R.a1, R.a0),
          I.ebreak(),
        ],
        mode,
      );
      view.setBigUint64(0x401, 0x1122334455667788n, true);
      view.setUint32(STOP, I.ecall(), true);
      hart.setCsr("stvec", BigInt(BASE + STOP));
      assert.equal(hart.run(100).kind, "ecall");
      assert.equal(hart.getX(R.a0), 0x1122334455667788n);
      assert.equal(hart.getCsr("scause"), 6n);
      assert.equal(hart.getCsr("stval"), BigInt(BASE + 0x401));
    });

    it(`self-modifying code without fence.i still runs the new code after a trap (${mode.name})`, () => {
      // The sw overwrites the "addi a0, zero, 1" right after it with "addi a0, zero, 7".
      const newInsn = I.addi(R.a0, 0, 7);
      const setup = li(R.a1, BigInt(newInsn));
      const { hart } = hartWith(
        [...setup, I.sw(R.a1, R.t0, 0), I.addi(R.a0, 0, 1), I.ecall()],
        mode,
      );
      hart.setX(R.t0, BigInt(BASE + 4 * (setup.length + 1))); // the address of that addi
      for (let round = 0; round < 3; round++) {
        hart.setPc(BigInt(BASE));
        const s = hart.run(100);
        assert.equal(s.kind, "ecall");
        assert.equal(hart.getX(R.a0), 7n);
      }
    });
  }

  it("more code than the block cache holds keeps running (whole-cache flushes)", () => {
    const code: number[] = [];
    for (let i = 0; i < MAX_BLOCKS + 2000; i++) code.push(I.addi(R.a0, R.a0, 1), I.jal(0, 4));
    code.push(I.ecall());
    const { hart } = hartWith(code, { ramSize: 1 << 20, hotThreshold: 1 });
    for (let round = 0; round < 2; round++) {
      hart.setPc(BigInt(BASE));
      hart.setX(R.a0, 0n);
      assert.equal(hart.run(1e6).kind, "ecall");
      assert.equal(hart.getX(R.a0), BigInt(MAX_BLOCKS + 2000));
    }
    assert.ok(hart.stats.flushes >= 2);
  });

  it("a memslot that is not a page multiple is bounds-checked, never overrun", () => {
    const ram = new Uint8Array(4096 + 6);
    const v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
    // At the very end: a 32-bit load that would cross the slot end, then code running off it.
    v.setUint32(4096, I.ld(R.a0, R.a1, 0), true);
    v.setUint16(4100, 0x0001, true); // c.nop, then the slot ends
    for (const translate of [false, true]) {
      const hart = new Hart({ translate, hotThreshold: 1 });
      hart.setMemslots([{ slot: 0, gpa: BASE, bytes: ram, readonly: false }]);
      hart.setX(R.a1, BigInt(BASE + 4096)); // 8 bytes from here overrun the slot by 2
      hart.setPc(BigInt(BASE + 4096));
      const s = hart.run(10);
      assert.equal(s.kind, "mmio"); // the load's bytes are not all in the slot
      hart.completeMmioLoad(1n);
      assert.equal(hart.run(10).kind, "fault"); // runs off the end of RAM
    }
  });

  it("satp writes of unsupported modes are ignored", () => {
    const { hart } = hartWith([...li(R.a1, 9n << 60n), I.csrrw(0, CSR.satp, R.a1), I.ecall()]);
    hart.run(10);
    assert.equal(hart.getCsr("satp"), 0n);
    hart.setCsr("satp", (8n << 60n) | 0x80000n);
    assert.equal(hart.getCsr("satp"), (8n << 60n) | 0x80000n);
    hart.setCsr("satp", 10n << 60n);
    assert.equal(hart.getCsr("satp"), (8n << 60n) | 0x80000n);
  });

  it("stvec at an unmapped page under paging: fetch faults loop within the budget", () => {
    const { hart } = hartWith([I.ecall()]);
    // A root page table of zeros: every fetch page-faults, including the handler's.
    hart.setCsr("satp", (8n << 60n) | BigInt((BASE >>> 12) + 16));
    hart.setCsr("stvec", 0x1000n);
    const stop = hart.run(5000);
    assert.equal(stop.kind, "budget");
    assert.equal(hart.getCsr("scause"), 12n);
    assert.equal(hart.getCsr("stval"), 0x1000n);
  });
});
