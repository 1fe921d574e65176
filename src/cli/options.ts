/**
 * Command-line parsing shared by every `regvisor` command: one wrapper over `node:util`
 * parseArgs so every command speaks the same way, and the option tables several commands share.
 *
 * - `--help`/`-h` and `--version`/`-V` work on every command and subcommand.
 * - A negative number after a value option (`--mem -1`) is that option's value, so the value's
 *   own check refuses it with a regvisor message instead of parseArgs' "argument is ambiguous".
 * - parseArgs' own errors (unknown option, missing value) become one-line `UsageError`s.
 * - Options a command shares with another (the run endings of `run FILE` and `restore`) are
 *   declared once here, so a new option slots into every command that takes it.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { packageRoot } from "../package-root.js";
import { UsageError } from "./errors.js";
import type { Out } from "./regs.js";

/** One option as parseArgs declares it. */
export interface OptionSpec {
  readonly type: "string" | "boolean";
  readonly short?: string;
  /** Repeatable: every occurrence is kept, in order (`--disk A --disk B`). */
  readonly multiple?: boolean;
}

/** An option table, name → spec. */
export type OptionTable = Readonly<Record<string, OptionSpec>>;

/** What parseArgs returns for a table: strings, booleans, or nothing. */
export type OptionValues<T extends OptionTable> = {
  readonly [K in keyof T]:
    | (T[K]["type"] extends "string"
        ? T[K]["multiple"] extends true
          ? string[]
          : string
        : boolean)
    | undefined;
};

/** A parsed command line: option values and the positionals. */
export interface ParsedArgs<T extends OptionTable> {
  readonly values: OptionValues<T>;
  readonly positionals: readonly string[];
}

/** Options every command takes. */
const COMMON = {
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const satisfies OptionTable;

/**
 * How a run ends besides the guest's own ending: shared by `run FILE` and `restore` (and any
 * later command that runs a guest).
 */
export const ENDING_OPTIONS = {
  timeout: { type: "string" },
} as const satisfies OptionTable;

/** Largest `--timeout`: what a 32-bit millisecond timer holds (about 24.8 days). */
export const MAX_TIMEOUT_S = 2_147_483;

/** The package version, from package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), "package.json"), "utf8")) as {
    version?: unknown;
  };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
}

/** `--mem -1` → `--mem=-1`: a value that looks like a negative number belongs to its option. */
function joinNegativeValues(argv: readonly string[], table: OptionTable): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const next = argv[i + 1];
    const spec = arg.startsWith("--") && !arg.includes("=") ? table[arg.slice(2)] : undefined;
    if (spec?.type === "string" && next !== undefined && /^-[0-9.]/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

/** parseArgs' error, reworded: which option, what is wrong, how to get help. */
function usageFor(command: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== "string" || !code.startsWith("ERR_PARSE_ARGS")) return error;
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(-[^' ]*)/.exec(message)?.[1] ?? "";
  const help = `see 'regvisor ${command} --help'`;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION")
    return new UsageError(`unknown option ${option} for ${command}; ${help}`);
  if (message.includes("argument missing"))
    return new UsageError(`${option} needs a value; ${help}`);
  if (message.includes("does not take an argument"))
    return new UsageError(`${option} takes no value; ${help}`);
  return new UsageError(`${message.split("\n")[0] ?? ""}; ${help}`);
}

/**
 * Parses `argv` for `command` (as named in messages, e.g. `"run"`, `"regs list"`) against
 * `table` plus `--help` and `--version`. Prints the help or the version itself and returns
 * `undefined` when one was asked for (the command then exits 0).
 * @throws {UsageError} for an unknown option or a missing or unexpected value.
 */
export function parseCommandLine<T extends OptionTable>(
  command: string,
  argv: readonly string[],
  table: T,
  help: string,
  out: Out,
): ParsedArgs<T> | undefined {
  const options: OptionTable = { ...table, ...COMMON };
  let parsed: { values: Record<string, unknown>; positionals: string[] };
  try {
    parsed = parseArgs({
      args: joinNegativeValues(argv, options),
      allowPositionals: true,
      strict: true,
      options,
    });
  } catch (error) {
    throw usageFor(command, error);
  }
  if (parsed.values.help === true) {
    out.stdout(help);
    return undefined;
  }
  if (parsed.values.version === true) {
    out.stdout(version() + "\n");
    return undefined;
  }
  // parseArgs' result follows `options`, a superset of `table`: the cast only narrows the view.
  return { values: parsed.values as OptionValues<T>, positionals: parsed.positionals };
}

/**
 * `--timeout SECONDS` → milliseconds (undefined when absent).
 * @throws {UsageError} unless SECONDS is a number above 0 and at most `MAX_TIMEOUT_S`.
 */
export function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : NaN;
  if (!(seconds > 0) || seconds > MAX_TIMEOUT_S) {
    throw new UsageError(
      `--timeout: expected a number of seconds above 0 and at most ${MAX_TIMEOUT_S}, such as 5 or 0.5, got ${JSON.stringify(text)}`,
    );
  }
  return seconds * 1000;
}
