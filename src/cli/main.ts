/**
 * The `regvisor` command. Thin: every command is a function over the library; this file only
 * dispatches and turns errors into a one-line message and an exit status
 * (0 ok, 1 failure, 2 usage error; `run` documents its own guest statuses).
 */
import { readFileSync } from "node:fs";
import { errorToJson } from "../errors.js";
import { UsageError } from "./errors.js";
import { regsCommand, type Out } from "./regs.js";

const HELP = `regvisor — the KVM generic vCPU register interface, from both sides

Usage:
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

/** Runs the CLI with `argv` (without node and script); returns the exit status. */
export function main(argv: string[], out: Out): number {
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
