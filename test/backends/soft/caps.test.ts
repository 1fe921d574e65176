/**
 * The soft backend's machine capabilities: `runAsync()` (threaded), `kick()`, the KVM_INTERRUPT
 * line taken promptly while the guest spins, dirty logging, `markDirty` dropping translated
 * code, and two threaded vCPUs sharing RAM (HSM start, IPIs, remote fences, atomics).
 */
import { describe, it } from "node:test";
import { Worker } from "node:worker_threads";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import type { SoftVcpu } from "../../../src/backends/soft/vcpu.js";
import { allocGuestMemory } from "../../../src/backends/soft/vm.js";
import { Hart } from "../../../src/backends/soft/riscv/hart.js";
import { VcpuBusyError, type VcpuExit } from "../../../src/backends/vcpu.js";
import { DEFAULT_HOT } from "../../../src/backends/soft/riscv/engine.js";
import { I, R, li, place } from "./asm.js";
import { HART_KIND, MODES, RAM_BASE, get, guest, makeVm, reg, set } from "./helpers.js";

const report = (tag: number): number[] => [
  ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
  ...li(R.a6, BigInt(tag)),
  I.ecall(),
];
/** A whole time slice: any `intr` well before it was caused by the test, not the budget. */
const LONG_SLICE = { timeSliceMs: 20_000 };
/** A KVM dirty bitmap of the 8-page slot: one u64 (KVM aligns bitmaps to BITS_PER_LONG). */
const log = (firstByte: number): number[] => [firstByte, 0, 0, 0, 0, 0, 0, 0];
const SCAUSE_SEI = (1n << 63n) | 9n;
const SCAUSE_SSI = (1n << 63n) | 1n;
const real = HART_KIND === "real";

function tagOf(exit: VcpuExit): bigint | undefined {
  return exit.kind === "riscv_sbi" && exit.extensionId === SBI_EID.EXPERIMENTAL_START
    ? exit.functionId
    : undefined;
}

/** Runs `vcpu` with runAsync until an SBI report, answering nothing else; returns its tag. */
async function untilReport(vcpu: SoftVcpu): Promise<bigint> {
  const runAsync = vcpu.runAsync;
  assert.ok(runAsync !== undefined);
  for (;;) {
    const exit = await runAsync();
    const tag = tagOf(exit);
    if (tag !== undefined) return tag;
    if (exit.kind === "riscv_sbi") exit.ret[0] = 0n;
    else assert.equal(exit.kind, "intr", `unexpected exit ${exit.kind}`);
  }
}

/** Bumps `word[0]` from another thread after `delayMs` (what kick/KVM_INTERRUPT do). */
function bumpLater(word: Int32Array, delayMs: number): Worker {
  const code = `
    const { workerData } = require("node:worker_threads");
    const word = new Int32Array(workerData.buffer);
    setTimeout(() => { Atomics.add(word, 0, 1); Atomics.notify(word, 0); }, workerData.delayMs);`;
  return new Worker(code, { eval: true, workerData: { buffer: word.buffer, delayMs } });
}

describe("soft backend capabilities", () => {
  it(
    "Hart.run(budget, expect) leaves a compiled tight loop within a slice once the watched word changes",
    { skip: !real && "the real hart's engine" },
    async () => {
      const ram = allocGuestMemory(0x1000);
      place(ram, 0, [I.addi(R.t0, R.t0, 1), I.jal(0, -4)]);
      const hart = new Hart({ hotThreshold: 1 });
      hart.setMemslots([{ slot: 0, gpa: Number(RAM_BASE), bytes: ram, readonly: false }]);
      hart.setPc(RAM_BASE);
      const word = new Int32Array(new SharedArrayBuffer(4));
      hart.watch(word, 0);
      assert.equal(hart.run(1000).kind, "budget"); // compiles the loop
      const helper = bumpLater(word, 100);
      await new Promise((resolve) => helper.once("online", resolve));
      const started = performance.now();
      // Without the watch this is 10^12 instructions: hours.
      const stop = hart.run(1e12, 0);
      const took = performance.now() - started;
      await helper.terminate();
      assert.equal(stop.kind, "budget");
      assert.ok(took < 5000, `run() returned ${took.toFixed(0)} ms after start`);
      assert.ok(hart.instret > 1000n);
      // A word already changed: not one instruction runs.
      const before = hart.instret;
      assert.equal(hart.run(1e12, 0).kind, "budget");
      assert.equal(hart.instret, before);
    },
  );

  it("runAsync() exists in threaded mode only; inline mode documents why not", () => {
    const threaded = guest("threaded", [I.jal(0, 0)]);
    const inline = guest("inline", [I.jal(0, 0)]);
    assert.equal(typeof threaded.vcpu.runAsync, "function");
    assert.equal(inline.vcpu.runAsync, undefined);
    threaded.vm.close();
    inline.vm.close();
  });

  it("kick() ends a runAsync() spinning in a tight loop within milliseconds; the event loop stays free", async () => {
    const { vm, vcpu } = guest("threaded", [I.jal(0, 0)], LONG_SLICE);
    const runAsync = vcpu.runAsync;
    assert.ok(runAsync !== undefined);
    let settled = false;
    const running = runAsync().finally(() => {
      settled = true;
    });
    // Timers still fire while the guest spins: the caller's thread is not blocked.
    for (let i = 0; i < 5; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(settled, false, "the run is still in progress");
    assert.throws(() => vcpu.getOneReg(reg("a0")), VcpuBusyError);
    const slots = vm.memory.length;
    assert.throws(() => vm.addMemory({ guestPhysAddr: 0x1000_0000n, size: 0x1000 }), VcpuBusyError);
    assert.equal(vm.memory.length, slots, "a refused slot change leaves the slots as they were");
    const kickedAt = performance.now();
    vcpu.kick();
    const exit = await running;
    const took = performance.now() - kickedAt;
    assert.equal(exit.kind, "intr");
    assert.ok(took < 1000, `the kick took ${took.toFixed(1)} ms to land`);
    assert.ok(get(vcpu, "core.pc") === RAM_BASE, "the guest was still in its loop");
    vm.close();
  });

  for (const mode of MODES) {
    it(`kick() before a run makes that run return intr at once, once (${mode})`, () => {
      const { vm, vcpu } = guest(mode, report(7), LONG_SLICE);
      vcpu.kick();
      vcpu.kick(); // kicks coalesce
      assert.equal(vcpu.run().kind, "intr");
      assert.equal(tagOf(vcpu.run()), 7n);
      vm.close();
    });
  }

  it("setExternalInterrupt() during runAsync() is taken promptly by a spinning guest (sip.SEIP, scause 9)", async () => {
    // stvec → handler at +0x100: report scause; main: enable SEIE + SIE, spin.
    const prog = [
      ...li(R.t0, RAM_BASE + 0x100n),
      I.csrrw(0, 0x105, R.t0), // stvec
      ...li(R.t0, 0x200n),
      I.csrrs(0, 0x104, R.t0), // sie.SEIE
      ...li(R.t0, 2n),
      I.csrrs(0, 0x100, R.t0), // sstatus.SIE
      I.jal(0, 0),
    ];
    const { vm, vcpu, ram } = guest("threaded", prog, LONG_SLICE);
    place(ram, 0x100, [I.csrrs(R.a0, 0x142, 0), I.csrrs(R.a1, 0x144, 0), ...report(9)]);
    const done = untilReport(vcpu);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const raisedAt = performance.now();
    vcpu.setExternalInterrupt(true);
    assert.equal(await done, 9n);
    const took = performance.now() - raisedAt;
    assert.equal(get(vcpu, "a0"), SCAUSE_SEI, "scause = supervisor external interrupt");
    assert.equal(get(vcpu, "a1") & 0x200n, 0x200n, "sip.SEIP is set while the line is high");
    assert.ok(took < 1000, `the interrupt took ${took.toFixed(1)} ms`);
    vcpu.setExternalInterrupt(false);
    assert.equal(get(vcpu, "csr.sip") & 0x200n, 0n, "KVM_INTERRUPT_UNSET clears sip.SEIP");
    assert.throws(() => {
      // A caller without types (plain JS) passing a number.
      const untyped: { setExternalInterrupt(level: unknown): void } = vcpu;
      untyped.setExternalInterrupt(1);
    }, TypeError);
    vm.close();
  });

  for (const mode of MODES) {
    it(`getDirtyLog() reports the pages the guest wrote, read-and-clear (${mode})`, () => {
      const vm = makeVm(mode, LONG_SLICE);
      const code = allocGuestMemory(0x1000);
      const data = vm.addMemory({
        guestPhysAddr: RAM_BASE + 0x10000n,
        size: 0x8000,
        logDirty: true,
      });
      const plain = vm.addMemory({ guestPhysAddr: RAM_BASE + 0x20000n, size: 0x1000 });
      assert.equal(data.logDirty, true);
      assert.deepEqual(
        vm.memory.map((m) => m.logDirty),
        [true, false],
      );
      const store = (page: number): number[] => [
        ...li(R.t0, RAM_BASE + 0x10000n + BigInt(page * 4096 + 8)),
        I.sd(R.t0, R.t0, 0),
      ];
      place(code, 0, [
        ...store(3),
        ...store(5),
        ...report(1),
        ...store(3),
        ...report(2),
        ...report(3),
      ]);
      vm.setUserMemoryRegion({ slot: 9, guestPhysAddr: RAM_BASE, memory: code });
      const vcpu = vm.createVcpu();
      set(vcpu, "core.pc", RAM_BASE);
      assert.equal(tagOf(vcpu.run()), 1n);
      assert.deepEqual([...vm.getDirtyLog(data.slot)], log(0b0010_1000));
      assert.deepEqual([...vm.getDirtyLog(data.slot)], log(0), "the log was cleared");
      // The same page again: its write-TLB entry was dropped by the read, so it is logged anew.
      assert.equal(tagOf(vcpu.run()), 2n);
      assert.deepEqual([...vm.getDirtyLog(data.slot)], log(0b0000_1000));
      vm.markDirty(RAM_BASE + 0x10000n + 0x6ff0n, 0x20);
      assert.deepEqual([...vm.getDirtyLog(data.slot)], log(0b1100_0000), "markDirty spans 2 pages");
      const noLog = (e: unknown): boolean => e instanceof KvmError && e.errnoName === "ENOENT";
      assert.throws(() => vm.getDirtyLog(plain.slot), noLog);
      assert.throws(() => vm.getDirtyLog(42), noLog);
      assert.throws(() => {
        vm.markDirty(RAM_BASE + 0x7f000n, 16);
      }, RangeError);
      assert.equal(tagOf(vcpu.run()), 3n);
      vm.close();
    });
  }

  for (const mode of MODES) {
    it(
      `markDirty() drops translated code the VMM rewrote (${mode})`,
      { skip: !real && "needs the real hart's translator" },
      () => {
        // main: call f (at +0x2000) DEFAULT_HOT + 904 times (hot → compiled), report its a0;
        // repeat.
        const f = 0x2000;
        const loop = [
          ...li(R.s1, BigInt(DEFAULT_HOT + 904)),
          ...li(R.s2, RAM_BASE + BigInt(f)),
          I.jalr(R.ra, R.s2, 0),
          I.addi(R.s1, R.s1, -1),
          I.bne(R.s1, R.zero, -8),
          ...report(1),
        ];
        const prog = [...loop, I.jal(0, -4 * loop.length)];
        const { vm, vcpu, ram } = guest(mode, prog, LONG_SLICE);
        const body = (value: number): number[] => [I.addi(R.a0, R.zero, value), I.jalr(0, R.ra, 0)];
        place(ram, f, body(1));
        assert.equal(tagOf(vcpu.run()), 1n);
        assert.equal(get(vcpu, "a0"), 1n);
        place(ram, f, body(2)); // a DMA write the hart cannot see
        assert.equal(tagOf(vcpu.run()), 1n);
        assert.equal(get(vcpu, "a0"), 1n, "without markDirty the stale translation runs");
        vm.markDirty(RAM_BASE + BigInt(f), 8);
        assert.equal(tagOf(vcpu.run()), 1n);
        assert.equal(get(vcpu, "a0"), 2n, "after markDirty the new code runs");
        vm.close();
      },
    );
  }

  it("two threaded vCPUs: HSM start, atomics across workers, IPI, remote fence", async () => {
    const counter = RAM_BASE + 0x8000n;
    const lrsc = RAM_BASE + 0x8008n;
    const N = 20_000;
    // Both harts: N × amoadd.d on `counter`, N × LR/SC increment of `lrsc`.
    const work = [
      ...li(R.s1, counter),
      ...li(R.s2, lrsc),
      ...li(R.s3, BigInt(N)),
      ...li(R.t1, 1n),
      I.amoaddD(0, R.s1, R.t1), // loop:
      I.lrW(R.t2, R.s2), // retry:
      I.addi(R.t2, R.t2, 1),
      I.scW(R.t3, R.s2, R.t2),
      I.bne(R.t3, R.zero, -12), // → retry
      I.addi(R.s3, R.s3, -1),
      I.bne(R.s3, R.zero, -24), // → loop
    ];
    const sbi = (eid: bigint, fid: bigint, ...args: bigint[]): number[] => [
      ...args.flatMap((a, i) => li(R.a0 + i, a)),
      ...li(R.a7, eid),
      ...li(R.a6, fid),
      I.ecall(),
    ];
    const hart1 = 0x1000;
    const handler1 = 0x1800;
    // hart 0: start hart 1 at +0x1000, do the work, wait for hart 1's flag, fence it, IPI it.
    const flag = RAM_BASE + 0x8010n;
    const main = [
      ...sbi(SBI_EID.HSM, 0n, 1n, RAM_BASE + BigInt(hart1), 0x77n),
      I.addi(R.s5, R.a0, 0),
      ...work,
      ...li(R.s4, flag),
      I.ld(R.t0, R.s4, 0), // wait:
      I.beq(R.t0, R.zero, -4),
      ...sbi(SBI_EID.RFENCE, 0n, 2n, 0n), // remote fence.i to hart 1
      I.addi(R.s6, R.a0, 0),
      ...sbi(SBI_EID.IPI, 0n, 2n, 0n), // send_ipi to hart 1
      I.addi(R.s7, R.a0, 0),
      ...report(10),
    ];
    // hart 1: a1 = opaque; do the work; enable SSIE + SIE; set the flag; spin until the IPI.
    const secondary = [
      I.addi(R.s8, R.a1, 0),
      I.addi(R.s9, R.a0, 0),
      ...work,
      ...li(R.t0, RAM_BASE + BigInt(handler1)),
      I.csrrw(0, 0x105, R.t0),
      ...li(R.t0, 2n),
      I.csrrs(0, 0x104, R.t0),
      I.csrrs(0, 0x100, R.t0),
      ...li(R.s4, flag),
      ...li(R.t0, 1n),
      I.sd(R.t0, R.s4, 0),
      I.jal(0, 0),
    ];
    const { vm, vcpu: v0, ram } = guest("threaded", main, LONG_SLICE);
    place(ram, hart1, secondary);
    place(ram, handler1, [I.csrrs(R.a0, 0x142, 0), ...report(11)]);
    const v1 = vm.createVcpu();
    const [t0, t1] = await Promise.all([untilReport(v0), untilReport(v1)]);
    assert.equal(t0, 10n);
    assert.equal(t1, 11n);
    assert.equal(get(v0, "s5"), 0n, "hart_start succeeded");
    assert.equal(get(v1, "s8"), 0x77n, "hart 1 got the opaque value in a1");
    assert.equal(get(v1, "s9"), 1n, "hart 1 got its hart id in a0");
    assert.equal(get(v0, "s6"), 0n, "remote fence.i succeeded");
    assert.equal(get(v0, "s7"), 0n, "send_ipi succeeded");
    assert.equal(get(v1, "a0"), SCAUSE_SSI, "hart 1 took a supervisor software interrupt");
    const view = new DataView(ram.buffer, ram.byteOffset);
    assert.equal(
      view.getBigUint64(0x8000, true),
      BigInt(2 * N),
      "amoadd.d is atomic across workers",
    );
    assert.equal(view.getUint32(0x8008, true), 2 * N, "LR/SC is atomic across workers");
    vm.close();
  });
});
