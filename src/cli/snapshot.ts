/**
 * The snapshot commands, thin over src/vmm/machine/state.ts and src/vmm/snapshot
 * (`regvisor run … --snapshot-at-exit N --snapshot-out SNAP` is `run`'s, src/cli/run.ts):
 *
 *   regvisor restore SNAP [--mode M] [--timeout S] [--allow-disk-change] [--api PATH]
 *                         [--on-missing …] [--on-extra …] [--on-size-mismatch …]
 *                         [--dump-regs] [--json]
 *   regvisor inspect SNAP [--values] [--no-registers] [--json]
 *   regvisor diff A B [--json]
 *
 * `run` prints what the guest printed up to exit N; `restore` prints what it prints after, so
 * the two outputs concatenated equal an uninterrupted run. Every error is one line on stderr
 * (main.ts); a damaged file is a `SnapshotFormatError` and nothing is restored or run.
 */
import { RegvisorError } from "../errors.js";
import { startApiServer, type ApiServer } from "../vmm/api/server.js";
import type { Machine } from "../vmm/machine/machine.js";
import { restoreGuest, type RestoreSummary } from "../vmm/runner-restore.js";
import { noInput, stdinInput } from "../vmm/runner-input.js";
import type { RestoreSnapshotOptions } from "../vmm/snapshot/restore.js";
import {
  DEFAULT_LIMITS,
  decodeMachineState,
  decodeSnapshot,
  diffSnapshots,
  inspectSnapshot,
  renderDiff,
  renderSummary,
  SnapshotFormatError,
} from "../vmm/snapshot/index.js";
import { readInputFile } from "../vmm/input-file.js";
import { OptionValueError } from "../vmm/size.js";
import { backendPicker, parseMode } from "./backends.js";
import { UsageError } from "./errors.js";
import { exitToJson } from "./json.js";
import { ENDING_OPTIONS, parseCommandLine, parseTimeout } from "./options.js";
import { registersJson, registersTable } from "./registers.js";
import type { Out } from "./regs.js";
import { outputSink, type RunOut } from "./run.js";
import { listenForStopSignals } from "./signals.js";

const RESTORE_HELP = `Usage: regvisor restore SNAP [--mode inline|threaded] [--timeout SECONDS]
                       [--allow-disk-change] [--api PATH] [--dump-regs] [--json]
                       [--on-missing error|keep] [--on-extra error|ignore|try]
                       [--on-size-mismatch error|ignore]

Rebuilds the machine of a snapshot in this process — the same vCPUs, RAM slots and devices on
a new VM — restores RAM, registers and devices, and runs the guest on with its console on
stdout (--json: the output before, after and combined). Disks are reattached by path and must
be the files the snapshot was taken with (size and SHA-256): a changed or missing disk is
refused, unless --allow-disk-change. --mode chooses the soft backend's execution mode (default:
the snapshot's). --timeout stops the guest after SECONDS; --api serves the control socket as
'regvisor run --api' does. The --on-* options decide what a register present on one side only
does (default: error).
Exit status: the guest's, as for 'regvisor run FILE' (0 clean end, 124 --timeout, 125 guest
fault, 130/143 SIGINT/SIGTERM); 1 the snapshot could not be read or restored (nothing ran);
2 bad command line.
`;

const INSPECT_HELP = `Usage: regvisor inspect FILE [--values] [--no-registers] [--json]

Prints a snapshot's header, sections, registers by name and size, memory and devices.
`;

const DIFF_HELP = `Usage: regvisor diff A B [--json]

Register-level differences between two snapshots (plus memory pages and devices).
Exit status: 0 identical, 1 different, 2 bad command line, 3 a file could not be read or decoded.
`;

const decoder = new TextDecoder();

/** A snapshot file's bytes, within the decoder's whole-snapshot limit (checked before reading). */
function readSnapshotFile(path: string): Uint8Array {
  return readInputFile(path, { what: "snapshot", maxBytes: DEFAULT_LIMITS.maxTotalBytes });
}

/** An error about one snapshot file: the original's name and code, its message naming the file. */
class InFileError extends RegvisorError {
  constructor(path: string, error: RegvisorError) {
    const prefix = "Cannot decode snapshot";
    const message = error.message.startsWith(prefix)
      ? `${prefix} "${path}"${error.message.slice(prefix.length)}`
      : `"${path}": ${error.message}`;
    super(error.code, message, { cause: error });
    this.name = error.name;
  }
}

/** Runs `fn` over the snapshot file `path`; a format error names the file. */
function withFile<T>(path: string, fn: (bytes: Uint8Array) => T): T {
  const bytes = readSnapshotFile(path);
  try {
    return fn(bytes);
  } catch (error) {
    if (error instanceof SnapshotFormatError) throw new InFileError(path, error);
    throw error;
  }
}

function restorePolicy(
  values: Record<string, string | boolean | undefined>,
): RestoreSnapshotOptions {
  const pick = <T extends string>(flag: string, allowed: readonly T[]): T | undefined => {
    const v = values[flag];
    if (v === undefined || typeof v !== "string") return undefined;
    const found = allowed.find((a) => a === v);
    if (found === undefined) throw new UsageError(`--${flag} must be one of ${allowed.join(", ")}`);
    return found;
  };
  const onMissing = pick("on-missing", ["error", "keep"] as const);
  const onExtra = pick("on-extra", ["error", "ignore", "try"] as const);
  const onSizeMismatch = pick("on-size-mismatch", ["error", "ignore"] as const);
  return {
    ...(onMissing === undefined ? {} : { onMissing }),
    ...(onExtra === undefined ? {} : { onExtra }),
    ...(onSizeMismatch === undefined ? {} : { onSizeMismatch }),
  };
}

const RESTORE_OPTIONS = {
  mode: { type: "string" },
  "on-missing": { type: "string" },
  "on-extra": { type: "string" },
  "on-size-mismatch": { type: "string" },
  "allow-disk-change": { type: "boolean" },
  api: { type: "string" },
  "dump-regs": { type: "boolean" },
  json: { type: "boolean" },
  ...ENDING_OPTIONS,
} as const;

/**
 * `regvisor restore SNAP`: resolves to the guest's status.
 * @throws {UsageError} on a bad command line; {SnapshotFormatError}, {RestoreError},
 *   {DiskChangedError} before anything runs.
 */
export async function restoreCommand(
  argv: string[],
  out: RunOut,
  err: (t: string) => void,
): Promise<number> {
  const parsed = parseCommandLine("restore", argv, RESTORE_OPTIONS, RESTORE_HELP, out);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError("restore takes one FILE");
  const policy = restorePolicy(values);
  const mode = parseMode(values.mode);
  const timeoutMs = parseTimeout(values.timeout);
  const snapshot = withFile(file, (bytes) => decodeSnapshot(bytes));
  const json = values.json === true;
  const captured: Uint8Array[] = [];
  const sink = json
    ? { write: (b: Uint8Array) => void captured.push(b.slice()), flush: () => undefined }
    : outputSink(out);
  let summary: RestoreSummary;
  let api: ApiServer | undefined;
  const apiPath = values.api;
  const owned: { picker?: ReturnType<typeof backendPicker> } = {};
  try {
    using input = stdinInput();
    using stop = listenForStopSignals();
    const demo = snapshot.meta.guest?.endsWith("-demo") === true;
    summary = await restoreGuest({
      snapshot,
      backendFor: (arch, m) => {
        owned.picker = backendPicker(m === undefined ? {} : { mode: m });
        return owned.picker.backendFor(arch);
      },
      ...(mode === undefined ? {} : { mode }),
      allowDiskChange: values["allow-disk-change"] === true,
      policy,
      output: sink.write,
      // The demos run without console input, as `regvisor run` does, so every run prints the same.
      input: demo ? noInput() : input,
      stop,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      collectRegisters: values["dump-regs"] === true,
      ...(apiPath === undefined
        ? {}
        : {
            onMachine: async (machine: Machine) => {
              api = await startApiServer({ path: apiPath, control: machine });
            },
          }),
    });
    sink.flush();
  } catch (error) {
    if (error instanceof SnapshotFormatError) throw new InFileError(file, error);
    if (error instanceof OptionValueError) throw new UsageError(error.message);
    throw error;
  } finally {
    sink.flush();
    await api?.close();
    owned.picker?.[Symbol.dispose]();
  }
  const output = decoder.decode(Buffer.concat(captured));
  return reportRestore(summary, file, output, json, values["dump-regs"] === true, out, err);
}

function reportRestore(
  s: RestoreSummary,
  file: string,
  output: string,
  json: boolean,
  dumpRegs: boolean,
  out: Out,
  err: (t: string) => void,
): number {
  const backend = s.mode === undefined ? s.backend : `${s.backend}-${s.mode}`;
  // Exits to the VMM, before and after the snapshot: `intr` returns are not exits.
  const counted = s.exits - (s.exitKinds.intr ?? 0);
  if (json) {
    const before = decoder.decode(s.outputBefore);
    const result = {
      file,
      backend,
      guest: s.description.guest,
      resumedAtExit: s.resumedAt.exits,
      output,
      outputBefore: before,
      combinedOutput: before + output,
      clean: s.ending.status === 0,
      reason: s.ending.reason,
      status: s.ending.status,
      message: s.ending.message,
      pcName: s.pcName,
      pc: `0x${s.pc.toString(16)}`,
      exits: counted,
      exitKinds: Object.fromEntries(Object.entries(s.exitKinds).filter(([k]) => k !== "intr")),
      lastExit: s.lastExit === undefined ? null : exitToJson(s.lastExit),
      restore: { kind: s.description.kind, ...s.report },
      ...(dumpRegs ? { registers: registersJson(s.registers) } : {}),
    };
    out.stdout(JSON.stringify(result, null, 2) + "\n");
  } else if (dumpRegs) {
    out.stdout(registersTable(s.registers));
  }
  if (s.registersError !== undefined) {
    err(`regvisor: cannot read the final registers: ${s.registersError}\n`);
  }
  const pc = `${s.pcName}=0x${s.pc.toString(16)}`;
  err(
    `regvisor: resumed ${backend} ${s.description.kind} machine at exit ${s.resumedAt.exits}; ${s.ending.message} at ${pc} after ${s.exits} exits; exit status ${s.ending.status}\n`,
  );
  return s.ending.status;
}

const INSPECT_OPTIONS = {
  values: { type: "boolean" },
  "no-registers": { type: "boolean" },
  json: { type: "boolean" },
} as const;

/** `regvisor inspect FILE`. @throws {SnapshotFormatError} if the file is not a snapshot. */
export function inspectCommand(argv: string[], out: Out): number {
  const parsed = parseCommandLine("inspect", argv, INSPECT_OPTIONS, INSPECT_HELP, out);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError("inspect takes one FILE");
  const decoded = withFile(file, (bytes) => decodeSnapshot(bytes));
  const summary = inspectSnapshot(decoded, { values: values.values === true });
  const machine = machineSummary(decoded);
  if (values.json === true) {
    out.stdout(JSON.stringify({ file, ...summary, machine }, null, 2) + "\n");
    return 0;
  }
  out.stdout(
    renderSummary(summary, { registers: values["no-registers"] !== true, snapshot: decoded }),
  );
  if (machine !== null) {
    out.stdout(
      `machine: ${machine.kind}, resumes after exit ${machine.exits}, ${machine.consoleBytes} console bytes so far\n`,
    );
  }
  return 0;
}

function machineSummary(
  s: Parameters<typeof decodeMachineState>[0],
): { kind: string; exits: number; consoleBytes: number } | null {
  try {
    const m = decodeMachineState(s);
    return { kind: m.config.kind, exits: m.progress.exits, consoleBytes: m.output.length };
  } catch {
    return null; // a register-only snapshot: inspect still shows everything else
  }
}

const DIFF_OPTIONS = { json: { type: "boolean" } } as const;

/**
 * `regvisor diff A B`: 0 identical, 1 different (main.ts maps its errors to status 3).
 * @throws {SnapshotFormatError} naming the file that is not a snapshot.
 */
export function diffCommand(argv: string[], out: Out): number {
  const parsed = parseCommandLine("diff", argv, DIFF_OPTIONS, DIFF_HELP, out);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length !== 2) throw new UsageError("diff takes two FILEs");
  const [a = "", b = ""] = positionals;
  const left = withFile(a, (bytes) => decodeSnapshot(bytes));
  const right = withFile(b, (bytes) => decodeSnapshot(bytes));
  const d = diffSnapshots(left, right);
  out.stdout(values.json === true ? JSON.stringify({ a, b, ...d }, null, 2) + "\n" : renderDiff(d));
  return d.identical ? 0 : 1;
}
