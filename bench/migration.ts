/**
 * Live migration (issue 15 point 6), side by side with QEMU 7.2 in the same run:
 *
 * - migration.{4m,64m}.downtime_ms / total_ms: a 256 MiB RISC-V guest of ours
 *   (guests/riscv/migrate/dirty.c) rewriting 4 MiB or 64 MiB continuously, moved between two
 *   `regvisor run` processes over TCP on loopback (`PUT /migrate` on the source's control
 *   socket, default 300 ms downtime limit, bandwidth uncapped);
 * - the same ELF under `qemu-system-riscv64 -M virt -m 256M` (OpenSBI, TCG), moved by QMP
 *   `migrate` over loopback to a second QEMU started with `-incoming`, with `max-bandwidth`
 *   uncapped and `downtime-limit` 300 ms; QEMU's own `total-time` and `downtime`.
 *
 * Each figure is the median of five migrations per side (regvisor and QEMU taking turns, each
 * after its guest has run ~1 s), every run listed in the detail; the machine is shared, so they
 * are provisional. QEMU runs without auto-converge (its default), as regvisor has no
 * throttling: both move the working set at full speed. Downtime is compared as the guest sees
 * it on both sides, from timestamps on one host clock: regvisor's from the source's pause (its
 * migration status's `pausedAt`) to the guest running at the destination (the destination's
 * `GET /status` `startedAt`), QEMU's from the source's STOP event to the destination's RESUME
 * event. QEMU's own `downtime` figure ends on the source once it has
 * written the last bytes (migration.c `migration_calculate_complete`, no return path by
 * default), leaving out the destination's share; it is in the detail, next to regvisor's
 * figure measured the same way.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiRequest } from "../src/vmm/api/client.js";
import type { MigrationStatus } from "../src/vmm/migration/source.js";
import { crc32cPath } from "../src/vmm/snapshot/crc32c.js";
import { formatRounds, median } from "./stats.js";
import type { BenchGroup, Metric } from "./types.js";

const GUESTS = "guests/riscv/migrate";
const CLI = "dist/src/cli/bin.js";

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function hasCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`]).status === 0;
}

/** Resolves once `child`'s stdout (or a file it writes) shows `pattern`. */
function waitFor(child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => {
      reject(
        new Error(`no ${String(pattern)} within ${timeoutMs} ms; output: ${text.slice(-300)}`),
      );
    }, timeoutMs);
    child.stdout?.on("data", (chunk: Buffer) => {
      text += chunk.toString();
      if (pattern.test(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
  });
}

function freePort(base: number, attempt: number): number {
  return base + ((process.pid + attempt * 7) % 1000);
}

/**
 * Passes over its dirty set the guest made in its first 10 ticks (1 s of guest time), from its
 * "tick 10 pass P" line: how fast each VMM's vCPU dirties the same payload.
 */
function passesAtTick10(text: string): number {
  const m = /tick 10 pass (\d+)/.exec(text);
  return m === null ? NaN : Number(m[1]) - 1;
}

/** One regvisor migration: the source's final status, and the guest's pause as it saw it. */
interface OurRun extends MigrationStatus {
  /**
   * From the source's pause (`pausedAt`) to the guest running at the destination (its
   * `GET /status` `startedAt`), ms: one host clock, as QEMU's STOP → RESUME.
   */
  readonly pauseToResume: number;
}

/** One regvisor migration of `elf`: the source's final status, and its guest's dirty passes. */
async function regvisorOnce(
  elf: string,
  dir: string,
  port: number,
): Promise<{ status: OurRun; passes: number }> {
  const dstApi = join(dir, "dst.sock");
  const srcApi = join(dir, "src.sock");
  const uri = `tcp:127.0.0.1:${port}`;
  const dst = spawn(process.execPath, [CLI, "run", "--incoming", uri, "--api", dstApi], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const src = spawn(process.execPath, [CLI, "run", "--mem", "256M", "--api", srcApi, elf], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    const passes = passesAtTick10(await waitFor(src, /tick 10 pass \d+\r?\n/, 30_000));
    const answer = await apiRequest(srcApi, "PUT", "/migrate", { uri }, 120_000);
    const status = answer.body as MigrationStatus;
    if (status.status !== "completed")
      throw new Error(`regvisor migration failed: ${status.error ?? JSON.stringify(answer.body)}`);
    await waitFor(dst, /tick \d+ /, 10_000);
    const there = (await apiRequest(dstApi, "GET", "/status")).body as { startedAt?: number };
    if (there.startedAt === undefined || status.pausedAt === undefined)
      throw new Error("regvisor reported no pausedAt (source) or startedAt (destination)");
    const pauseToResume = Math.round((there.startedAt - status.pausedAt) * 10) / 10;
    return { status: { ...status, pauseToResume }, passes };
  } finally {
    await apiRequest(dstApi, "PUT", "/quit").catch(() => undefined);
    src.kill();
    dst.kill();
  }
}

/** A QMP command call. */
type QmpCall = (command: string, args?: object) => Promise<Record<string, unknown>>;

/** A QMP event as received: its name and QEMU's host-clock timestamp in ms. */
interface QmpEvent {
  readonly event: string;
  readonly atMs: number;
}

/** A QMP session (JSON lines over a Unix socket); `events` fills as QEMU sends them. */
async function qmp(path: string): Promise<{ call: QmpCall; events: QmpEvent[] }> {
  for (let i = 0; ; i++) {
    if (existsSync(path)) break;
    if (i > 200) throw new Error(`QEMU made no QMP socket at ${path}`);
    await sleep(25);
  }
  const socket = createConnection(path);
  let buffer = "";
  const waiters: ((line: Record<string, unknown>) => void)[] = [];
  const events: QmpEvent[] = [];
  socket.on("data", (chunk: Buffer) => {
    buffer += chunk.toString();
    for (;;) {
      const nl = buffer.indexOf("\n");
      if (nl < 0) break;
      const msg = JSON.parse(buffer.slice(0, nl)) as Record<string, unknown>;
      buffer = buffer.slice(nl + 1);
      if ("return" in msg || "error" in msg || "QMP" in msg) waiters.shift()?.(msg);
      else if (typeof msg.event === "string") {
        const t = msg.timestamp as { seconds: number; microseconds: number };
        events.push({ event: msg.event, atMs: t.seconds * 1000 + t.microseconds / 1000 });
      }
    }
  });
  const next = (): Promise<Record<string, unknown>> =>
    new Promise((resolve) => waiters.push(resolve));
  await next();
  const call = async (command: string, args?: object): Promise<Record<string, unknown>> => {
    const reply = next();
    socket.write(
      JSON.stringify({ execute: command, ...(args === undefined ? {} : { arguments: args }) }) +
        "\n",
    );
    const r = await reply;
    if ("error" in r) throw new Error(`QMP ${command}: ${JSON.stringify(r.error)}`);
    return r;
  };
  await call("qmp_capabilities");
  return { call, events };
}

/**
 * One QEMU migration of `elf`: QEMU's `total-time` and `downtime`, and the pause the guest
 * really sees: from the source's STOP event to the destination's RESUME event (QMP event
 * timestamps, the same host clock).
 */
async function qemuOnce(
  elf: string,
  dir: string,
  port: number,
): Promise<{
  total: number;
  downtime: number;
  stopToResume: number;
  ram: string;
  passes: number;
}> {
  const common = [
    "-M",
    "virt",
    "-m",
    "256M",
    "-bios",
    "default",
    "-kernel",
    elf,
    "-display",
    "none",
    "-monitor",
    "none",
  ];
  const dst = spawn(
    "qemu-system-riscv64",
    [
      ...common,
      "-serial",
      "stdio",
      "-qmp",
      `unix:${join(dir, "dq")},server=on,wait=off`,
      "-incoming",
      `tcp:127.0.0.1:${port}`,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  const src = spawn(
    "qemu-system-riscv64",
    [...common, "-serial", "stdio", "-qmp", `unix:${join(dir, "sq")},server=on,wait=off`],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  try {
    const passes = passesAtTick10(await waitFor(src, /tick 10 pass \d+\r?\n/, 30_000));
    const destination = await qmp(join(dir, "dq"));
    const { call, events } = await qmp(join(dir, "sq"));
    await call("migrate-set-parameters", { "max-bandwidth": 2 ** 40, "downtime-limit": 300 });
    await call("migrate", { uri: `tcp:127.0.0.1:${port}` });
    for (;;) {
      const r = (await call("query-migrate")).return as Record<string, unknown>;
      if (r.status === "completed") {
        await waitFor(dst, /tick \d+ /, 10_000);
        const stop = events.find((e) => e.event === "STOP");
        const resume = destination.events.find((e) => e.event === "RESUME");
        if (stop === undefined || resume === undefined)
          throw new Error("QEMU sent no STOP (source) or RESUME (destination) event");
        return {
          total: Number(r["total-time"]),
          downtime: Number(r.downtime),
          stopToResume: Math.round(resume.atMs - stop.atMs),
          ram: qemuRam(r.ram as Record<string, number> | undefined),
          passes,
        };
      }
      if (r.status === "failed") throw new Error(`QEMU migration failed: ${JSON.stringify(r)}`);
      await sleep(5);
    }
  } finally {
    src.kill();
    dst.kill();
  }
}

/** QEMU's RAM counters of a completed migration (query-migrate `ram`), for the detail. */
function qemuRam(ram: Record<string, number> | undefined): string {
  if (ram === undefined) return "no ram stats";
  const mib = ((ram.transferred ?? 0) / 1048576).toFixed(1);
  return `${mib} MiB sent, ${ram["dirty-sync-count"] ?? "?"} dirty-log syncs, ${ram.normal ?? "?"} data pages, ${ram.duplicate ?? "?"} zero pages, dirty rate ${ram["dirty-pages-rate"] ?? "?"} pages/s`;
}

/** regvisor's downtime measured as QEMU's `downtime` is: pause until the source wrote END. */
function sourceSide(status: MigrationStatus): string {
  const p = status.phases ?? {};
  const ms = ["pause", "final", "capture", "state"].reduce((n, k) => n + (p[k] ?? 0), 0);
  return ms.toFixed(1);
}

/** "connect 1.6, header 1.3, round1 …" (`MigrationStatus.phases` and the like). */
function phaseList(phases: Readonly<Record<string, number>> | undefined): string {
  return Object.entries(phases ?? {})
    .map(([name, ms]) => `${name} ${ms}`)
    .join(", ");
}

/** Where the total went, and the destination's share of the switchover when it tells. */
function phases(status: MigrationStatus): string {
  const own = phaseList(status.phases);
  const theirs = status.destinationPhases;
  if (theirs === undefined) return own;
  const cpu = status.destinationCpuMs === undefined ? "" : `, cpu ${status.destinationCpuMs}`;
  return `${own}; destination ${phaseList(theirs)}${cpu}`;
}

/**
 * Migrations per side per payload; the metric is their median (one migration swings by 2-20 ms
 * on a shared host, on both sides: three left the median to one of them).
 */
const RUNS = 5;

/** One regvisor migration's figures for the detail. */
function ourRun(s: OurRun): string {
  return `${s.pauseToResume}/${s.totalMs ?? "?"} ms (GO left at ${s.downtimeMs ?? "?"} ms; ${s.rounds ?? "?"} rounds, ${s.finalPages ?? "?"} pages at switchover; phases ${phases(s)})`;
}

/** One QEMU migration's figures for the detail. */
function qemuRun(q: QemuResult): string {
  return `${q.stopToResume}/${q.total} ms (own downtime ${q.downtime} ms; ${q.ram})`;
}

type QemuResult = Awaited<ReturnType<typeof qemuOnce>>;

/** The `RUNS` migrations of one payload, regvisor and QEMU taking turns. */
async function payloadRuns(
  elf: string,
  dir: string,
  size: string,
  withQemu: boolean,
): Promise<{ ours: OurRun[]; passes: number[]; qemu: QemuResult[] }> {
  const ours: OurRun[] = [];
  const passes: number[] = [];
  const qemu: QemuResult[] = [];
  for (let k = 0; k < RUNS; k++) {
    const attempt = (size === "4m" ? 1 : 2) + 2 * k;
    const r = await regvisorOnce(elf, dir, freePort(41000, attempt));
    ours.push(r.status);
    passes.push(r.passes);
    if (withQemu) qemu.push(await qemuOnce(elf, dir, freePort(43000, attempt)));
  }
  return { ours, passes, qemu };
}

export const migrationBench: BenchGroup = {
  name: "migration",
  async run() {
    const built = spawnSync("bash", [join(GUESTS, "build.sh")], { encoding: "utf8" });
    if (built.status !== 0)
      return { metrics: [], skip: `guests not built: ${built.stderr.trim()}` };
    const metrics: Metric[] = [];
    const withQemu = hasCommand("qemu-system-riscv64");
    const dir = mkdtempSync(join(tmpdir(), "rgv-bench-migr-"));
    try {
      for (const [size, file] of [
        ["4m", "dirty-4m.elf"],
        ["64m", "dirty-64m.elf"],
      ] as const) {
        const { ours, passes, qemu } = await payloadRuns(
          join(GUESTS, "build", file),
          dir,
          size,
          withQemu,
        );
        const mib = size === "4m" ? 4 : 64;
        const down = median(ours.map((s) => s.pauseToResume));
        const total = median(ours.map((s) => s.totalMs ?? NaN));
        const qDown = withQemu ? median(qemu.map((q) => q.stopToResume)) : undefined;
        const qTotal = withQemu ? median(qemu.map((q) => q.total)) : undefined;
        const sent = formatRounds(
          ours.map((s) => (s.transferredBytes ?? 0) / 1048576),
          1,
        );
        const runs = `regvisor runs (pause→resume/total) ${ours.map(ourRun).join("; ")}${withQemu ? `; QEMU 7.2 runs (STOP→RESUME/total) ${qemu.map(qemuRun).join("; ")}` : ""}`;
        metrics.push(
          {
            name: `migration.${size}.downtime_ms`,
            value: down,
            unit: "ms",
            target: "<= QEMU",
            detail: `256 MiB guest dirtying ${mib} MiB, tcp loopback, pause to the destination running, median of ${RUNS} (regvisor and QEMU taking turns): regvisor ${down} ms ${formatRounds(ours.map((s) => s.pauseToResume))} from the source's pause to the guest running at the destination (its status's startedAt; GO left the source at ${formatRounds(ours.map((s) => s.downtimeMs ?? NaN))} ms, the source had written everything at ${formatRounds(
              ours.map((s) => Number(sourceSide(s))),
              1,
            )} ms) vs ${qDown === undefined ? "QEMU not run" : `QEMU 7.2 ${qDown} ms ${formatRounds(qemu.map((q) => q.stopToResume))} from the source's STOP to the destination's RESUME (QEMU's own \`downtime\`, which ends when the source has written everything: ${formatRounds(qemu.map((q) => q.downtime))} ms)`}; provisional (shared machine)`,
          },
          {
            name: `migration.${size}.total_ms`,
            value: total,
            unit: "ms",
            target: "<= 2x QEMU",
            detail: `median of ${RUNS}: regvisor ${total} ms ${formatRounds(ours.map((s) => s.totalMs ?? NaN))}, ${sent} MiB sent, vs ${qTotal === undefined ? "QEMU not run" : `QEMU 7.2 ${qTotal} ms ${formatRounds(qemu.map((q) => q.total))}`}; the guest rewrote its ${mib} MiB ${formatRounds(passes)} times in its first second on regvisor${withQemu ? `, ${formatRounds(qemu.map((q) => q.passes))} on QEMU` : ""}; ${runs}; CRC32C ${crc32cPath().kind}; provisional`,
          },
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return withQemu ? { metrics } : { metrics, skip: "QEMU: qemu-system-riscv64 not installed" };
  },
};
