/**
 * Soft backend CPU speed, measured side by side in one run on the same ELF
 * (guests/riscv/src/compute.c: LCG, CRC-32, insertion and heap sort, 64-bit division mix;
 * ~194 million RV64GC instructions per 16 rounds):
 *
 * - soft.mips: guest instructions retired per wall-clock second (millions) by the Hart's default
 *   tiered engine (interpreter for cold code, wasm regions for hot code), compiling included
 *   (median of ROUNDS runs, fresh hart each time, RAM from the soft VM's allocGuestMemory as
 *   the VMM has it); the detail gives every round and the engine's counters;
 * - soft.mips_over_qemu: that over qemu-system-riscv64 (TCG, `-M virt -bios default`) running
 *   the same ELF. QEMU's time is its wall time minus the wall time of a tiny guest (boot and
 *   teardown), and its instruction count the same guest-side count the Hart retires (the
 *   program is deterministic; OpenSBI's few thousand console instructions are noise).
 *   Both sides run a copy of compute.elf with its `compute_rounds` variable patched to
 *   COMPUTE_ROUNDS, so QEMU computes for ~0.4 s rather than ~0.1 s (at 16 rounds its figure was
 *   a small difference of two short runs, and swung 1300-2100 MIPS between runs). One round
 *   runs the hart, then QEMU on the ELF, then QEMU on the tiny guest, so a change in the host's
 *   load hits both sides alike; the ratio is median over median, and every round is in the detail.
 *
 * - soft.mips.js: the stock ELF (16 rounds) with hot regions compiled to JavaScript instead
 *   (HartOptions.tier "js", REGVISOR_SOFT_TIER=js), and its ratio to QEMU in the detail.
 *
 * The reference interpreter's MIPS (a budget-limited slice of the same program) is reported in
 * the detail of soft.mips. Guests are built with guests/riscv/build.sh when missing.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hart, type SoftTier } from "../src/backends/soft/riscv/hart.js";
import { allocGuestMemory } from "../src/backends/soft/vm.js";
import { formatRounds, median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

/** Rounds of each side (hart, QEMU): 5 medians are robust to one or two disturbed runs. */
const ROUNDS = 5;
/** Rounds of the JS translator tier (at ~100-250 MIPS a round of the stock ELF takes ~1-2 s). */
const JS_ROUNDS = 3;
/** compute.c rounds in the patched ELF (16 as built): ~780 M instructions. */
const COMPUTE_ROUNDS = 64;
const RAM_BASE = 0x80000000;
const RAM_SIZE = 64 << 20;
const SBI = { LEGACY_PUTCHAR: 0x01, SRST: 0x53525354 } as const;
const INTERP_SLICE = 20_000_000;

function guestDir(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(d, "guests", "riscv", "build.sh"))) return join(d, "guests", "riscv");
    d = dirname(d);
  }
  return join(process.cwd(), "guests", "riscv");
}

function has(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** Loads an ELF's PT_LOAD segments into a fresh hart (one RAM slot at 0x80000000). */
function load(elf: Uint8Array, translate: boolean, tier?: SoftTier): Hart {
  const dv = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  // The soft VM's own RAM allocation: inside the wasm memory the wasm tier indexes directly.
  const ram = allocGuestMemory(RAM_SIZE);
  const phoff = Number(dv.getBigUint64(0x20, true));
  for (let i = 0; i < dv.getUint16(0x38, true); i++) {
    const p = phoff + i * dv.getUint16(0x36, true);
    if (dv.getUint32(p, true) !== 1) continue;
    const off = Number(dv.getBigUint64(p + 8, true));
    const filesz = Number(dv.getBigUint64(p + 0x20, true));
    ram.set(elf.subarray(off, off + filesz), Number(dv.getBigUint64(p + 0x18, true)) - RAM_BASE);
  }
  const hart = new Hart({ translate, ...(tier === undefined ? {} : { tier }) });
  hart.setMemslots([{ slot: 0, gpa: RAM_BASE, bytes: ram, readonly: false }]);
  hart.setPc(dv.getBigUint64(0x18, true));
  return hart;
}

/** The engine's counters after a run of `instret` instructions, as one detail phrase. */
function counters(hart: Hart, instret: number): string {
  const s: Record<string, unknown> = { ...hart.stats };
  const n = (k: string): number => (typeof s[k] === "number" ? s[k] : 0);
  const wasm =
    n("wasmInsns") > 0
      ? `, ${((100 * n("wasmInsns")) / instret).toFixed(1)}% of instructions in wasm, ` +
        `${n("wasmEntries")} dispatcher entries from JS, ${n("wasmCalls")} region calls in the dispatcher, ` +
        `${n("wasmHelpers")} instructions left to the interpreter (TLB misses, helpers)`
      : "";
  return (
    `${n("compiled")} regions compiled in ${n("compileMs").toFixed(0)} ms, ${n("invalidated")} blocks invalidated, ` +
    `${n("syncs")} fence.i re-checks, ${n("flushes")} whole flushes${wasm}`
  );
}

/** Runs a hart until SRST (or `limit` instructions); answers console putchar. */
function run(
  hart: Hart,
  limit: number,
): { console: string; seconds: number; cpu: number; instret: number } {
  let out = "";
  const start = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  for (;;) {
    const left = limit - Number(hart.instret);
    if (left <= 0) break;
    const stop = hart.run(Math.min(left, 10_000_000));
    if (stop.kind === "budget") continue;
    if (stop.kind !== "ecall")
      throw new Error(`compute guest stopped: ${JSON.stringify(stop.kind)}`);
    const eid = Number(hart.getX(17) & 0xffffffffn);
    if (eid === SBI.SRST) break;
    if (eid === SBI.LEGACY_PUTCHAR) out += String.fromCharCode(Number(hart.getX(10) & 0xffn));
    hart.setX(10, 0n);
    hart.setPc(hart.getPc() + 4n);
  }
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu1 = process.cpuUsage(cpu0);
  return {
    console: out,
    seconds,
    cpu: (cpu1.user + cpu1.system) / 1e6,
    instret: Number(hart.instret),
  };
}

/**
 * CPU seconds (user + system, all threads) of this process's waited-for children: cutime and
 * cstime of /proc/self/stat, in USER_HZ ticks of 1/100 s (proc(5)); NaN without /proc.
 */
function childCpuSeconds(): number {
  try {
    const stat = readFileSync("/proc/self/stat", "utf8");
    // Fields after the command name's closing parenthesis start at field 3 (state).
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return NaN;
  }
}

/** Wall and CPU seconds of one qemu-system-riscv64 run, and its console output. */
function qemu(elf: string): { seconds: number; cpu: number; out: string } {
  const start = process.hrtime.bigint();
  const cpu0 = childCpuSeconds();
  const r = spawnSync(
    "qemu-system-riscv64",
    ["-M", "virt", "-bios", "default", "-nographic", "-monitor", "none", "-kernel", elf],
    { encoding: "utf8", timeout: 120_000 },
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const cpu = childCpuSeconds() - cpu0;
  if (r.status !== 0) throw new Error(`qemu-system-riscv64 failed: ${r.stderr}`);
  return { seconds, cpu, out: r.stdout.replace(/\r/g, "") };
}

/**
 * A copy of ELF `elf` with the u32 variable `symbol` set to `value`: looked up in the symbol
 * table (SHT_SYMTAB and its string table), written at its file offset in the PT_LOAD segment
 * holding it (ELF-64 gABI, "Symbol Table" and "Program Header").
 */
export function patchElfU32(elf: Uint8Array, symbol: string, value: number): Uint8Array {
  const out = Uint8Array.from(elf);
  const dv = new DataView(out.buffer);
  const shoff = Number(dv.getBigUint64(0x28, true));
  const shentsize = dv.getUint16(0x3a, true);
  const shnum = dv.getUint16(0x3c, true);
  const sh = (i: number): { type: number; off: number; size: number; link: number } => {
    const p = shoff + i * shentsize;
    return {
      type: dv.getUint32(p + 4, true),
      off: Number(dv.getBigUint64(p + 0x18, true)),
      size: Number(dv.getBigUint64(p + 0x20, true)),
      link: dv.getUint32(p + 0x28, true),
    };
  };
  let vaddr = -1;
  for (let i = 0; i < shnum && vaddr < 0; i++) {
    const tab = sh(i);
    if (tab.type !== 2) continue; // SHT_SYMTAB
    const str = sh(tab.link);
    for (let p = tab.off; p + 24 <= tab.off + tab.size; p += 24) {
      const at = str.off + dv.getUint32(p, true);
      const end = out.indexOf(0, at);
      if (Buffer.from(out.subarray(at, end)).toString("latin1") !== symbol) continue;
      vaddr = Number(dv.getBigUint64(p + 8, true));
      break;
    }
  }
  if (vaddr < 0)
    throw new Error(`patch ELF: no symbol ${symbol}; rebuild with guests/riscv/build.sh`);
  const phoff = Number(dv.getBigUint64(0x20, true));
  for (let i = 0; i < dv.getUint16(0x38, true); i++) {
    const p = phoff + i * dv.getUint16(0x36, true);
    const va = Number(dv.getBigUint64(p + 0x10, true));
    const filesz = Number(dv.getBigUint64(p + 0x20, true));
    if (dv.getUint32(p, true) !== 1 || vaddr < va || vaddr + 4 > va + filesz) continue;
    dv.setUint32(Number(dv.getBigUint64(p + 8, true)) + vaddr - va, value, true);
    return out;
  }
  throw new Error(`patch ELF: symbol ${symbol} is in no loaded segment`);
}

function skipReason(dir: string): string | undefined {
  const elf = join(dir, "build", "compute.elf");
  if (!existsSync(elf) && has("riscv64-unknown-elf-gcc")) {
    spawnSync("bash", [join(dir, "build.sh")], { stdio: "ignore" });
  }
  if (!existsSync(elf))
    return "guests/riscv/build/compute.elf missing and riscv64-unknown-elf-gcc unavailable";
  return undefined;
}

/** soft.mips and soft.mips_over_qemu. */
export const softCpuBench: BenchGroup = {
  name: "soft-cpu",
  run(): Promise<{ metrics: Metric[]; skip?: string }> {
    const dir = guestDir();
    const skip = skipReason(dir);
    if (skip !== undefined) return Promise.resolve({ metrics: [], skip });
    const stock = readFileSync(join(dir, "build", "compute.elf"));
    const elf = patchElfU32(stock, "compute_rounds", COMPUTE_ROUNDS);
    const tmp = mkdtempSync(join(tmpdir(), "regvisor-bench-"));
    try {
      const elfPath = join(tmp, "compute.elf");
      writeFileSync(elfPath, elf);
      return Promise.resolve(measure(dir, stock, elf, elfPath));
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  },
};

/** The rounds of both sides and the metrics from them. */
function measure(
  dir: string,
  stock: Uint8Array,
  elf: Uint8Array,
  elfPath: string,
): { metrics: Metric[]; skip?: string } {
  const withQemu = has("qemu-system-riscv64");
  const tiny = join(dir, "build", "rv64a.elf");
  const runs: ReturnType<typeof run>[] = [];
  const qc: number[] = [];
  const qt: number[] = [];
  const qcCpu: number[] = [];
  const qtCpu: number[] = [];
  let qemuOut = "";
  let engine = "";
  for (let i = 0; i < ROUNDS; i++) {
    const hart = load(elf, true);
    const r = run(hart, Infinity);
    runs.push(r);
    engine = `engine (last round): ${counters(hart, r.instret)}`;
    if (!withQemu) continue;
    const c = qemu(elfPath);
    qemuOut = c.out;
    qc.push(c.seconds);
    qcCpu.push(c.cpu);
    const t = qemu(tiny);
    qt.push(t.seconds);
    qtCpu.push(t.cpu);
  }
  const first = runs[0];
  if (first === undefined) return { metrics: [], skip: "no rounds" };
  if (runs.some((r) => r.instret !== first.instret || r.console !== first.console))
    throw new Error("compute.elf: rounds of the hart differ in instructions or checksum");
  const mips = runs.map((r) => r.instret / r.seconds / 1e6);
  const ours = median(mips);
  const jsRuns = [];
  let jsEngine = "";
  for (let i = 0; i < JS_ROUNDS; i++) {
    const js = load(stock, true, "js");
    const r = run(js, Infinity);
    jsRuns.push(r);
    jsEngine = counters(js, r.instret);
  }
  const jsMips = jsRuns.map((r) => r.instret / r.seconds / 1e6);
  const jsOurs = median(jsMips);
  const interp = run(load(stock, false), INTERP_SLICE);
  const interpMips = interp.instret / interp.seconds / 1e6;
  const metrics: Metric[] = [
    {
      name: "soft.mips",
      value: ours,
      unit: "MIPS",
      target: ">= 100",
      detail:
        `compute.elf with compute_rounds=${COMPUTE_ROUNDS}, ${first.instret} instructions, ` +
        `engine rounds ${formatRounds(mips, 1)} MIPS (${formatRounds(
          runs.map((r) => r.seconds),
          3,
        )} s); reference interpreter ${interpMips.toFixed(1)} MIPS (first ${INTERP_SLICE} ` +
        `instructions of the stock ELF); ${engine}`,
    },
    {
      name: "soft.mips.js",
      value: jsOurs,
      unit: "MIPS",
      detail:
        `stock compute.elf (16 rounds) on the JS translator tier (REGVISOR_SOFT_TIER=js), rounds ${formatRounds(jsMips, 1)} MIPS; ` +
        jsEngine,
    },
  ];
  if (!withQemu) {
    return { metrics, skip: "qemu-system-riscv64 not installed: soft.mips_over_qemu skipped" };
  }
  const line = qemuOut.split("\n").find((l) => l.startsWith("compute checksum="));
  if (line === undefined || first.console.trim() !== line) {
    throw new Error(`checksums differ: hart "${first.console.trim()}" vs QEMU "${line ?? "none"}"`);
  }
  const qemuSeconds = Math.max(median(qc) - median(qt), 1e-3);
  const qemuMips = first.instret / qemuSeconds / 1e6;
  const perRound = qc.map((c, i) => first.instret / Math.max(c - (qt[i] ?? 0), 1e-3) / 1e6);
  // The same from CPU time (all threads, both sides): steadier than wall time on a loaded host.
  const oursCpu = median(runs.map((r) => r.instret / r.cpu / 1e6));
  const qemuCpu = first.instret / Math.max(median(qcCpu) - median(qtCpu), 1e-3) / 1e6;
  metrics.push({
    name: "soft.mips_over_qemu",
    value: ours / qemuMips,
    unit: "ratio",
    target: ">= 0.75",
    detail:
      `hart median ${ours.toFixed(1)} MIPS over qemu-system-riscv64 TCG ${qemuMips.toFixed(0)} MIPS ` +
      `(median compute ${median(qc).toFixed(3)} s - median boot-only ${median(qt).toFixed(3)} s; ` +
      `same checksum ${line.slice("compute checksum=".length)}); ${ROUNDS} alternating rounds: ` +
      `QEMU compute ${formatRounds(qc, 3)} s, boot-only ${formatRounds(qt, 3)} s ` +
      `(per round ${formatRounds(perRound)} MIPS); by CPU time (all threads) instead: hart ` +
      `${oursCpu.toFixed(0)} MIPS (rounds ${formatRounds(
        runs.map((r) => r.cpu),
        3,
      )} s), QEMU ` +
      `${qemuCpu.toFixed(0)} MIPS (compute ${formatRounds(qcCpu, 2)} s - boot-only ` +
      `${formatRounds(qtCpu, 2)} s, 10 ms ticks) = ${(oursCpu / qemuCpu).toFixed(3)}; ` +
      `JS translator tier ${jsOurs.toFixed(1)} MIPS = ${(jsOurs / qemuMips).toFixed(3)} of QEMU`,
  });
  return { metrics };
}
