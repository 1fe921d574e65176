/**
 * Snapshot benchmarks: saving and restoring a whole vCPU state through the register list.
 *
 * - kvm.snapshot.ts_over_c: the x86 demo vCPU (in-kernel irqchip, stopped after exit 70):
 *   `captureVcpu()` (REG_LIST + one getManyRegs of the 52-register view: every struct ioctl,
 *   all MSRs in one KVM_GET_MSRS, CPUID, TSC kHz, LAPIC) then `restoreVcpu()` of that state
 *   into the same vCPU (planning reads, then one setManyRegs per ordering phase, each reading
 *   its rollback copy first). The ioctls this issues are recorded (names, and the MSR indices
 *   of each MSR call) and replayed in a loop by bench/c/snapshot_bench.c, compiled with cc -O2
 *   at bench time and started once (bench/c-reference.ts says why), on the same guest state; the figure is TS time over C time per save +
 *   restore, median of interleaved rounds, both pinned to one CPU.
 * - soft.snapshot.us: the RISC-V demo vCPU (inline, stopped after exit 2): `captureVcpu()` of
 *   its 142 registers (CONFIG, CORE, CSR, TIMER, FP_F, FP_D, ISA_EXT, SBI_EXT) and
 *   `restoreVcpu()` into a never-run vCPU (after the first run SBI_EXT writes are EBUSY, so a
 *   restore target is always fresh), in microseconds; threaded mode in `detail`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { msrIndexOf } from "../src/abi/arch/x86/index.js";
import { ioctlName } from "../src/abi/kvm/ioctls.js";
import type { RegId } from "../src/abi/regid.js";
import { setIoctlHook, setThreadCpus, threadCpus } from "../src/backends/kvm/ffi.js";
import { kvmUnavailableReason } from "../src/backends/kvm/index.js";
import { bundledGuestPath } from "../src/backends/kvm/flat-guest.js";
import type { SoftMode } from "../src/backends/soft/index.js";
import type { Vcpu } from "../src/backends/vcpu.js";
import {
  CaptureBuffer,
  captureVcpu,
  resolveRestoreOptions,
  restoreVcpu,
} from "../src/vmm/snapshot/index.js";
import { kvmDemo, softDemo } from "../test/vmm/snapshot/demo-steppers.js";
import { planVcpuRestore } from "../src/vmm/snapshot/plan.js";
import { CReference, compileReference } from "./c-reference.js";
import { formatRounds, median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

const ROUNDS = 7;
// The KVM ratio: more rounds than the others, as its TS rounds swing with V8's background work
// (a recompile, a scavenge) while the C rounds do not, so the median needs more of them.
const KVM_ROUNDS = 11;
const KVM_REPS = 300;
const KVM_WARMUP = 10_000;
const SOFT_REPS = 300;
const KVM_EXITS = 70;

const fmt = (values: readonly number[], digits = 1): string => formatRounds(values, digits);

/** CPU and wall microseconds per repetition of `fn`. */
function usPer(reps: number, fn: () => void): { cpu: number; wall: number } {
  const wall = process.hrtime.bigint();
  const cpu = process.cpuUsage();
  for (let i = 0; i < reps; i++) fn();
  const used = process.cpuUsage(cpu);
  return {
    cpu: (used.user + used.system) / reps,
    wall: Number(process.hrtime.bigint() - wall) / 1000 / reps,
  };
}

function saveRestore(src: Vcpu, dst: Vcpu, into?: CaptureBuffer): void {
  restoreVcpu(dst, captureVcpu(src, into === undefined ? {} : { into }), src.arch);
}

/** The ioctls one save + restore issues, as spec lines for the C replay. */
function recordSpec(vcpu: Vcpu): { lines: string[]; ioctls: number } {
  const state = captureVcpu(vcpu);
  const msrHex = (ids: readonly RegId[]): string =>
    ids
      .map((id) => msrIndexOf(id))
      .filter((m): m is number => m !== undefined)
      .map((m) => "0x" + m.toString(16))
      .join(",");
  // MSR calls in order: save (all), planning read (all), then GET + SET per phase with MSRs.
  const all = msrHex(state.regs.map((r) => r.id));
  const plan = planVcpuRestore(vcpu, state, "x86", resolveRestoreOptions());
  const msrLists = [all, all];
  for (const p of plan.phases) {
    const list = msrHex(p.ids);
    if (list !== "") msrLists.push(list, list);
  }
  const names: string[] = [];
  setIoctlHook((_fd, request) => names.push(ioctlName(request)));
  try {
    saveRestore(vcpu, vcpu);
  } finally {
    setIoctlHook(undefined);
  }
  const lines = names.map((name) => {
    if (name !== "KVM_GET_MSRS" && name !== "KVM_SET_MSRS") return name;
    const list = msrLists.shift();
    if (list === undefined) throw new Error("more MSR calls than the plan predicts");
    return `${name} ${list}`;
  });
  if (msrLists.length > 0) throw new Error("fewer MSR calls than the plan predicts");
  return { lines, ioctls: names.length };
}

/** One C measurement: CPU and wall microseconds per replay of the whole sequence. */
async function runC(reference: CReference): Promise<{ cpu: number; wall: number }> {
  const answer = await reference.ask(String(KVM_REPS));
  const [cpuNs = NaN, wallNs = NaN] = answer.trim().split(" ").map(Number);
  return { cpu: cpuNs / 1000, wall: wallNs / 1000 };
}

async function kvmMetric(dir: string): Promise<Metric | string> {
  const built = compileReference(dir, "snapshot_bench");
  if ("skip" in built) return built.skip;
  const allowed = threadCpus();
  const cpu = typeof allowed === "number" ? -1 : (allowed[allowed.length - 1] ?? -1);
  if (cpu >= 0) setThreadCpus([cpu]);
  try {
    using m = kvmDemo({ irqchip: true });
    m.runTo(KVM_EXITS);
    m.quiesce();
    const vcpu = m.kvmVcpu;
    // Record first: installing the ioctl hook deoptimizes every function that inlined the
    // hook-free ioctl path, so recording after the warm-up would measure recompilation.
    saveRestore(vcpu, vcpu);
    const { lines, ioctls } = recordSpec(vcpu);
    // Then warm up until V8 has optimized the whole path. Measured with --trace-opt: after
    // 3,000 iterations, planVcpuRestore, getManyRegs, regList and setTscKhz still got their
    // first optimized code during the rounds (~6,600 iterations in), each compile 10-25 ms of
    // compiler-thread CPU charged to the round it fell in; after 10,000 none is left.
    // Both variants, interleaved: the headline captures into a reused buffer, as a snapshot
    // or migration loop does (and as the C replay reuses its static structs); the detail also
    // gives a fresh buffer per capture.
    const reused = new CaptureBuffer();
    for (let i = 0; i < KVM_WARMUP; i++) saveRestore(vcpu, vcpu, i % 2 === 0 ? reused : undefined);
    const spec = join(dir, "snapshot.spec");
    writeFileSync(spec, lines.join("\n") + "\n");
    const ts: { cpu: number; wall: number }[] = [];
    const c: { cpu: number; wall: number }[] = [];
    const args = [String(cpu), bundledGuestPath("demo"), String(KVM_EXITS), spec];
    const reference = new CReference(built.binary, args);
    const threaded = new CReference(built.binary, [...args, "threaded"]);
    const cThreaded: { cpu: number; wall: number }[] = [];
    const fresh: { cpu: number; wall: number }[] = [];
    try {
      // Round -1 is discarded: the first pass through the awaits and both C processes is
      // where V8 still deoptimizes and recompiles (measured: 60-120 us per iteration of
      // compiler-thread CPU in that round, none later).
      for (let round = -1; round < KVM_ROUNDS; round++) {
        const cRound = await runC(reference);
        const threadedRound = await runC(threaded);
        const tsRound = usPer(KVM_REPS, () => {
          saveRestore(vcpu, vcpu, reused);
        });
        const freshRound = usPer(KVM_REPS, () => {
          saveRestore(vcpu, vcpu);
        });
        if (round < 0) continue;
        c.push(cRound);
        cThreaded.push(threadedRound);
        ts.push(tsRound);
        fresh.push(freshRound);
      }
    } finally {
      await reference.close();
      await threaded.close();
    }
    const ratios = ts.map((t, i) => t.cpu / (c[i]?.cpu ?? NaN));
    const wallRatios = ts.map((t, i) => t.wall / (c[i]?.wall ?? NaN));
    const regs = vcpu.regList().length;
    const kinds = [...new Set(lines.map((l) => l.split(" ")[0]))].join(" ");
    return {
      name: "kvm.snapshot.ts_over_c",
      value: Number(median(ratios).toFixed(3)),
      unit: "ratio",
      target: "<= 1.3",
      detail:
        `save + restore of the full x86 view (${regs} registers, ${ioctls} ioctls: ${kinds}), ` +
        `captureVcpu into a reused CaptureBuffer; ` +
        `CPU time per save + restore, median TS ${median(ts.map((t) => t.cpu)).toFixed(1)} us vs C ${median(c.map((x) => x.cpu)).toFixed(1)} us; ` +
        `TS ${fmt(ts.map((t) => t.cpu))} C ${fmt(c.map((x) => x.cpu))} us; wall-clock ratio ${median(wallRatios).toFixed(3)} ` +
        `(TS ${fmt(ts.map((t) => t.wall))} C ${fmt(c.map((x) => x.wall))} us); ${KVM_ROUNDS} interleaved rounds of ${KVM_REPS} after ${KVM_WARMUP} warm-up iterations and one discarded round` +
        (cpu >= 0 ? `, pinned to CPU ${cpu}` : "") +
        // The same replay in a process with one more (idle) thread, as Node and real C VMMs
        // have: the kernel then refcounts the fd on each ioctl. Context, not the target.
        `; C with a second, idle thread: CPU ${fmt(cThreaded.map((x) => x.cpu))} us, TS over it ` +
        median(ts.map((t, i) => t.cpu / (cThreaded[i]?.cpu ?? NaN))).toFixed(3) +
        // Without the reused buffer: a new ~24 KiB buffer per capture, freed by the GC later.
        `; a fresh buffer per capture: CPU ${fmt(fresh.map((x) => x.cpu))} us, TS over C ` +
        median(fresh.map((t, i) => t.cpu / (c[i]?.cpu ?? NaN))).toFixed(3),
    };
  } finally {
    if (typeof allowed !== "number") setThreadCpus(allowed);
  }
}

function softRounds(mode: SoftMode): { us: number[]; regs: number } {
  using src = softDemo({ mode });
  src.runTo(2);
  src.quiesce();
  // A never-run destination of the same shape.
  using dst = softDemo({ mode });
  const from = src.vcpu;
  const to = dst.vcpu;
  for (let i = 0; i < 500; i++) saveRestore(from, to); // JIT warm-up
  const us: number[] = [];
  for (let round = 0; round < ROUNDS; round++)
    us.push(
      usPer(SOFT_REPS, () => {
        saveRestore(from, to);
      }).wall,
    );
  return { us, regs: from.regList().length };
}

function softMetric(): Metric {
  const inline = softRounds("inline");
  const threaded = softRounds("threaded");
  return {
    name: "soft.snapshot.us",
    value: Number(median(inline.us).toFixed(1)),
    unit: "us",
    detail:
      `inline: captureVcpu (REG_LIST + one getManyRegs) + restoreVcpu (planning + one setManyRegs per phase) of ${inline.regs} registers into a never-run vCPU, per-round ${fmt(inline.us)} us; ` +
      `threaded (each call a mailbox crossing): median ${median(threaded.us).toFixed(1)} us, per-round ${fmt(threaded.us)} us; ${ROUNDS} rounds of ${SOFT_REPS}`,
  };
}

/** The snapshot benchmark group. */
export const snapshotBench: BenchGroup = {
  name: "snapshot",
  async run() {
    const metrics: Metric[] = [softMetric()];
    const reason = kvmUnavailableReason();
    if (reason !== undefined) return { metrics, skip: `kvm: ${reason}` };
    const dir = mkdtempSync(join(tmpdir(), "regvisor-snapbench-"));
    try {
      const kvm = await kvmMetric(dir);
      if (typeof kvm === "string") return { metrics, skip: `kvm C reference: ${kvm}` };
      return { metrics: [kvm, ...metrics] };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};
