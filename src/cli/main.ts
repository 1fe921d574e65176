/**
 * The `regvisor` command. Thin: every command is a function over the library; this file only
 * dispatches and turns errors into a one-line message and an exit status. Every status of every
 * command is in ONE table, the README's "Exit statuses" (CLI section):
 *
 *   0 success · 1 failure · 2 bad command line · 3 `diff` could not compare (1 = different) ·
 *   74 stdout failed (ENOSPC, EIO) · 141 stdout's reader is gone (EPIPE) ·
 *   `run`/`restore`: the guest's statuses (124 timeout, 125 fault, 130 SIGINT, 143 SIGTERM, …)
 */
import { errorToJson } from "../errors.js";
import { primeForRun } from "./early.js";
import { UsageError } from "./errors.js";
import { version } from "./options.js";
import { OutputError } from "./output.js";
import type { RunOut } from "./run.js";

const HELP = `regvisor — the KVM generic vCPU register interface, from both sides

Usage:
  regvisor run [--backend kvm|soft] [--mode inline|threaded] [--dump-regs] [--json] [options] [FILE]
  regvisor run [options] [FILE] --snapshot-at-exit N --snapshot-out SNAP
  regvisor restore SNAP [--mode inline|threaded] [--timeout S] [--allow-disk-change] [--json]
  regvisor run --incoming tcp:HOST:PORT|unix:PATH [--api PATH] [--mode M] [machine options]
  regvisor inspect FILE [--values] [--json]
  regvisor diff A B [--json]
  regvisor ctl PATH status|pause|resume|quit|snapshot FILE|migrate URI|migrate-status [--json]
  regvisor regs decode <id>... [--json]
  regvisor regs encode <arch> <name>... [--json]
  regvisor regs list <arch> [--class C] [--json]
  regvisor --version | --help

Run 'regvisor <command> --help' for a command's options.
Exit status: 0 ok, 1 failure, 2 bad command line (diff: 1 different, 3 error; run and restore:
the guest's status); 141 when stdout's reader went away, 74 when stdout cannot be written.
`;

/** `diff`'s status when it could not compare (1 means "different", as for diff(1)). */
export const STATUS_DIFF_ERROR = 3;

/** Exit status for an error: 2 for command-line mistakes, 1 (diff: 3) for everything else. */
function statusFor(error: unknown, command: string | undefined): number {
  if (error instanceof OutputError) return error.status;
  if (error instanceof UsageError) return 2;
  return command === "diff" ? STATUS_DIFF_ERROR : 1;
}

/** Prints an error: one line on stderr, and with --json an `{ error }` object on stdout. */
function reportError(error: unknown, argv: readonly string[], out: RunOut): void {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`regvisor: ${message.split("\n")[0] ?? ""}\n`);
  if (!argv.includes("--json") || error instanceof OutputError) return;
  try {
    out.stdout(JSON.stringify({ error: errorToJson(error) }) + "\n");
  } catch {
    // stdout failed too: the line on stderr already says what went wrong first.
  }
}

async function dispatch(command: string, rest: string[], out: RunOut): Promise<number> {
  const err = (text: string): void => void process.stderr.write(text);
  switch (command) {
    case "regs":
      (await import("./regs.js")).regsCommand(rest, out);
      return 0;
    case "run":
      await primeForRun(rest);
      return (await import("./run.js")).runCommand(rest, out, err);
    case "restore":
      return (await import("./snapshot.js")).restoreCommand(rest, out, err);
    case "inspect":
      return (await import("./snapshot.js")).inspectCommand(rest, out);
    case "diff":
      return (await import("./snapshot.js")).diffCommand(rest, out);
    case "ctl":
      return await (await import("./ctl.js")).ctlCommand(rest, out);
    default:
      throw new UsageError(`unknown command "${command}"; try 'regvisor --help'`);
  }
}

/**
 * Runs the CLI with `argv` (without node and script); resolves to the exit status. Every command
 * is imported on demand: `regvisor regs` never loads native code (koffi), and `run` never loads
 * the register catalogs' name tables it does not print.
 */
export async function main(argv: string[], out: RunOut): Promise<number> {
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
      default:
        return await dispatch(command, rest, out);
    }
  } catch (error: unknown) {
    reportError(error, argv, out);
    return statusFor(error, command);
  }
}
