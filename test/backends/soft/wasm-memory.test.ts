/**
 * Guest RAM, hart registers, TLB mirrors and the dispatch cache in one WebAssembly.Memory
 * (wasm-memory.ts, wasm-dispatch.ts): where allocGuestMemory puts RAM and where it cannot, how
 * a hart's register file moves into its area, and that compiled code really reaches RAM and
 * other regions without JS — while the test guests, dirty logging and threaded vCPUs keep
 * their exact results on it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { I, R, li, place } from "./asm.js";
import { RAM_BASE, TEST_GUESTS, ensureGuests, guestElf, parseElf, runLoaded } from "./harness.js";
import { Hart, type HartOptions } from "../../../src/backends/soft/riscv/hart.js";
import { SoftVm, allocGuestMemory } from "../../../src/backends/soft/vm.js";
import { createSoftVm } from "../../../src/backends/soft/create.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import { lookupReg } from "../../../src/abi/catalog.js";
import {
  AREA,
  HART_AREA,
  HEADER_BYTES,
  WASM_RAM_MAX,
  wasmMemoryOf,
} from "../../../src/backends/soft/riscv/wasm-memory.js";

const WASM: HartOptions = { translate: true, hotThreshold: 1, tier: "wasm" };
const RAM_SIZE = 1 << 20;
const skipGuests = ensureGuests(TEST_GUESTS);

/** A wasm-tier hart (id `hartId`) with `code` at RAM_BASE in RAM from allocGuestMemory. */
function wasmHart(code: readonly number[], hartId = 0, ram = allocGuestMemory(RAM_SIZE)): Hart {
  place(ram, 0, code);
  const hart = new Hart({ ...WASM, hartId });
  hart.setMemslots([{ slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false }]);
  hart.setPc(BigInt(RAM_BASE));
  return hart;
}

/** The engine counters (Hart.stats carries the wasm tier's beyond its declared four). */
function counters(hart: Hart): {
  wasmEntries: number;
  wasmInsns: number;
  wasmHelpers: number;
  wasmCalls: number;
} {
  const s: Record<string, unknown> = { ...hart.stats };
  const n = (k: string): number => (typeof s[k] === "number" ? s[k] : NaN);
  return {
    wasmEntries: n("wasmEntries"),
    wasmInsns: n("wasmInsns"),
    wasmHelpers: n("wasmHelpers"),
    wasmCalls: n("wasmCalls"),
  };
}

/** `n` iterations of `body` (counter s11), then ecall. */
function loop(n: number, body: number[]): number[] {
  return [
    ...li(R.s11, BigInt(n)),
    ...body,
    I.addi(R.s11, R.s11, -1),
    I.bne(R.s11, R.zero, -4 * (body.length + 1)),
    I.ecall(),
  ];
}

describe("soft RAM in the wasm memory", () => {
  it("allocGuestMemory() puts RAM page-aligned after the hart areas of a shared memory", () => {
    const ram = allocGuestMemory(3 * 4096);
    const mem = wasmMemoryOf(ram);
    assert.ok(mem !== undefined, "the RAM's buffer is a registered wasm memory");
    assert.ok(ram.buffer instanceof SharedArrayBuffer);
    assert.equal(mem.buffer, ram.buffer);
    assert.equal(ram.byteOffset, HEADER_BYTES);
    assert.equal(ram.byteOffset % 4096, 0);
    assert.equal(ram.length, 3 * 4096);
    assert.ok(ram.every((b) => b === 0));
    assert.equal(WASM_RAM_MAX, 4 * 2 ** 30 - HEADER_BYTES);
  });

  it("RAM above WASM_RAM_MAX is a plain SharedArrayBuffer, and the wasm tier still runs on it", () => {
    const ram = allocGuestMemory(WASM_RAM_MAX + 65536);
    assert.equal(wasmMemoryOf(ram), undefined);
    assert.ok(ram.buffer instanceof SharedArrayBuffer);
    const hart = wasmHart(loop(50, [I.sd(R.s11, R.sp, 0), I.ld(R.a0, R.sp, 0)]), 0, ram);
    hart.setX(R.sp, BigInt(RAM_BASE + 0x8000));
    assert.equal(hart.run(1e5).kind, "ecall");
    assert.equal(hart.getX(R.a0), 1n);
    assert.equal(hart.core.area.shared, false, "registers stay in the hart's private area");
    assert.ok(counters(hart).wasmHelpers >= 100, "every access took the JS slow path");
  });

  it("a hart's registers move into its own area of the guest memory, values kept", () => {
    const ram = allocGuestMemory(RAM_SIZE);
    const hart = new Hart({ ...WASM, hartId: 3 });
    hart.setX(R.a0, 0x1122_3344_5566_7788n);
    hart.setMemslots([{ slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false }]);
    const x = hart.core.x;
    assert.equal(x.buffer, ram.buffer);
    assert.equal(x.byteOffset, 3 * HART_AREA + AREA.X);
    assert.equal(hart.getX(R.a0), 0x1122_3344_5566_7788n);
    hart.setMemslots([]); // no guest memory left: back to a private area, the area freed
    assert.equal(hart.core.area.shared, false);
    assert.equal(hart.getX(R.a0), 0x1122_3344_5566_7788n);
    const again = new Hart({ ...WASM, hartId: 3 });
    again.setMemslots([{ slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false }]);
    assert.equal(again.core.x.byteOffset, 3 * HART_AREA + AREA.X, "the freed area was reused");
  });

  it("two harts with one id on one memory: the second keeps a private area, both run right", () => {
    const ram = allocGuestMemory(RAM_SIZE);
    const code = loop(20, [I.addi(R.a0, R.a0, 2), I.sd(R.a0, R.sp, 0), I.ld(R.a1, R.sp, 0)]);
    const a = wasmHart(code, 0, ram);
    const b = wasmHart(code, 0, ram);
    assert.equal(a.core.area.shared, true);
    assert.equal(b.core.area.shared, false);
    for (const [hart, sp] of [
      [a, 0x8000],
      [b, 0x9000],
    ] as const) {
      hart.setX(R.sp, BigInt(RAM_BASE + sp));
      assert.equal(hart.run(1e5).kind, "ecall");
      assert.equal(hart.getX(R.a1), 40n);
    }
  });

  it("compiled loads and stores hit the TLB mirror in wasm: no JS call per access", () => {
    const hart = wasmHart(
      loop(1000, [
        I.ld(R.a0, R.sp, 0),
        I.addi(R.a0, R.a0, 1),
        I.sd(R.a0, R.sp, 0),
        I.lw(R.a1, R.sp, 0),
        I.sb(R.a1, R.sp, 9),
      ]),
    );
    hart.setX(R.sp, BigInt(RAM_BASE + 0x8000));
    assert.equal(hart.run(1e6).kind, "ecall");
    assert.equal(hart.getX(R.a0), 1000n);
    const s = counters(hart);
    assert.ok(s.wasmInsns >= 6000, `the loop ran in wasm (${s.wasmInsns})`);
    assert.ok(s.wasmHelpers <= 4, `only TLB refills left wasm (${s.wasmHelpers} helper calls)`);
  });

  it("a load or store missing the TLB mirror leaves the region, the interpreter runs it, the loop goes on in wasm", () => {
    // 64 iterations striding 512 bytes: every 8th one reaches a new page, where the load (the
    // first instruction of the compiled loop: entering it again would miss again) and the
    // store miss once each. The memory and registers must end as on the reference interpreter.
    const code = [
      ...li(R.s0, BigInt(RAM_BASE + 0x10000)),
      ...loop(64, [
        I.ld(R.a1, R.s0, 0),
        I.addi(R.a2, R.a2, 3),
        I.add(R.a2, R.a2, R.a1),
        I.sd(R.a2, R.s0, 8),
        I.addi(R.s0, R.s0, 512),
      ]),
    ];
    const run = (hart: Hart, ram: Uint8Array): string => {
      for (let i = 0; i < 64; i++) ram[0x10000 + 512 * i] = i;
      const stop = hart.run(1e6).kind;
      const x = Array.from({ length: 32 }, (_, i) => hart.getX(i).toString(16));
      const mem = Buffer.from(ram.subarray(0x10000, 0x18000)).toString("hex");
      return JSON.stringify({ stop, pc: String(hart.getPc()), n: String(hart.instret), x, mem });
    };
    const refRam = new Uint8Array(RAM_SIZE);
    place(refRam, 0, code);
    const ref = new Hart({ translate: false });
    ref.setMemslots([{ slot: 0, gpa: RAM_BASE, bytes: refRam, readonly: false }]);
    ref.setPc(BigInt(RAM_BASE));
    const ram = allocGuestMemory(RAM_SIZE);
    const hart = wasmHart(code, 0, ram);
    assert.equal(run(hart, ram), run(ref, refRam));
    assert.equal(hart.getX(R.a2), 64n * 3n + (63n * 64n) / 2n);
    const s = counters(hart);
    assert.ok(s.wasmHelpers >= 16 && s.wasmHelpers <= 24, `${s.wasmHelpers} misses left wasm`);
    const all = Number(hart.instret);
    assert.ok(s.wasmInsns >= all / 2, `the loop kept running in wasm (${s.wasmInsns} of ${all})`);
  });

  it("a same-base access reuses the previous probe only inside its page, aligned, with write rights", () => {
    // A loop warms the TLB with `warm`; the code after it (the loop block's not-taken path, so
    // in wasm) runs `pair`, whose second access must not reuse the first one's TLB hit: it
    // crosses into the page after RAM's end (an MMIO exit there), is misaligned across it (the
    // interpreter traps it, to stvec 0 here: then a fetch fault), or stores into a read-only
    // slot after a load from it (an MMIO exit: no write right).
    const end = BigInt(RAM_BASE + RAM_SIZE);
    const rom = BigInt(RAM_BASE + 2 * RAM_SIZE);
    const ld = (rd: number, off: number): number => I.ld(rd, R.s0, off);
    const cases: [string, bigint, number[], number[], string][] = [
      ["page crossing", end - 8n, [ld(R.a1, 0)], [ld(R.a1, 0), ld(R.a2, 8)], "mmio"],
      [
        "moved base",
        end - 16n,
        [ld(R.a1, 8)],
        [ld(R.a1, 8), I.addi(R.s0, R.s0, 16), ld(R.a2, 0)],
        "mmio",
      ],
      ["misaligned", end - 8n, [ld(R.a1, 0)], [ld(R.a1, 0), ld(R.a2, 4)], "fault"],
      ["write right", rom, [ld(R.a1, 0)], [ld(R.a2, 16), I.sd(R.a2, R.s0, 8)], "mmio"],
    ];
    for (const [name, base, warm, pair, kind] of cases) {
      const code = [
        ...li(R.s0, base),
        ...li(R.s11, 20n),
        ...warm,
        I.addi(R.s11, R.s11, -1),
        I.bne(R.s11, R.zero, -4 * (warm.length + 1)),
        ...pair,
        I.ecall(),
      ];
      const states = [false, true].map((wasm) => {
        // Both slots in one wasm memory: the read-only one's pages get read TLB entries too.
        const mem = wasm ? allocGuestMemory(RAM_SIZE + 4096) : new Uint8Array(RAM_SIZE + 4096);
        const ram = mem.subarray(0, RAM_SIZE);
        const ro = mem.subarray(RAM_SIZE);
        for (let i = 0; i < RAM_SIZE; i += 8) ram[i] = i & 0xff;
        ro.fill(0x5a);
        place(ram, 0, code);
        const hart = new Hart(wasm ? WASM : { translate: false });
        hart.setMemslots([
          { slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false },
          { slot: 1, gpa: Number(rom), bytes: ro, readonly: true },
        ]);
        hart.setPc(BigInt(RAM_BASE));
        const stop = hart.run(1e5);
        const x = Array.from({ length: 32 }, (_, i) => hart.getX(i).toString(16));
        const big = (_: string, v: unknown): unknown =>
          typeof v === "bigint" ? v.toString(16) : v;
        return JSON.stringify({ stop, pc: hart.getPc(), n: hart.instret, x, ro: ro.join("") }, big);
      });
      assert.equal(states[1], states[0], name);
      assert.ok(states[0]?.startsWith(`{"stop":{"kind":"${kind}"`), `${name}: ${states[0]}`);
    }
  });

  /** A loop calling `a0 += 3; ret` at RAM offset `fn` 500 times, run to its ecall. */
  function callLoop(fn: number): ReturnType<typeof counters> {
    const code = loop(500, [I.jal(R.ra, fn - 4 * li(R.s11, 500n).length)]);
    const ram = allocGuestMemory(RAM_SIZE);
    place(ram, fn, [I.addi(R.a0, R.a0, 3), I.jalr(R.zero, R.ra, 0)]);
    const hart = wasmHart(code, 0, ram);
    assert.equal(hart.run(1e6).kind, "ecall");
    assert.equal(hart.getX(R.a0), 1500n);
    return counters(hart);
  }

  it("region-to-region control stays in the wasm dispatcher", () => {
    // The function on another page: two regions, one run loop entry per cache fill rather
    // than one per call and return.
    const s = callLoop(0x2000);
    assert.ok(s.wasmEntries <= 10, `${s.wasmEntries} entries from the run loop for 1000 jumps`);
    assert.ok(s.wasmCalls >= 1000, `${s.wasmCalls} region calls for 1000 jumps between pages`);
  });

  it("a return to a call site of the same region stays in the region", () => {
    // The function on the loop's own page: one region holds the loop, the call's return site
    // and the function, so its `ret` goes back without the dispatcher.
    const s = callLoop(0x100);
    assert.ok(s.wasmInsns >= 1900, `the loop ran in wasm (${s.wasmInsns})`);
    assert.ok(s.wasmCalls <= 10, `${s.wasmCalls} region calls for 500 calls and returns`);
  });

  it("dirty logging sees fast-path stores after every getDirtyLog()", () => {
    let hart: Hart | undefined;
    using vm = new SoftVm({
      hartFactory: (hartId) => (hart = new Hart({ ...WASM, hartId })),
      budget: { timeSliceMs: 20_000 },
    });
    const code = allocGuestMemory(0x1000);
    const data = vm.addMemory({ guestPhysAddr: 0x9000_0000n, size: 0x4000, logDirty: true });
    // A loop: 100 stores to data page 1, then an SBI report (an exit to the VMM), again.
    place(code, 0, [
      ...li(R.s0, 0x9000_1000n),
      ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
      I.addi(R.s11, R.zero, 100),
      I.addi(R.s1, R.s1, 1),
      I.sd(R.s1, R.s0, 0),
      I.addi(R.s11, R.s11, -1),
      I.bne(R.s11, R.zero, -12),
      I.ecall(),
      I.jal(R.zero, -24),
    ]);
    vm.setUserMemoryRegion({ slot: 9, guestPhysAddr: BigInt(RAM_BASE), memory: code });
    const vcpu = vm.createVcpu();
    vcpu.setOneReg(lookupReg("riscv", "core.pc").id, BigInt(RAM_BASE));
    const word = new DataView(data.bytes.buffer, data.bytes.byteOffset + 0x1000, 8);
    for (let round = 1; round <= 3; round++) {
      assert.equal(vcpu.run().kind, "riscv_sbi");
      assert.equal(word.getBigUint64(0, true), BigInt(100 * round));
      // The read drops every write-TLB entry (mirror included): the next store logs anew.
      assert.deepEqual([...vm.getDirtyLog(data.slot)], [0b10, 0, 0, 0, 0, 0, 0, 0]);
    }
    assert.ok(hart !== undefined && counters(hart).wasmInsns > 300, "the stores ran in wasm");
  });

  it("a threaded vCPU's worker runs on the same memory: its registers are in area 0", () => {
    using vm = createSoftVm({ mode: "threaded" });
    const ram = vm.addMemory({ guestPhysAddr: BigInt(RAM_BASE), size: RAM_SIZE });
    place(ram.bytes, 0, [
      ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
      ...li(R.s2, 0x1234_5678_9abc_def0n),
      I.ecall(),
    ]);
    const vcpu = vm.createVcpu();
    vcpu.setOneReg(lookupReg("riscv", "core.pc").id, BigInt(RAM_BASE));
    assert.equal(vcpu.run().kind, "riscv_sbi");
    const mem = wasmMemoryOf(ram.bytes);
    assert.ok(mem !== undefined);
    const area = new BigInt64Array(mem.buffer, 0, HART_AREA / 8);
    assert.notEqual(area[AREA.OWNER / 8], 0n, "the worker's hart claimed area 0");
    assert.equal(area[AREA.X / 8 + R.s2], 0x1234_5678_9abc_def0n);
  });

  for (const name of TEST_GUESTS) {
    it(
      `${name} prints only PASS lines on the wasm tier with RAM in the wasm memory`,
      {
        skip: skipGuests,
      },
      () => {
        const elf = parseElf(readFileSync(guestElf(name)));
        const ram = allocGuestMemory(128 << 20);
        for (const s of elf.segments) ram.set(s.data, Number(s.paddr) - RAM_BASE);
        const hart = new Hart(WASM);
        hart.setMemslots([{ slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false }]);
        hart.setPc(elf.entry);
        const run = runLoaded(hart, ram, { budget: 50_000_000 });
        assert.equal(run.end, "shutdown", `${name} ended with ${run.end}: ${run.detail}`);
        const lines = run.console.split("\n").filter((l) => l !== "");
        assert.ok(lines.length >= 5, `${name} printed too little:\n${run.console}`);
        assert.deepEqual(
          lines.filter((l) => !l.startsWith("PASS ")),
          [],
          run.console,
        );
        assert.ok(counters(hart).wasmInsns > 0, "some of it ran in wasm");
      },
    );
  }
});
