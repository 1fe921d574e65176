/**
 * Soft backend CPU speed, measured side by side in one run on the same ELF
 * (guests/riscv/src/compute.c: LCG, CRC-32, insertion and heap sort, 64-bit division mix;
 * ~194 million RV64GC instructions):
 *
 * - soft.mips: guest instructions retired per wall-clock second (millions) by the Hart's default
 *   tiered engine (interpreter for cold code, wasm regions for hot code), compiling included
 *   (median of ROUNDS runs, fresh hart each time, RAM from the soft VM's allocGuestMemory as
 *   the VMM has it); the detail gives the engine's counters;
 * - soft.mips_over_qemu: that over qemu-system-riscv64 (TCG, `-M virt -bios default`) running
 *   the same ELF. QEMU's time is its wall time minus the wall time of a tiny guest (boot and
 *   teardown), and its instruction count the same guest-side count the Hart retires (the
 *   program is deterministic; OpenSBI's few thousand console instructions are noise).
 *
 * - soft.mips.js: the same with hot regions compiled to JavaScript instead (HartOptions.tier
 *   "js", REGVISOR_SOFT_TIER=js), in the same run, and its ratio to QEMU in the detail.
 *
 * The reference interpreter's MIPS (a budget-limited slice of the same program) is reported in
 * the detail of soft.mips. Guests are built with guests/riscv/build.sh when missing.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Hart, type SoftTier } from "../src/backends/soft/riscv/hart.js";
import { allocGuestMemory } from "../src/backends/soft/vm.js";
import { median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

const ROUNDS = 3;
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
        `${n("wasmEntries")} dispatcher entries, ${n("wasmHelpers")} calls from wasm to JS`
      : "";
  return (
    `${n("compiled")} regions compiled in ${n("compileMs").toFixed(0)} ms, ${n("invalidated")} blocks invalidated, ` +
    `${n("syncs")} fence.i re-checks, ${n("flushes")} whole flushes${wasm}`
  );
}

/** Runs a hart until SRST (or `limit` instructions); answers console putchar. */
function run(hart: Hart, limit: number): { console: string; seconds: number; instret: number } {
  let out = "";
  const start = process.hrtime.bigint();
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
  return { console: out, seconds, instret: Number(hart.instret) };
}

/** Wall seconds of one qemu-system-riscv64 run, and its console output. */
function qemu(elf: string): { seconds: number; out: string } {
  const start = process.hrtime.bigint();
  const r = spawnSync(
    "qemu-system-riscv64",
    ["-M", "virt", "-bios", "default", "-nographic", "-monitor", "none", "-kernel", elf],
    { encoding: "utf8", timeout: 120_000 },
  );
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  if (r.status !== 0) throw new Error(`qemu-system-riscv64 failed: ${r.stderr}`);
  return { seconds, out: r.stdout.replace(/\r/g, "") };
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
    const elfPath = join(dir, "build", "compute.elf");
    const elf = readFileSync(elfPath);
    const runs = [];
    const jsRuns = [];
    let engine = "";
    let jsEngine = "";
    // Interleaved, so a change in the host's load hits both tiers alike.
    for (let i = 0; i < ROUNDS; i++) {
      const hart = load(elf, true);
      const r = run(hart, Infinity);
      runs.push(r);
      engine = `engine: ${counters(hart, r.instret)}`;
      const js = load(elf, true, "js");
      jsRuns.push(run(js, Infinity));
      jsEngine = counters(js, r.instret);
    }
    const jsMips = jsRuns.map((r) => r.instret / r.seconds / 1e6);
    const jsOurs = median(jsMips);
    const first = runs[0];
    if (first === undefined) return Promise.resolve({ metrics: [], skip: "no rounds" });
    const mips = runs.map((r) => r.instret / r.seconds / 1e6);
    const ours = median(mips);
    const interp = run(load(elf, false), INTERP_SLICE);
    const interpMips = interp.instret / interp.seconds / 1e6;
    const metrics: Metric[] = [
      {
        name: "soft.mips",
        value: ours,
        unit: "MIPS",
        target: ">= 100",
        detail:
          `compute.elf, ${first.instret} instructions, engine rounds ${mips.map((m) => m.toFixed(1)).join(", ")} MIPS; ` +
          `reference interpreter ${interpMips.toFixed(1)} MIPS (first ${INTERP_SLICE} instructions); ${engine}`,
      },
      {
        name: "soft.mips.js",
        value: jsOurs,
        unit: "MIPS",
        detail:
          `compute.elf on the JS translator tier (REGVISOR_SOFT_TIER=js), rounds ${jsMips.map((m) => m.toFixed(1)).join(", ")} MIPS; ` +
          `${jsEngine}; same checksum: ${String(jsRuns[0]?.console === first.console)}`,
      },
    ];
    if (!has("qemu-system-riscv64")) {
      return Promise.resolve({
        metrics,
        skip: "qemu-system-riscv64 not installed: soft.mips_over_qemu skipped",
      });
    }
    const tiny = join(dir, "build", "rv64a.elf");
    const qc: number[] = [];
    const qt: number[] = [];
    let qemuOut = "";
    for (let i = 0; i < ROUNDS; i++) {
      const c = qemu(elfPath);
      qemuOut = c.out;
      qc.push(c.seconds);
      qt.push(qemu(tiny).seconds);
    }
    const line = qemuOut.split("\n").find((l) => l.startsWith("compute checksum="));
    if (line === undefined || first.console.trim() !== line) {
      throw new Error(
        `checksums differ: hart "${first.console.trim()}" vs QEMU "${line ?? "none"}"`,
      );
    }
    const qemuSeconds = Math.max(median(qc) - median(qt), 1e-3);
    const qemuMips = first.instret / qemuSeconds / 1e6;
    metrics.push({
      name: "soft.mips_over_qemu",
      value: ours / qemuMips,
      unit: "ratio",
      detail:
        `hart ${ours.toFixed(1)} MIPS over qemu-system-riscv64 TCG ${qemuMips.toFixed(0)} MIPS ` +
        `(QEMU compute ${median(qc).toFixed(3)} s - boot-only ${median(qt).toFixed(3)} s; same checksum); ` +
        `JS translator tier ${jsOurs.toFixed(1)} MIPS = ${(jsOurs / qemuMips).toFixed(3)} of QEMU`,
    });
    return Promise.resolve({ metrics });
  },
};
