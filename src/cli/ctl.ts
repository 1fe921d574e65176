/**
 * `regvisor ctl PATH <command> [--json]`: the client of a running machine's control socket
 * (`regvisor run --api PATH`). Each command is one request (src/vmm/api/server.ts lists them);
 * `--json` prints the server's JSON answer as it is.
 */
import type { MachineStatus, SnapshotResult } from "../vmm/api/control.js";
import { apiRequest } from "../vmm/api/client.js";
import { UsageError } from "./errors.js";
import { parseCommandLine } from "./options.js";
import type { Out } from "./regs.js";

const HELP = `Usage: regvisor ctl PATH status|pause|resume|quit [--json]
       regvisor ctl PATH snapshot FILE [--json]
       regvisor ctl PATH gdb HOST:PORT|unix:PATH [--json]

Talks to a machine started with 'regvisor run --api PATH':
  status         state, vCPUs, exits, uptime
  pause          park every vCPU between exits
  resume         let them run again
  snapshot FILE  write a snapshot of the whole machine to FILE (pausing around it)
  quit           end the machine
  gdb ADDRESS    start a gdbstub there (loopback or a Unix socket); a debugger that connects
                 stops the guest
Exit status: 0 done, 1 refused or failed (one line on stderr), 2 bad command line.
`;

const CTL_OPTIONS = { json: { type: "boolean" } } as const;

/** The endpoint and body of each command. */
const COMMANDS = {
  status: { method: "GET", route: "/status", args: 0 },
  pause: { method: "PUT", route: "/pause", args: 0 },
  resume: { method: "PUT", route: "/resume", args: 0 },
  quit: { method: "PUT", route: "/quit", args: 0 },
  snapshot: { method: "PUT", route: "/snapshot", args: 1 },
  gdb: { method: "PUT", route: "/gdb", args: 1 },
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

function human(command: CommandName, body: unknown): string {
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
        : `ctl ${name} takes one argument (${name === "gdb" ? "the address" : "the snapshot file"})`,
    );
  }
  const body =
    name === "snapshot" ? { path: args[0] } : name === "gdb" ? { address: args[0] } : undefined;
  const answer = await apiRequest(path, spec.method, spec.route, body);
  if (values.json === true) out.stdout(JSON.stringify(answer.body) + "\n");
  if (answer.status !== 200) {
    const error = (answer.body as { error?: unknown } | null)?.error;
    const text = typeof error === "string" ? error : `HTTP ${answer.status}`;
    process.stderr.write(`regvisor: ${name} refused: ${text}\n`);
    return 1;
  }
  if (values.json !== true) out.stdout(human(name, answer.body) + "\n");
  return 0;
}
