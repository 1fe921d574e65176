/**
 * `Vm.setDirtyLogging()`, what live migration turns on when it starts and off when it fails,
 * on every backend: KVM_SET_USER_MEMORY_REGION on the same slot with only
 * KVM_MEM_LOG_DIRTY_PAGES changed (kvm_pvm, skipped visibly without /dev/kvm) and the soft
 * backend's memslot (inline and threaded). A guest that already stored to the pages before
 * logging started must have them logged afterwards (a soft hart's stale write-TLB entries would
 * skip the marks), a log turned off refuses to be read, and a log turned on again starts clear.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import { KvmSystem, kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { createSoftVm, type SoftMode } from "../../../src/backends/soft/index.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import type { Vcpu, Vm } from "../../../src/backends/vcpu.js";
import { I, R, li, place } from "../../backends/soft/asm.js";
import { reg } from "../../backends/soft/helpers.js";
import { startRealMode } from "../../backends/kvm/helpers.js";
import { bitmapOf, runToExit } from "../../conformance/suite.js";

/** A VM whose vCPU stores to pages 2 and 5 of slot `slot` (8 pages at `base`), then exits. */
interface Writer {
  readonly vm: Vm;
  readonly vcpu: Vcpu;
  readonly slot: number;
  readonly base: bigint;
}

let system: KvmSystem | undefined;

/** x86 real mode at CS = 0: `mov byte [addr], 0x42` per page, hlt, jmp back to the start. */
function kvmWriter(): Writer {
  system ??= KvmSystem.open();
  const vm = system.createVm();
  const code = vm.addMemory({ guestPhysAddr: 0, size: 0x8000 });
  const stores = [2, 5].flatMap((p) => {
    const at = 0x8000 + p * 4096 + 0x10;
    return [0xc6, 0x06, at & 0xff, at >> 8, 0x42];
  });
  const back = -(stores.length + 1 + 2);
  code.bytes.set([...stores, 0xf4, 0xeb, back & 0xff], 0x1000);
  const vcpu = vm.createVcpu();
  startRealMode(vcpu, 0x1000n);
  const log = vm.addMemory({ guestPhysAddr: 0x8000, size: 0x8000 });
  return { vm, vcpu, slot: log.slot, base: 0x8000n };
}

/** RV64 at 0x8000_0000: `sd` per page, an SBI call to the VMM, jump back to the start. */
function softWriter(mode: SoftMode): Writer {
  const ram = 0x8000_0000n;
  const base = ram + 0x10000n;
  const vm = createSoftVm({ mode, budget: { timeSliceMs: 20_000 } });
  const code = vm.addMemory({ guestPhysAddr: ram, size: 0x10000 });
  const body = [
    ...[2, 5].flatMap((p) => [...li(R.t0, base + BigInt(p * 4096 + 0x10)), I.sd(R.t0, R.t0, 0)]),
    ...li(R.a7, SBI_EID.EXPERIMENTAL_START),
    I.ecall(),
  ];
  place(code.bytes, 0, [...body, I.jal(0, -4 * body.length)]);
  const vcpu = vm.createVcpu();
  vcpu.setOneReg(reg("core.pc"), ram);
  const log = vm.addMemory({ guestPhysAddr: base, size: 0x8000 });
  return { vm, vcpu, slot: log.slot, base };
}

const errno =
  (name: string) =>
  (e: unknown): boolean =>
    e instanceof KvmError && e.errnoName === name;

const kvmReason = kvmUnavailableReason();
const targets: readonly { name: string; skip: string | false; make: () => Writer }[] = [
  {
    name: "kvm x86",
    skip: kvmReason === undefined ? false : `needs /dev/kvm: ${kvmReason}`,
    make: kvmWriter,
  },
  { name: "soft riscv inline", skip: false, make: () => softWriter("inline") },
  { name: "soft riscv threaded", skip: false, make: () => softWriter("threaded") },
];

for (const t of targets) {
  describe(`Vm.setDirtyLogging(): ${t.name}`, { skip: t.skip }, () => {
    it("on after the guest already wrote: later stores are logged; off refuses the log; on again starts clear", () => {
      const { vm, vcpu, slot, base } = t.make();
      try {
        const setLogging = vm.setDirtyLogging?.bind(vm);
        const getLog = vm.getDirtyLog?.bind(vm);
        assert.ok(setLogging !== undefined && getLog !== undefined);
        const logs = (): boolean | undefined => vm.memory.find((m) => m.slot === slot)?.logDirty;
        runToExit(vcpu); // stores with logging off (a soft hart keeps write-TLB entries)
        assert.equal(logs(), false);
        assert.throws(() => getLog(slot), errno("ENOENT"), "no log while logging is off");
        setLogging(slot, true);
        assert.equal(logs(), true);
        assert.deepEqual([...getLog(slot)], bitmapOf([]), "a fresh log");
        runToExit(vcpu);
        assert.deepEqual([...getLog(slot)], bitmapOf([2, 5]), "the same stores, now logged");
        vm.markDirty?.(base + 0x6000n, 1);
        setLogging(slot, false);
        assert.equal(logs(), false);
        assert.throws(() => getLog(slot), errno("ENOENT"));
        runToExit(vcpu); // the guest runs on without logging
        setLogging(slot, true);
        assert.deepEqual([...getLog(slot)], bitmapOf([]), "on again: nothing from before");
        runToExit(vcpu);
        assert.deepEqual([...getLog(slot)], bitmapOf([2, 5]));
        setLogging(slot, true); // already on: the log is kept
        runToExit(vcpu);
        setLogging(slot, true);
        assert.deepEqual([...getLog(slot)], bitmapOf([2, 5]));
        assert.throws(() => {
          setLogging(99, true);
        }, errno("EINVAL"));
        assert.deepEqual(
          vm.memory.map((m) => m.logDirty),
          [false, true],
          "the code slot was never touched",
        );
      } finally {
        vm.close();
      }
    });
  });
}

describe("soft Vm.getDirtyLog(): clean words skipped", () => {
  it("reports a page at every position of a 4-page word, and the tail past the last whole word", () => {
    using vm = createSoftVm({ mode: "inline" });
    const base = 0x8000_0000n;
    // 67 pages: 16 whole words of 4 pages, then 3 more; the log is 2 64-bit words (16 bytes).
    const log = (pages: readonly number[]): number[] => {
      const out = new Array<number>(16).fill(0);
      for (const p of pages) out[p >> 3] = (out[p >> 3] ?? 0) | (1 << (p & 7));
      return out;
    };
    const mem = vm.addMemory({ guestPhysAddr: base, size: 67 * 4096, logDirty: true });
    for (const set of [[0], [1], [2], [3], [4, 7], [8, 9, 10, 11], [63], [64], [66], [5, 65]]) {
      for (const p of set) vm.markDirty(base + BigInt(p * 4096), 1);
      assert.deepEqual([...vm.getDirtyLog(mem.slot)], log(set), `pages ${set.join(",")}`);
      assert.deepEqual([...vm.getDirtyLog(mem.slot)], log([]), "read and cleared");
    }
  });
});
