/**
 * `npm run bench`: every benchmark group, side by side in one run. Prints a table, or with
 * `--json` one object `{"metrics": {name: value, ...}, "details": {...}, "skipped": {...}}`.
 * Groups that cannot run here (no /dev/kvm, no QEMU) are listed with the reason, never silently
 * dropped. `--only <substring>` runs the groups whose name contains it.
 */
import os from "node:os";
import { parseArgs } from "node:util";
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

const USAGE = `usage: npm run bench -- [--json] [--only SUBSTRING]
  --json            one JSON object {"metrics", "details", "skipped"} on stdout
  --only SUBSTRING  run only the groups whose name contains SUBSTRING
groups: ${GROUPS.map((g) => g.name).join(", ")}
`;

/** The command line, or a one-line reason it is wrong. */
function options(
  args: readonly string[],
): { json: boolean; only?: string; help: boolean } | string {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      options: {
        json: { type: "boolean" },
        only: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    return error instanceof Error ? (error.message.split("\n")[0] ?? "") : String(error);
  }
  const { json = false, only, help = false } = parsed.values;
  if (only !== undefined && !GROUPS.some((g) => g.name.includes(only))) {
    return `--only ${JSON.stringify(only)} matches no group (groups: ${GROUPS.map((g) => g.name).join(", ")})`;
  }
  return only === undefined ? { json, help } : { json, only, help };
}

async function main(): Promise<void> {
  const parsed = options(process.argv.slice(2));
  if (typeof parsed === "string") {
    process.stderr.write(`bench: ${parsed}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (parsed.help) {
    process.stdout.write(USAGE);
    return;
  }
  const { json, only } = parsed;
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
