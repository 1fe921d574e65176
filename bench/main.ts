/**
 * `npm run bench`: every benchmark group, side by side in one run. Prints a table, or with
 * `--json` one object `{"metrics": {name: value, ...}, "details": {...}, "skipped": {...}}`.
 * Groups that cannot run here (no /dev/kvm, no QEMU) are listed with the reason, never silently
 * dropped. `--only <substring>` runs the groups whose name contains it.
 */
import os from "node:os";
import { kvmBench } from "./kvm.js";
import { softCpuBench } from "./soft-cpu.js";
import { snapshotBench } from "./snapshot.js";
import { softKernelBench } from "./soft-kernel.js";
import { linuxBootBench } from "./linux-boot.js";
import { gdbBench } from "./gdb.js";
import { migrationBench } from "./migration.js";
import { formatTable } from "../src/cli/table.js";
import type { BenchGroup, Metric } from "./types.js";

const GROUPS: readonly BenchGroup[] = [
  kvmBench,
  softCpuBench,
  softKernelBench,
  snapshotBench,
  linuxBootBench,
  gdbBench,
  migrationBench,
];

function machine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  return `${cpu}, ${os.cpus().length} cores, Node ${process.version}, ${os.type()} ${os.release()}`;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes("--json");
  const onlyAt = args.indexOf("--only");
  const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
  const metrics: Metric[] = [];
  const skipped: Record<string, string> = {};
  for (const group of GROUPS) {
    if (only !== undefined && !group.name.includes(only)) continue;
    if (!json) process.stderr.write(`bench: ${group.name} …\n`);
    const result = await group.run();
    metrics.push(...result.metrics);
    if (result.skip !== undefined) skipped[group.name] = result.skip;
  }
  if (json) {
    const out = {
      machine: machine(),
      metrics: Object.fromEntries(metrics.map((m) => [m.name, m.value])),
      details: Object.fromEntries(
        metrics.map((m) => [m.name, { unit: m.unit, target: m.target ?? null, detail: m.detail }]),
      ),
      skipped,
    };
    process.stdout.write(JSON.stringify(out, null, 2) + "\n");
    return;
  }
  process.stdout.write(`machine: ${machine()}\n\n`);
  const rows = metrics.map((m) => [m.name, fmt(m.value), m.unit, m.target ?? "", m.detail]);
  process.stdout.write(formatTable(["metric", "value", "unit", "target", "measured"], rows));
  for (const [name, reason] of Object.entries(skipped)) {
    process.stdout.write(`skipped ${name}: ${reason}\n`);
  }
}

function fmt(value: number): string {
  return Math.abs(value) >= 100 ? value.toFixed(0) : value.toFixed(2);
}

await main();
