/**
 * Booting the Linux test guest (scripts/build-linux.sh) to /init's first line, side by side:
 *
 * - soft.linux_boot.s: `node dist/bin/regvisor.js run --backend soft …` with 1 vCPU and
 *   `console=hvc0 earlycon=sbi`, seconds from spawning the process to `init: started` on its
 *   stdout (process start, Image load, the whole kernel boot, /init's exec);
 * - soft.linux_boot.over_qemu: the same over `qemu-system-riscv64 -M virt -smp 1` (TCG,
 *   OpenSBI) booting the same Image with the same command line to the same line.
 *
 * The two alternate round by round, 5 rounds (QEMU's boot here is bimodal, ~0.3 or ~0.45 s, so
 * three rounds swung the ratio by its mode alone); the seconds are the median over rounds, the
 * ratio the median of the per-round ratios. Skips visibly when the kernel for the current inputs
 * has not been built (no build here: it takes minutes) or when QEMU is missing.
 *
 * - soft.linux_boot.wasm_share: one more boot, in this process on the machine `regvisor run`
 *   builds, for the engine's per-tier counters at /init's first line (so regressions show):
 *   the share of instructions retired in wasm regions (the rest ran in the fast interpreter),
 *   regions compiled and the milliseconds compiling took, blocks invalidated, fence.i re-checks.
 */
import { readFileSync } from "node:fs";
import { Hart } from "../src/backends/soft/riscv/hart.js";
import { softBackend } from "../src/cli/backends.js";
import { runGuest } from "../src/vmm/runner.js";
import {
  type Boot,
  type BootOptions,
  bootLinux,
  bootQemu,
  hasCommand,
  LINUX_LOAD_ADDR,
  linuxImage,
} from "../test/linux/guest.js";
import { formatRounds, median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

const ROUNDS = 5;
const BOOT: BootOptions = { cmdline: "console=hvc0 earlycon=sbi", timeoutMs: 300_000 };

/** Seconds to /init's first line, or a thrown one-line reason when the boot never got there. */
function toInit(boot: Boot, what: string, cpu: number[]): number {
  if (boot.firstInitMs === undefined) {
    const tail = (boot.stderr.trim().split("\n").at(-1) ?? "").slice(0, 200);
    const how = boot.timedOut ? "timed out" : `ended with status ${String(boot.status)}`;
    throw new Error(`${what} never reached /init (${how}): ${tail}`);
  }
  cpu.push(boot.firstInitCpuS ?? NaN);
  return boot.firstInitMs / 1000;
}

interface Rounds {
  readonly soft: number[];
  readonly qemu: number[];
  /** CPU seconds (all threads) each process had used at /init's first line. */
  readonly softCpu: number[];
  readonly qemuCpu: number[];
}

async function measure(image: string, withQemu: boolean): Promise<Rounds> {
  const r: Rounds = { soft: [], qemu: [], softCpu: [], qemuCpu: [] };
  for (let round = 0; round < ROUNDS; round++) {
    r.soft.push(toInit(await bootLinux(image, BOOT), "regvisor soft", r.softCpu));
    if (withQemu) r.qemu.push(toInit(await bootQemu(image, BOOT), "QEMU", r.qemuCpu));
  }
  return r;
}

/** The engine's counters of an in-process boot at /init's first line, and its seconds. */
interface TierCounts {
  readonly seconds: number;
  readonly instret: number;
  readonly stats: Readonly<Record<string, unknown>>;
}

/** Boots `image` in this process (the inline soft machine of `regvisor run`) past /init. */
async function tierCounts(image: string): Promise<TierCounts | undefined> {
  let hart: Hart | undefined;
  const backend = softBackend("inline", (id) => (hart = new Hart({ hartId: id })));
  let text = "";
  let at: TierCounts | undefined;
  const decoder = new TextDecoder();
  const start = performance.now();
  await runGuest({
    file: readFileSync(image),
    backendFor: () => backend,
    backend: "soft",
    memSize: 256n << 20n,
    loadAddr: BigInt(LINUX_LOAD_ADDR),
    cmdline: BOOT.cmdline,
    timeoutMs: 120_000,
    collectRegisters: false,
    output: (bytes) => {
      if (at !== undefined || hart === undefined) return;
      text = (text + decoder.decode(bytes, { stream: true })).slice(-64);
      if (!text.includes("init: started")) return;
      const seconds = (performance.now() - start) / 1000;
      at = { seconds, instret: Number(hart.instret), stats: { ...hart.stats } };
    },
  });
  return at;
}

/** The per-tier metric of `t` (see the module comment). */
function tierMetric(t: TierCounts): Metric {
  const n = (k: string): number => (typeof t.stats[k] === "number" ? t.stats[k] : 0);
  const share = (100 * n("wasmInsns")) / t.instret;
  const m = (v: number): string => (v / 1e6).toFixed(1);
  return {
    name: "soft.linux_boot.wasm_share",
    value: share,
    unit: "%",
    detail:
      `in-process boot to /init (${t.seconds.toFixed(2)} s): ${m(t.instret)} M instructions, ` +
      `${m(n("wasmInsns"))} M in wasm regions, ${m(t.instret - n("wasmInsns"))} M in the fast ` +
      `interpreter; ${String(n("compiled"))} regions compiled in ${n("compileMs").toFixed(0)} ms, ` +
      `${String(n("invalidated"))} blocks invalidated, ${String(n("syncs"))} fence.i re-checks, ` +
      `${String(n("flushes"))} whole flushes, ${String(n("walks"))} page-table walks`,
  };
}

/** The Linux boot benchmark group. */
export const linuxBootBench: BenchGroup = {
  name: "soft-linux-boot",
  async run() {
    const found = linuxImage();
    if ("skip" in found) {
      return {
        metrics: [],
        skip: `Linux guest not built (bash scripts/build-linux.sh): ${found.skip}`,
      };
    }
    const withQemu = hasCommand("qemu-system-riscv64");
    const { soft, qemu, softCpu, qemuCpu } = await measure(found.image, withQemu);
    const where = `1 vCPU, 256M, "${BOOT.cmdline}", spawn to "init: started"`;
    const metrics: Metric[] = [
      {
        name: "soft.linux_boot.s",
        value: median(soft),
        unit: "s",
        target: "<= 17 (not slower)",
        detail:
          `regvisor soft, ${where}; s/round ${formatRounds(soft, 2)} (CPU s, all threads: ` +
          `${formatRounds(softCpu, 2)}); median of ${ROUNDS}`,
      },
    ];
    const tiers = await tierCounts(found.image);
    if (tiers === undefined) throw new Error("the in-process soft boot never reached /init");
    metrics.push(tierMetric(tiers));
    if (!withQemu) return { metrics, skip: "QEMU: qemu-system-riscv64 not installed" };
    const ratios = soft.map((s, i) => s / (qemu[i] ?? NaN));
    metrics.push({
      name: "soft.linux_boot.over_qemu",
      value: median(ratios),
      unit: "ratio",
      target: "<= 2.0 (issue 13; moonshot <= 1.0)",
      detail:
        `regvisor soft s/round ${formatRounds(soft, 2)} vs QEMU TCG -M virt -smp 1 (OpenSBI) ` +
        `s/round ${formatRounds(qemu, 2)} (CPU s ${formatRounds(qemuCpu, 2)}), ${where}; ` +
        `median of ${ROUNDS} per-round ratios`,
    });
    return { metrics };
  },
};
