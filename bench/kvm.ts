/**
 * KVM backend benchmarks, each measured side by side in one run:
 *
 * - kvm.exit.ts_over_c: per-exit cost of guests/x86/exit-loop.bin (one KVM_EXIT_IO per
 *   KVM_RUN) through `vcpu.run()`, over the same loop in C (bench/c/kvm_bench.c);
 * - kvm.one_reg.ts_over_c: KVM_GET_ONE_REG of IA32_TSC through `getOneRegInto()`, over C;
 * - kvm.sync_regs.speedup: exit + read/modify/write of RAX, with KVM_GET_REGS/KVM_SET_REGS per
 *   exit over the same through the kvm_run sync area (both TypeScript; C's ratio in detail);
 * - kvm.many_regs.speedup: reading the complete x86 view, one getOneReg() per id over one
 *   planned getManyRegs().
 *
 * The C reference is compiled at bench time with `cc -O2` into a temporary directory and started
 * once (bench/c-reference.ts says why not once per round). TS and C alternate round by round;
 * both are pinned to the same CPU (the last one this thread may use) so neither pays for
 * migrations the other avoids. Each ratio is the median of the
 * per-round ratios; `detail` lists the per-round nanoseconds.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ioctlName, KVM_SYNC_X86 } from "../src/abi/kvm/ioctls.js";
import { msrRegId } from "../src/abi/arch/x86/index.js";
import { ioctlPath, setIoctlHook, setThreadCpus, threadCpus } from "../src/backends/kvm/ffi.js";
import { KvmSystem, kvmUnavailableReason, type KvmVcpu } from "../src/backends/kvm/index.js";
import { bootFlatGuest, bundledGuest, bundledGuestPath } from "../src/backends/kvm/flat-guest.js";
import { CReference, compileReference } from "./c-reference.js";
import { formatRounds, median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

const ROUNDS = 7;
const EXIT_ITERS = 20_000;
const ONE_REG_ITERS = 50_000;
const SYNC_ITERS = 10_000;
const MANY_REPS = 200;
const LOOP_PORT = 0x10; // guests/x86/exit-loop.S
const MSR_IA32_TSC = 0x10; // Intel SDM vol. 4, table 2-2

const fmt = (values: readonly number[]): string => formatRounds(values, 0);

function nsPerOp(iterations: number, fn: () => void): number {
  const start = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - start) / iterations;
}

/** One C measurement: ns per iteration of `mode`. */
async function runC(reference: CReference, mode: string, iterations: number): Promise<number> {
  return Number(await reference.ask(`${mode} ${iterations}`));
}

function exitLoopTs(vcpu: KvmVcpu, iterations: number): number {
  return nsPerOp(iterations, () => {
    for (let i = 0; i < iterations; i++) {
      const exit = vcpu.run();
      if (exit.kind !== "io" || exit.port !== LOOP_PORT)
        throw new Error(`unexpected exit ${exit.kind}`);
    }
  });
}

function oneRegTs(vcpu: KvmVcpu, iterations: number): number {
  const id = msrRegId(MSR_IA32_TSC);
  const out = new Uint8Array(8);
  return nsPerOp(iterations, () => {
    for (let i = 0; i < iterations; i++) vcpu.getOneRegInto(id, out);
  });
}

function regsTs(vcpu: KvmVcpu, iterations: number): number {
  const bytes = new Uint8Array(144);
  const gprs = new BigUint64Array(bytes.buffer);
  vcpu.sync.valid = 0;
  return nsPerOp(iterations, () => {
    for (let i = 0; i < iterations; i++) {
      vcpu.getRegsBytes(bytes);
      gprs[0] = (gprs[0] ?? 0n) + 1n;
      vcpu.setRegsBytes(bytes);
      vcpu.run();
    }
  });
}

function syncTs(vcpu: KvmVcpu, iterations: number): number {
  const sync = vcpu.sync;
  sync.valid = KVM_SYNC_X86.REGS;
  vcpu.run();
  const gprs = sync.gprs;
  const ns = nsPerOp(iterations, () => {
    for (let i = 0; i < iterations; i++) {
      gprs[0] = (gprs[0] ?? 0n) + 1n;
      sync.dirty = KVM_SYNC_X86.REGS;
      vcpu.run();
    }
  });
  sync.valid = 0;
  return ns;
}

function ratioMetric(
  name: string,
  target: string,
  ts: number[],
  c: number[],
  what: string,
  extra = "",
): Metric {
  const ratios = ts.map((t, i) => t / (c[i] ?? NaN));
  return {
    name,
    value: Number(median(ratios).toFixed(3)),
    unit: "ratio",
    target,
    detail:
      `${what}; median TS ${median(ts).toFixed(0)} ns vs C ${median(c).toFixed(0)} ns per op; ` +
      `TS ${fmt(ts)} C ${fmt(c)} ns over ${ts.length} interleaved rounds${extra}`,
  };
}

/**
 * The same C loop in a process with one more (idle) thread, as every Node process and every
 * real C VMM has: the kernel then refcounts the fd on each ioctl. Context, not the target.
 */
function threadedNote(ts: readonly number[], cThreaded: readonly number[]): string {
  const ratios = ts.map((t, i) => t / (cThreaded[i] ?? NaN));
  return (
    `; C with a second, idle thread ${fmt(cThreaded)} ns (median ${median(cThreaded).toFixed(0)}), ` +
    `TS over it ${median(ratios).toFixed(3)}`
  );
}

function countIoctls(fn: () => void): number {
  let n = 0;
  setIoctlHook(() => n++);
  try {
    fn();
  } finally {
    setIoctlHook(undefined);
  }
  return n;
}

function manyRegs(vcpu: KvmVcpu): Metric {
  const ids = vcpu.regList();
  const eachRound: number[] = [];
  const plannedRound: number[] = [];
  const loop = (): void => {
    for (const id of ids) vcpu.getOneReg(id);
  };
  loop();
  vcpu.getManyRegs(ids);
  for (let round = 0; round < ROUNDS; round++) {
    eachRound.push(
      nsPerOp(MANY_REPS, () => {
        for (let r = 0; r < MANY_REPS; r++) loop();
      }),
    );
    plannedRound.push(
      nsPerOp(MANY_REPS, () => {
        for (let r = 0; r < MANY_REPS; r++) vcpu.getManyRegs(ids);
      }),
    );
  }
  const eachCalls = countIoctls(loop);
  const plannedCalls = countIoctls(() => vcpu.getManyRegs(ids));
  const planned = new Set<string>();
  setIoctlHook((_fd, request) => planned.add(ioctlName(request)));
  vcpu.getManyRegs(ids);
  setIoctlHook(undefined);
  const speedups = eachRound.map((e, i) => e / (plannedRound[i] ?? NaN));
  return {
    name: "kvm.many_regs.speedup",
    value: Number(median(speedups).toFixed(3)),
    unit: "ratio",
    detail:
      `full x86 view of ${ids.length} ids: one call per item (${eachCalls} ioctls) ` +
      `${(median(eachRound) / 1000).toFixed(1)} us vs planned getManyRegs (${plannedCalls} ioctls: ` +
      `${[...planned].join(", ")}) ${(median(plannedRound) / 1000).toFixed(1)} us; ` +
      `per-round us: each ${fmt(eachRound.map((v) => v / 1000))} planned ${fmt(plannedRound.map((v) => v / 1000))}`,
  };
}

/** The KVM benchmark group. */
export const kvmBench: BenchGroup = {
  name: "kvm",
  async run() {
    const reason = kvmUnavailableReason();
    if (reason !== undefined) return { metrics: [], skip: reason };
    const dir = mkdtempSync(join(tmpdir(), "regvisor-bench-"));
    const allowed = threadCpus();
    try {
      return await measure(dir, allowed);
    } finally {
      if (typeof allowed !== "number") setThreadCpus(allowed);
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

async function measure(
  dir: string,
  allowed: number[] | number,
): Promise<{ metrics: Metric[]; skip?: string }> {
  const cpu = typeof allowed === "number" ? -1 : (allowed[allowed.length - 1] ?? -1);
  if (cpu >= 0) setThreadCpus([cpu]);
  const path = ioctlPath();
  const via = path.kind === "addon" ? "the native addon" : `koffi (${path.reason ?? ""})`;
  const pinned = (cpu >= 0 ? `; TS and C pinned to CPU ${cpu}` : "") + `; TS ioctls via ${via}`;
  using system = KvmSystem.open();
  using guest = bootFlatGuest(system, bundledGuest("exit-loop"));
  const { vcpu } = guest;
  // Warm-up: the guest's mode switches, and the JIT for every loop.
  exitLoopTs(vcpu, 2000);
  oneRegTs(vcpu, 2000);
  regsTs(vcpu, 500);
  syncTs(vcpu, 500);

  const metrics: Metric[] = [];
  const reference = compileReference(dir, "kvm_bench");
  let cSkip: string | undefined;
  if ("binary" in reference) {
    const args = [String(cpu), bundledGuestPath("exit-loop")];
    const cProcess = new CReference(reference.binary, args);
    const cThreadedProcess = new CReference(reference.binary, [...args, "threaded"]);
    const cThreaded = { exit: [] as number[], oneReg: [] as number[] };
    const ts = {
      exit: [] as number[],
      oneReg: [] as number[],
      regs: [] as number[],
      sync: [] as number[],
    };
    const c = {
      exit: [] as number[],
      oneReg: [] as number[],
      regs: [] as number[],
      sync: [] as number[],
    };
    try {
      for (let round = 0; round < ROUNDS; round++) {
        c.exit.push(await runC(cProcess, "exit", EXIT_ITERS));
        cThreaded.exit.push(await runC(cThreadedProcess, "exit", EXIT_ITERS));
        ts.exit.push(exitLoopTs(vcpu, EXIT_ITERS));
        c.oneReg.push(await runC(cProcess, "one_reg", ONE_REG_ITERS));
        cThreaded.oneReg.push(await runC(cThreadedProcess, "one_reg", ONE_REG_ITERS));
        ts.oneReg.push(oneRegTs(vcpu, ONE_REG_ITERS));
        c.regs.push(await runC(cProcess, "regs", SYNC_ITERS));
        ts.regs.push(regsTs(vcpu, SYNC_ITERS));
        c.sync.push(await runC(cProcess, "sync", SYNC_ITERS));
        ts.sync.push(syncTs(vcpu, SYNC_ITERS));
      }
    } finally {
      await cProcess.close();
      await cThreadedProcess.close();
    }
    metrics.push(
      ratioMetric(
        "kvm.exit.ts_over_c",
        "<= 1.10",
        ts.exit,
        c.exit,
        "KVM_RUN + IO exit decode, port-I/O loop guest",
        threadedNote(ts.exit, cThreaded.exit) + pinned,
      ),
      ratioMetric(
        "kvm.one_reg.ts_over_c",
        "<= 1.15",
        ts.oneReg,
        c.oneReg,
        "KVM_GET_ONE_REG of IA32_TSC",
        threadedNote(ts.oneReg, cThreaded.oneReg) + pinned,
      ),
    );
    metrics.push(
      syncMetric(
        ts.regs,
        ts.sync,
        `; C: GET/SET_REGS ${fmt(c.regs)} sync ${fmt(c.sync)} ns, speedup ${median(c.regs.map((r, i) => r / (c.sync[i] ?? NaN))).toFixed(3)}${pinned}`,
      ),
    );
  } else {
    cSkip = reference.skip;
    const regs: number[] = [];
    const sync: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      regs.push(regsTs(vcpu, SYNC_ITERS));
      sync.push(syncTs(vcpu, SYNC_ITERS));
    }
    metrics.push(syncMetric(regs, sync, pinned));
  }
  metrics.push(manyRegs(vcpu));
  return cSkip === undefined ? { metrics } : { metrics, skip: `C reference: ${cSkip}` };
}

function syncMetric(regs: number[], sync: number[], extra: string): Metric {
  const speedups = regs.map((r, i) => r / (sync[i] ?? NaN));
  return {
    name: "kvm.sync_regs.speedup",
    value: Number(median(speedups).toFixed(3)),
    unit: "ratio",
    target: ">= 1.6",
    detail:
      `exit + rax += 1 per exit: KVM_GET_REGS/KVM_SET_REGS ${median(regs).toFixed(0)} ns vs ` +
      `sync regs ${median(sync).toFixed(0)} ns; TS GET/SET ${fmt(regs)} sync ${fmt(sync)} ns${extra}`,
  };
}
