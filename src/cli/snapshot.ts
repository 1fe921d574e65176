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
import { parseArgs } from "node:util";
import { decodeReg } from "../abi/catalog.js";
import { formatRegId, regSize } from "../abi/regid.js";
import { kvmUnavailableReason } from "../backends/kvm/index.js";
import type { SoftMode } from "../backends/soft/index.js";
import { RegvisorError } from "../errors.js";
import {
  DEFAULT_LIMITS,
  RiscvDemoMachine,
  X86DemoMachine,
  captureMachine,
  decodeMachineState,
  decodeSnapshot,
  diffSnapshots,
  encodeSnapshot,
  inspectSnapshot,
  renderDiff,
  renderSummary,
  restoreMachine,
  runMachine,
  type MachineRestoreOptions,
  type SnapshotMachine,
} from "../vmm/snapshot/index.js";
import { readInputFile } from "../vmm/input-file.js";
import { UsageError } from "./errors.js";
import { exitToJson, leHex } from "./json.js";
import type { Out } from "./regs.js";
import { formatTable } from "./table.js";

const RUN_HELP = `Usage: regvisor run [--backend kvm|soft] [--mode inline|threaded]
                    --snapshot-at-exit N --snapshot-out FILE [--json]

Runs the bundled demo guest, stops after its N-th exit to the VMM (exits counted without
"intr"; 0 = before the first run), completes that exit (KVM_RUN with immediate_exit), writes a
snapshot of the whole machine to FILE and prints what the guest printed so far.
`;

const RESTORE_HELP = `Usage: regvisor restore FILE [--mode inline|threaded] [--dump-regs] [--json]
                       [--on-missing error|keep] [--on-extra error|ignore|try]
                       [--on-size-mismatch error|ignore]

Rebuilds the machine of a snapshot in this process (new VM, memslots, vCPUs), restores
registers, RAM and devices, and runs the guest to its end, printing what it prints after the
snapshot (--json: the output before, after and combined). --mode chooses the soft backend's
execution mode (default: the snapshot's). The --on-* options decide what a register present on
one side only does (default: error).
`;

const INSPECT_HELP = `Usage: regvisor inspect FILE [--values] [--no-registers] [--json]

Prints a snapshot's header, sections, registers by name and size, memory and devices.
`;

const DIFF_HELP = `Usage: regvisor diff A B [--json]

Register-level differences between two snapshots (plus memory pages and devices).
Exit status: 0 identical, 1 different (or an error).
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

function parseMode(mode: string | undefined): SoftMode | undefined {
  if (mode === undefined || mode === "inline" || mode === "threaded") return mode;
  throw new UsageError(`unknown mode "${mode}"; inline or threaded`);
}

function chooseBackend(requested: string | undefined, err: (t: string) => void): "kvm" | "soft" {
  if (requested === "kvm" || requested === "soft") return requested;
  if (requested !== undefined) throw new UsageError(`unknown backend "${requested}"; kvm or soft`);
  const reason = kvmUnavailableReason();
  if (reason === undefined) return "kvm";
  err(`regvisor: /dev/kvm is not usable (${reason}); running on the soft backend\n`);
  return "soft";
}

function parseExitNumber(text: string | undefined): number {
  if (text === undefined) throw new UsageError("--snapshot-at-exit N is required");
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
    throw new UsageError(`--snapshot-at-exit needs a non-negative integer, got "${text}"`);
  return n;
}

/**
 * `regvisor run … --snapshot-at-exit N --snapshot-out FILE`.
 * @throws {UsageError} on a bad command line; {SnapshotRunError} if the guest ends first.
 */
export function snapshotRunCommand(argv: string[], out: Out, err: (t: string) => void): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      backend: { type: "string" },
      mode: { type: "string" },
      "snapshot-at-exit": { type: "string" },
      "snapshot-out": { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out.stdout(RUN_HELP);
    return 0;
  }
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
  if (values.json) {
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

function registerDump(
  machine: SnapshotMachine,
): { name: string; id: string; size: number; value: string }[] {
  const vcpu = machine.vcpus[0];
  if (vcpu === undefined) return [];
  const ids = vcpu.regList();
  const packed = vcpu.getManyRegs(ids);
  let at = 0;
  return ids.map((id) => {
    const info = decodeReg(id);
    const value = packed.subarray(at, at + regSize(id));
    at += value.length;
    return {
      name: info.known ? info.name : "unknown",
      id: formatRegId(id),
      size: value.length,
      value: leHex(value),
    };
  });
}

/**
 * `regvisor restore FILE`.
 * @throws {UsageError} on a bad command line; {SnapshotFormatError} / {RestoreError} otherwise.
 */
export function restoreCommand(argv: string[], out: Out, err: (t: string) => void): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      mode: { type: "string" },
      "on-missing": { type: "string" },
      "on-extra": { type: "string" },
      "on-size-mismatch": { type: "string" },
      "dump-regs": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out.stdout(RESTORE_HELP);
    return 0;
  }
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError("restore takes one FILE");
  const options = restoreOptions(values);
  const restored = restoreMachine(readSnapshotFile(file), options);
  using machine = restored.machine;
  const report = restored.report;
  const before = machine.output();
  const run = runMachine(machine);
  const all = machine.output();
  const output = decoder.decode(all.subarray(before.length));
  const clean = run.stopped === "finished";
  const lastKind = run.last?.exit.kind ?? "none";
  if (values.json) {
    const json = {
      file,
      backend: machine.backend,
      resumedAtExit: report.resumedAt.exits,
      output,
      outputBefore: decoder.decode(before),
      combinedOutput: decoder.decode(all),
      clean,
      exits: machine.progress().exits,
      exitKinds: machine.progress().exitKinds,
      lastExit: run.last === undefined ? null : exitToJson(run.last.exit),
      restore: report,
      ...(values["dump-regs"] ? { registers: registerDump(machine) } : {}),
    };
    out.stdout(JSON.stringify(json, null, 2) + "\n");
  } else {
    out.stdout(output);
    if (values["dump-regs"]) {
      const rows = registerDump(machine).map((r) => [r.name, r.id, String(r.size), r.value]);
      out.stdout(formatTable(["NAME", "ID", "SIZE", "VALUE"], rows));
    }
    err(
      `regvisor: resumed ${machine.backend} machine at exit ${report.resumedAt.exits}; the guest ended with ${lastKind} after ${machine.progress().exits} exits\n`,
    );
  }
  return clean ? 0 : 1;
}

/** `regvisor inspect FILE`. @throws {SnapshotFormatError} if the file is not a snapshot. */
export function inspectCommand(argv: string[], out: Out): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      values: { type: "boolean", default: false },
      "no-registers": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out.stdout(INSPECT_HELP);
    return 0;
  }
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new UsageError("inspect takes one FILE");
  const decoded = decodeSnapshot(readSnapshotFile(file));
  const summary = inspectSnapshot(decoded, { values: values.values });
  const machine = machineSummary(decoded);
  if (values.json) {
    out.stdout(JSON.stringify({ file, ...summary, machine }, null, 2) + "\n");
    return 0;
  }
  out.stdout(renderSummary(summary, { registers: !values["no-registers"] }));
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

/** `regvisor diff A B`: 0 identical, 1 different. @throws {SnapshotFormatError} on a bad file. */
export function diffCommand(argv: string[], out: Out): number {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    out.stdout(DIFF_HELP);
    return 0;
  }
  if (positionals.length !== 2) throw new UsageError("diff takes two FILEs");
  const [a = "", b = ""] = positionals;
  const d = diffSnapshots(decodeSnapshot(readSnapshotFile(a)), decodeSnapshot(readSnapshotFile(b)));
  out.stdout(values.json ? JSON.stringify({ a, b, ...d }, null, 2) + "\n" : renderDiff(d));
  return d.identical ? 0 : 1;
}
