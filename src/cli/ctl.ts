/**
 * `regvisor ctl PATH <command> [--json]`: the client of a running machine's control socket
 * (`regvisor run --api PATH`). Each command is one request (src/vmm/api/server.ts lists them);
 * `--json` prints the server's JSON answer as it is.
 */
import type { MachineStatus, MigrateRequest, SnapshotResult } from "../vmm/api/control.js";
import { apiRequest } from "../vmm/api/client.js";
import type { MigrationStatus } from "../vmm/migration/source.js";
import { parseMigrationUri } from "../vmm/migration/transport.js";
import { OptionValueError } from "../vmm/size.js";
import { UsageError } from "./errors.js";
import { parseCommandLine } from "./options.js";
import type { Out } from "./regs.js";

const HELP = `Usage: regvisor ctl PATH status|pause|resume|quit|migrate-status [--json]
       regvisor ctl PATH snapshot FILE [--json]
       regvisor ctl PATH gdb HOST:PORT|unix:PATH [--json]
       regvisor ctl PATH migrate tcp:HOST:PORT|unix:PATH [--downtime-limit MS]
                     [--max-bandwidth BYTES] [--json]

Talks to a machine started with 'regvisor run --api PATH':
  status         state, vCPUs, exits, uptime
  pause          park every vCPU between exits
  resume         let them run again
  snapshot FILE  write a snapshot of the whole machine to FILE (pausing around it)
  quit           end the machine
  gdb ADDRESS    start a gdbstub there (loopback or a Unix socket); a debugger that connects
                 stops the guest
  migrate URI    live-migrate the guest to 'regvisor run --incoming URI' (blocks until done;
                 progress on stderr when it is a terminal); the machine then ends, status 0.
                 On failure the guest runs on here as before.
    --downtime-limit MS   longest pause the guest should see at switchover (default 300)
    --max-bandwidth B     bytes per second at most (K, M, G suffixes; default unlimited)
  migrate-status the current or last migration: stage, rounds, bytes, dirty pages
Exit status: 0 done, 1 refused or failed (one line on stderr), 2 bad command line.
`;

const CTL_OPTIONS = {
  json: { type: "boolean" },
  "downtime-limit": { type: "string" },
  "max-bandwidth": { type: "string" },
} as const;

/** A migration may take this long before `ctl migrate` gives up waiting (one day). */
const MIGRATE_WAIT_MS = 24 * 3600 * 1000;
/** How often `ctl migrate` asks for progress on a terminal. */
const PROGRESS_MS = 250;

/** The endpoint and body of each command. */
const COMMANDS = {
  status: { method: "GET", route: "/status", args: 0 },
  pause: { method: "PUT", route: "/pause", args: 0 },
  resume: { method: "PUT", route: "/resume", args: 0 },
  quit: { method: "PUT", route: "/quit", args: 0 },
  snapshot: { method: "PUT", route: "/snapshot", args: 1 },
  gdb: { method: "PUT", route: "/gdb", args: 1 },
  migrate: { method: "PUT", route: "/migrate", args: 1 },
  "migrate-status": { method: "GET", route: "/migrate", args: 0 },
} as const;

type CommandName = keyof typeof COMMANDS;

function isCommand(name: string): name is CommandName {
  return Object.hasOwn(COMMANDS, name);
}

/** One human line for a status answer. */
export function formatStatus(s: MachineStatus): string {
  const uptime = (s.uptimeMs / 1000).toFixed(1);
  const cpus = `${s.vcpus} vCPU${s.vcpus === 1 ? "" : "s"}`;
  return `${s.state}: ${cpus}, ${s.exits} exits, up ${uptime} s (${s.guest} on ${s.arch}, ${s.backend})`;
}

const mib = (bytes: number | undefined): string => ((bytes ?? 0) / 1048576).toFixed(1);

/** One human line for a migration status. */
export function formatMigration(m: MigrationStatus): string {
  switch (m.status) {
    case "none":
      return "no migration";
    case "active":
      return `migrating to ${m.uri ?? "?"}: ${m.stage ?? "?"}, round ${m.rounds ?? 0}, ${mib(m.transferredBytes)} MiB sent, ${m.dirtyPages ?? 0} pages dirty, ${mib(m.bandwidth)} MiB/s`;
    case "completed":
      return `migrated to ${m.uri ?? "?"}: ${m.totalMs ?? 0} ms total, ${m.downtimeMs ?? 0} ms downtime, ${mib(m.transferredBytes)} MiB in ${m.rounds ?? 0} rounds`;
    case "failed":
      return `migration to ${m.uri ?? "?"} failed (${m.stage ?? "?"}): ${m.error ?? "unknown error"}; the guest runs on here`;
  }
}

function human(command: CommandName, body: unknown): string {
  if (command === "migrate" || command === "migrate-status") {
    return formatMigration(body as MigrationStatus);
  }
  if (command === "snapshot") {
    const r = body as SnapshotResult;
    return `snapshot written to ${r.path}: ${r.bytes} bytes`;
  }
  if (command === "gdb") {
    const { endpoint } = body as { endpoint: string };
    return `gdb: listening on ${endpoint} (target remote ${endpoint})`;
  }
  return formatStatus(body as MachineStatus);
}

/** Runs `regvisor ctl`; resolves to the exit status. */
export async function ctlCommand(argv: string[], out: Out): Promise<number> {
  const parsed = parseCommandLine("ctl", argv, CTL_OPTIONS, HELP, out);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const [path, name, ...args] = positionals;
  if (path === undefined || name === undefined) {
    throw new UsageError("ctl needs a socket path and a command; try 'regvisor ctl --help'");
  }
  if (!isCommand(name)) {
    throw new UsageError(
      `unknown ctl command "${name}" (one of ${Object.keys(COMMANDS).join(", ")})`,
    );
  }
  const spec = COMMANDS[name];
  if (args.length !== spec.args) {
    throw new UsageError(
      spec.args === 0
        ? `ctl ${name} takes no argument`
        : `ctl ${name} takes one argument (${name === "gdb" ? "the address" : name === "migrate" ? "the destination URI" : "the snapshot file"})`,
    );
  }
  if (name !== "migrate" && (values["downtime-limit"] ?? values["max-bandwidth"]) !== undefined) {
    throw new UsageError("--downtime-limit and --max-bandwidth go with ctl migrate");
  }
  const body =
    name === "snapshot"
      ? { path: args[0] }
      : name === "gdb"
        ? { address: args[0] }
        : name === "migrate"
          ? migrateBody(args[0] ?? "", values)
          : undefined;
  const progress =
    name === "migrate" && values.json !== true && process.stderr.isTTY
      ? showProgress(path)
      : undefined;
  const answer = await apiRequest(
    path,
    spec.method,
    spec.route,
    body,
    name === "migrate" ? MIGRATE_WAIT_MS : undefined,
  ).finally(() => progress?.stop());
  if (values.json === true) out.stdout(JSON.stringify(answer.body) + "\n");
  if (answer.status !== 200) {
    const error = (answer.body as { error?: unknown } | null)?.error;
    const text = typeof error === "string" ? error : `HTTP ${answer.status}`;
    process.stderr.write(`regvisor: ${name} refused: ${text}\n`);
    return 1;
  }
  if (name === "migrate" && (answer.body as MigrationStatus).status !== "completed") {
    if (values.json !== true) {
      process.stderr.write(`regvisor: ${formatMigration(answer.body as MigrationStatus)}\n`);
    }
    return 1;
  }
  if (values.json !== true) out.stdout(human(name, answer.body) + "\n");
  return 0;
}

function migrateBody(
  uri: string,
  values: {
    readonly "downtime-limit"?: string | undefined;
    readonly "max-bandwidth"?: string | undefined;
  },
): MigrateRequest {
  try {
    parseMigrationUri(uri);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const limit = values["downtime-limit"];
  const bandwidth = values["max-bandwidth"];
  let downtimeLimitMs: number | undefined;
  if (limit !== undefined) {
    downtimeLimitMs = Number(limit);
    if (!/^\d+$/.test(limit) || downtimeLimitMs <= 0 || !Number.isSafeInteger(downtimeLimitMs)) {
      throw new OptionValueError(
        "--downtime-limit",
        `expected milliseconds above 0, got ${JSON.stringify(limit)}`,
      );
    }
  }
  let maxBandwidth: number | undefined;
  if (bandwidth !== undefined) {
    const match = /^(\d+)([kmg]?)$/i.exec(bandwidth.trim());
    const shift = { "": 0, k: 10, m: 20, g: 30 }[(match?.[2] ?? "").toLowerCase()] ?? 0;
    maxBandwidth = Number(match?.[1] ?? NaN) * 2 ** shift;
    if (match === null || maxBandwidth <= 0 || !Number.isSafeInteger(maxBandwidth)) {
      throw new OptionValueError(
        "--max-bandwidth",
        `expected bytes per second such as 100M, got ${JSON.stringify(bandwidth)}`,
      );
    }
  }
  return {
    uri,
    ...(downtimeLimitMs === undefined ? {} : { downtimeLimitMs }),
    ...(maxBandwidth === undefined ? {} : { maxBandwidth }),
  };
}

/** Rewrites one progress line on the terminal until stopped. */
function showProgress(path: string): { stop(): void } {
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    apiRequest(path, "GET", "/migrate", undefined, PROGRESS_MS * 4)
      .then((answer) => {
        const m = answer.body as MigrationStatus;
        if (m.status === "active") process.stderr.write(`\r\x1b[K${formatMigration(m)}`);
      })
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, PROGRESS_MS);
  return {
    stop: () => {
      clearInterval(timer);
      process.stderr.write("\r\x1b[K");
    },
  };
}
