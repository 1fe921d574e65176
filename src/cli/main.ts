/**
 * The `regvisor` command. Thin: every command is a function over the library; this file only
 * dispatches and turns errors into a one-line message and an exit status
 * (0 ok, 1 failure, 2 usage error; `run` documents its own guest statuses).
 */
import { readFileSync } from "node:fs";
import { errorToJson } from "../errors.js";
import { UsageError } from "./errors.js";
import { regsCommand } from "./regs.js";
import type { RunOut } from "./run.js";

const HELP = `regvisor — the KVM generic vCPU register interface, from both sides

Usage:
  regvisor run [--backend kvm|soft] [--mode inline|threaded] [--dump-regs] [--json] [options] [FILE]
  regvisor run --snapshot-at-exit N --snapshot-out FILE [--backend kvm|soft] [--mode M]
  regvisor restore FILE [--mode inline|threaded] [--on-missing …] [--on-extra …] [--json]
  regvisor inspect FILE [--json]
  regvisor diff A B [--json]
  regvisor regs decode <id>... [--json]
  regvisor regs encode <arch> <name>... [--json]
  regvisor regs list <arch> [--class C] [--json]
  regvisor --version | --help

Run 'regvisor <command> --help' for a command's options.
`;

function version(): string {
  const pkg = JSON.parse(
    readFileSync(new URL("../../../package.json", import.meta.url), "utf8"),
  ) as {
    version?: unknown;
  };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
}

/** Exit status for an error: 2 for command-line mistakes, 1 for everything else. */
function statusFor(error: unknown): number {
  if (error instanceof UsageError) return 2;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) return 2;
  return 1;
}

/**
 * Runs the CLI with `argv` (without node and script); resolves to the exit status. Commands that
 * need a backend are imported on demand, so `regvisor regs` never loads native code (koffi).
 */
export async function main(argv: string[], out: RunOut): Promise<number> {
  const err = (text: string): void => void process.stderr.write(text);
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
      case "--help":
      case "-h":
      case "help":
        out.stdout(HELP);
        return command === undefined ? 2 : 0;
      case "--version":
      case "-V":
        out.stdout(version() + "\n");
        return 0;
      case "regs":
        regsCommand(rest, out);
        return 0;
      case "run":
        // Snapshot-taking runs live with the snapshot commands (src/cli/snapshot.ts).
        if (rest.some((a) => a.startsWith("--snapshot-"))) {
          return (await import("./snapshot.js")).snapshotRunCommand(rest, out, err);
        }
        return await (await import("./run.js")).runCommand(rest, out, err);
      case "restore":
        return (await import("./snapshot.js")).restoreCommand(rest, out, err);
      case "inspect":
        return (await import("./snapshot.js")).inspectCommand(rest, out);
      case "diff":
        return (await import("./snapshot.js")).diffCommand(rest, out);
      default:
        throw new UsageError(`unknown command "${command}"; try 'regvisor --help'`);
    }
  } catch (error: unknown) {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`regvisor: ${message.split("\n")[0] ?? ""}\n`);
    if (argv.includes("--json")) out.stdout(JSON.stringify({ error: errorToJson(error) }) + "\n");
    return statusFor(error);
  }
}
