/**
 * The snapshot commands (issue 5), thin over src/vmm/snapshot:
 *
 *   regvisor run --backend kvm|soft [--mode M] --snapshot-at-exit N --snapshot-out FILE [--json]
 *   regvisor restore FILE [--mode M] [--on-missing …] [--on-extra …] [--on-size-mismatch …]
 *                         [--dump-regs] [--json]
 *   regvisor inspect FILE [--values] [--no-registers] [--json]
 *   regvisor diff A B [--json]
 *
 * `run` prints what the guest printed up to exit N; `restore` prints what it prints after, so
 * the two outputs concatenated equal an uninterrupted run. Every error is one line on stderr
 * (main.ts); a damaged file is a `SnapshotFormatError` and nothing is restored.
 */
import { writeFileSync } from "node:fs";
import { decodeReg } from "../abi/catalog.js";
import { regSize } from "../abi/regid.js";
import { RegvisorError } from "../errors.js";
import {
  DEFAULT_LIMITS,
  decodeMachineState,
  decodeSnapshot,
  diffSnapshots,
  encodeSnapshot,
  inspectSnapshot,
  renderDiff,
  renderSummary,
  SnapshotFormatError,
  type SnapshotMachine,
} from "../vmm/snapshot/index.js";
import { RiscvDemoMachine, X86DemoMachine } from "../vmm/snapshot/machines/index.js";
import {
  captureMachine,
  restoreMachine,
  runMachine,
  type MachineRestoreOptions,
} from "../vmm/snapshot/vm-state.js";
import { readInputFile } from "../vmm/input-file.js";
import { runMachineBounded } from "../vmm/snapshot/run-bounded.js";
import { chooseBackend, parseMode } from "./backend.js";
import { UsageError } from "./errors.js";
import { exitToJson } from "./json.js";
import { ENDING_OPTIONS, parseCommandLine, parseTimeout } from "./options.js";
import { registersJson, registersTable, type DumpRegister } from "./registers.js";
import type { Out } from "./regs.js";
import { listenForStopSignals } from "./signals.js";

const RUN_HELP = `Usage: regvisor run [--backend kvm|soft] [--mode inline|threaded]
                    --snapshot-at-exit N --snapshot-out FILE [--json]

Runs the bundled demo guest, stops after its N-th exit to the VMM (exits counted without
"intr"; 0 = before the first run), completes that exit (KVM_RUN with immediate_exit), writes a
snapshot of the whole machine to FILE and prints what the guest printed so far.
`;

const RESTORE_HELP = `Usage: regvisor restore FILE [--mode inline|threaded] [--timeout SECONDS] [--dump-regs]
                       [--json] [--on-missing error|keep] [--on-extra error|ignore|try]
                       [--on-size-mismatch error|ignore]

Rebuilds the machine of a snapshot in this process (new VM, memslots, vCPUs), restores
registers, RAM and devices, and runs the guest to its end, printing what it prints after the
snapshot (--json: the output before, after and combined). --mode chooses the soft backend's
execution mode (default: the snapshot's). --timeout stops the guest after SECONDS, as for
'regvisor run FILE'. The --on-* options decide what a register present on one side only does
(default: error).
Exit status: 0 the guest finished; 1 it stopped at an exit the demo VMM does not handle, or the
snapshot could not be read or restored; 2 bad command line; 124 --timeout; 130/143 SIGINT/SIGTERM.
`;

const INSPECT_HELP = `Usage: regvisor inspect FILE [--values] [--no-registers] [--json]

Prints a snapshot's header, sections, registers by name and size, memory and devices.
`;

const DIFF_HELP = `Usage: regvisor diff A B [--json]

Register-level differences between two snapshots (plus memory pages and devices).
Exit status: 0 identical, 1 different, 2 bad command line, 3 a file could not be read or decoded.
`;

const decoder = new TextDecoder();

/** A run that could not produce the requested snapshot. */
export class SnapshotRunError extends RegvisorError {
  constructor(message: string) {
    super("SNAPSHOT_RUN", message);
  }
}

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

function parseExitNumber(text: string | undefined): number {
  if (text === undefined) throw new UsageError("--snapshot-at-exit N is required");
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
    throw new UsageError(
      `--snapshot-at-exit: expected an exit count of 0 or more, such as 2, got "${text}"`,
    );
  return n;
}

const SNAPSHOT_RUN_OPTIONS = {
  backend: { type: "string" },
  mode: { type: "string" },
  "snapshot-at-exit": { type: "string" },
  "snapshot-out": { type: "string" },
  json: { type: "boolean" },
} as const;

/**
 * `regvisor run … --snapshot-at-exit N --snapshot-out FILE`.
 * @throws {UsageError} on a bad command line; {SnapshotRunError} if the guest ends first.
 */
export function snapshotRunCommand(argv: string[], out: Out, err: (t: string) => void): number {
  const parsed = parseCommandLine("run", argv, SNAPSHOT_RUN_OPTIONS, RUN_HELP, out);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length > 0)
    throw new UsageError(`run takes no FILE (got "${positionals[0] ?? ""}")`);
  const n = parseExitNumber(values["snapshot-at-exit"]);
  const file = values["snapshot-out"];
  if (file === undefined || file === "") throw new UsageError("--snapshot-out FILE is required");
  const mode = parseMode(values.mode);
  const backend = chooseBackend(values.backend, err);
  if (mode !== undefined && backend !== "soft")
    throw new UsageError("--mode applies to the soft backend only");
  using machine: SnapshotMachine =
    backend === "kvm" ? X86DemoMachine.boot() : RiscvDemoMachine.boot({ mode: mode ?? "inline" });
  const run = runMachine(machine, { stopAtExit: n });
  const exits = machine.progress().exits;
  if (run.stopped !== "exit") {
    const how = run.last === undefined ? run.stopped : `${run.stopped} (${run.last.exit.kind})`;
    throw new SnapshotRunError(
      `Cannot snapshot at exit ${n}: the guest stopped at exit ${exits}, ${how}; nothing is left to resume`,
    );
  }
  const bytes = encodeSnapshot(captureMachine(machine, { meta: { creator: "regvisor" } }));
  writeFileSync(file, bytes);
  const output = decoder.decode(machine.output());
  if (values.json === true) {
    const json = {
      backend: machine.backend,
      snapshotAtExit: n,
      file,
      bytes: bytes.length,
      output,
      exitKinds: machine.progress().exitKinds,
      lastExit: run.last === undefined ? null : exitToJson(run.last.exit),
    };
    out.stdout(JSON.stringify(json, null, 2) + "\n");
  } else {
    out.stdout(output);
    const kind =
      run.last === undefined ? "before the first run" : `exit kind ${run.last.exit.kind}`;
    err(`regvisor: snapshot at exit ${n} (${kind}) written to ${file}: ${bytes.length} bytes\n`);
  }
  return 0;
}

function restoreOptions(
  values: Record<string, string | boolean | undefined>,
): MachineRestoreOptions {
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
  const mode = parseMode(typeof values.mode === "string" ? values.mode : undefined);
  return {
    ...(onMissing === undefined ? {} : { onMissing }),
    ...(onExtra === undefined ? {} : { onExtra }),
    ...(onSizeMismatch === undefined ? {} : { onSizeMismatch }),
    ...(mode === undefined ? {} : { mode }),
  };
}

function registerDump(machine: SnapshotMachine): DumpRegister[] {
  const vcpu = machine.vcpus[0];
  if (vcpu === undefined) return [];
  const ids = vcpu.regList();
  const packed = vcpu.getManyRegs(ids);
  let at = 0;
  return ids.map((id) => {
    const info = decodeReg(id);
    const value = packed.subarray(at, at + regSize(id));
    at += value.length;
    return { id, name: info.known ? info.name : "unknown", value };
  });
}

const RESTORE_OPTIONS = {
  mode: { type: "string" },
  "on-missing": { type: "string" },
  "on-extra": { type: "string" },
  "on-size-mismatch": { type: "string" },
  "dump-regs": { type: "boolean" },
  json: { type: "boolean" },
  ...ENDING_OPTIONS,
} as const;

/**
 * `regvisor restore FILE`: resolves to 0 when the guest finished, 1 when it stopped at an exit
 * the demo VMM does not handle, or the timeout/signal status.
 * @throws {UsageError} on a bad command line; {SnapshotFormatError} / {RestoreError} otherwise.
 */
export async function restoreCommand(
  argv: string[],
  out: Out,
  err: (t: string) => void,
): Promise<number> {
  const parsed = parseCommandLine("restore", argv, RESTORE_OPTIONS, RESTORE_HELP, out);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError("restore takes one FILE");
  const options = restoreOptions(values);
  const timeoutMs = parseTimeout(values.timeout);
  const restored = withFile(file, (bytes) => restoreMachine(bytes, options));
  using machine = restored.machine;
  const report = restored.report;
  const before = machine.output();
  let run;
  {
    using stop = listenForStopSignals();
    run = await runMachineBounded(machine, {
      stop,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
  }
  const all = machine.output();
  const output = decoder.decode(all.subarray(before.length));
  const clean = run.stopped === "finished";
  const status = run.ending?.status ?? (clean ? 0 : 1);
  const lastKind = run.last?.exit.kind ?? "none";
  // The guest's own ending keeps the line of a plain restore; a timeout or signal adds its status.
  const ended =
    run.ending === undefined
      ? `the guest ended with ${lastKind} after ${machine.progress().exits} exits`
      : `${run.ending.message} after ${machine.progress().exits} exits; exit status ${status}`;
  if (values.json === true) {
    const json = {
      file,
      backend: machine.backend,
      resumedAtExit: report.resumedAt.exits,
      output,
      outputBefore: decoder.decode(before),
      combinedOutput: decoder.decode(all),
      clean,
      reason: run.ending?.reason ?? (clean ? "finished" : "unexpected"),
      status,
      exits: machine.progress().exits,
      exitKinds: machine.progress().exitKinds,
      lastExit: run.last === undefined ? null : exitToJson(run.last.exit),
      restore: report,
      ...(values["dump-regs"] === true ? { registers: registersJson(registerDump(machine)) } : {}),
    };
    out.stdout(JSON.stringify(json, null, 2) + "\n");
  } else {
    out.stdout(output);
    if (values["dump-regs"] === true) out.stdout(registersTable(registerDump(machine)));
    err(
      `regvisor: resumed ${machine.backend} machine at exit ${report.resumedAt.exits}; ${ended}\n`,
    );
  }
  return status;
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
