/**
 * Soft-backend kernel benchmarks, threaded mode (every vCPU call crosses the SharedArrayBuffer
 * mailbox to the vCPU's Worker), each pair measured side by side in one run:
 *
 * - soft.many_regs.speedup: reading every listed register (REG_LIST of a default vCPU), one
 *   getOneReg() per id over one getManyRegs() for the whole list;
 * - soft.sync_regs.speedup: one forwarded SBI exit plus reading a0..a2 and writing a2, through
 *   ONE_REG calls over the same through the run page's sync-register area (CORE group).
 *
 * The two sides alternate round by round; each ratio is the median of the per-round ratios and
 * `detail` lists the per-round microseconds of both sides. Both use the default mailbox
 * (every crossing sleeps in Atomics.wait; no `spinUs` polling).
 */
import { lookupReg } from "../src/abi/catalog.js";
import type { RegId } from "../src/abi/regid.js";
import { createSoftVm } from "../src/backends/soft/create.js";
import { KVM_SYNC_RISCV } from "../src/backends/soft/runarea.js";
import { SBI_EID } from "../src/backends/soft/sbi.js";
import type { SoftVcpu } from "../src/backends/soft/vcpu.js";
import { allocGuestMemory, type SoftVm } from "../src/backends/soft/vm.js";
import { formatRounds, median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

const ROUNDS = 7;
const MANY_REPS = 200;
const SYNC_EXITS = 2_000;
const RAM_BASE = 0x8000_0000n;

const fmt = (values: readonly number[]): string => formatRounds(values, 1);

/** Microseconds per repetition of `fn`. */
function usPer(reps: number, fn: () => void): number {
  const start = process.hrtime.bigint();
  for (let i = 0; i < reps; i++) fn();
  return Number(process.hrtime.bigint() - start) / 1000 / reps;
}

const id = (name: string): RegId => lookupReg("riscv", name).id;

/**
 * A guest that makes one forwarded SBI call per iteration:
 * `lui a7, 0x8000` (a7 = 0x0800_0000, the first experimental EID); `ecall`; `jal x0, -4`.
 */
function exitLoopGuest(spinUs: number): { vm: SoftVm; vcpu: SoftVcpu } {
  const vm = createSoftVm({ mode: "threaded", spinUs });
  const ram = allocGuestMemory(1 << 16);
  const words = [
    ((Number(SBI_EID.EXPERIMENTAL_START) >>> 12) << 12) | (17 << 7) | 0x37, // lui a7
    0x0000_0073, // ecall
    0xffdf_f06f, // jal x0, -4
  ];
  const view = new DataView(ram.buffer);
  words.forEach((w, i) => {
    view.setUint32(4 * i, w >>> 0, true);
  });
  vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: RAM_BASE, memory: ram });
  const vcpu = vm.createVcpu();
  vcpu.setOneReg(id("core.pc"), RAM_BASE);
  return { vm, vcpu };
}

interface Pair {
  readonly ratio: number;
  readonly a: number[];
  readonly b: number[];
}

/** Alternates `a` and `b` for ROUNDS rounds; per-round µs and the median of a/b. */
function sideBySide(a: () => number, b: () => number, between?: () => void): Pair {
  const as: number[] = [];
  const bs: number[] = [];
  const ratios: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const x = a();
    between?.();
    const y = b();
    as.push(x);
    bs.push(y);
    ratios.push(x / y);
  }
  return { ratio: median(ratios), a: as, b: bs };
}

function measureManyRegs(spinUs: number): Pair & { count: number } {
  const vm = createSoftVm({ mode: "threaded", spinUs });
  const vcpu = vm.createVcpu();
  const ids = vcpu.regList();
  const pair = sideBySide(
    () =>
      usPer(MANY_REPS / 10, () => {
        for (const reg of ids) vcpu.getOneReg(reg);
      }),
    () => usPer(MANY_REPS, () => vcpu.getManyRegs(ids)),
  );
  vm.close();
  return { ...pair, count: ids.length };
}

function measureSyncRegs(spinUs: number): Pair {
  const { vm, vcpu } = exitLoopGuest(spinUs);
  const [a0, a1, a2] = [id("core.a0"), id("core.a1"), id("core.a2")];
  const area = vcpu.runArea;
  const core = BigInt(KVM_SYNC_RISCV.CORE);
  let sink = 0n;
  const viaOneReg = (): void => {
    vcpu.run();
    const x = vcpu.getOneReg(a0);
    const y = vcpu.getOneReg(a1);
    const z = vcpu.getOneReg(a2);
    sink ^= BigInt((x[0] ?? 0) + (y[0] ?? 0) + (z[0] ?? 0));
    vcpu.setOneReg(a2, sink);
  };
  const viaSync = (): void => {
    vcpu.run();
    sink ^= area.syncCore(10) + area.syncCore(11) + area.syncCore(12);
    area.setSyncCore(12, sink);
    area.dirtyRegs = core;
  };
  const pair = sideBySide(
    () => {
      area.validRegs = 0n;
      area.dirtyRegs = 0n;
      return usPer(SYNC_EXITS, viaOneReg);
    },
    () => {
      area.validRegs = core;
      return usPer(SYNC_EXITS, viaSync);
    },
  );
  vm.close();
  return pair;
}

function manyRegs(): Metric {
  const plain = measureManyRegs(0);
  return {
    name: "soft.many_regs.speedup",
    value: plain.ratio,
    unit: "ratio",
    target: ">= 10",
    detail:
      `threaded mode, ${plain.count} registers (the full REG_LIST): ${plain.count} x getOneReg ` +
      `us/list ${fmt(plain.a)} vs one getManyRegs us/list ${fmt(plain.b)}; median of ${ROUNDS} ` +
      `per-round ratios`,
  };
}

function syncRegs(): Metric {
  const plain = measureSyncRegs(0);
  return {
    name: "soft.sync_regs.speedup",
    value: plain.ratio,
    unit: "ratio",
    target: ">= 2",
    detail:
      `threaded mode, forwarded SBI exit + read a0,a1,a2 + write a2: ONE_REG us/exit ` +
      `${fmt(plain.a)} vs sync regs (valid/dirty CORE) us/exit ${fmt(plain.b)}; median of ` +
      `${ROUNDS} per-round ratios`,
  };
}

/** The soft kernel benchmark group. */
export const softKernelBench: BenchGroup = {
  name: "soft-kernel",
  run() {
    return Promise.resolve({ metrics: [manyRegs(), syncRegs()] });
  },
};
