/**
 * `regvisor run`: without FILE, runs the bundled demo guest on the KVM backend (x86-64 long
 * mode, printing through port 0xE9) or the soft backend (RISC-V S-mode, printing through the SBI
 * console); with FILE, runs the user's own ELF or flat binary (src/vmm/runner.ts) and exits with
 * the guest's status. Either way the final vCPU state can be dumped through the generic
 * register view.
 */
import { readFileSync } from "node:fs";
import type { Writable } from "node:stream";
import { parseArgs } from "node:util";
import { formatRegId } from "../abi/regid.js";
import { kvmUnavailableReason, runDemo } from "../backends/kvm/index.js";
import { runSoftDemo } from "../backends/soft/index.js";
import type { NamedRegister } from "../backends/register-view.js";
import type { VcpuExit } from "../backends/vcpu.js";
import { RegvisorError } from "../errors.js";
import { streamSink, type ConsoleSink } from "../vmm/machine/console-sink.js";
import { parseDiskSpec, type DiskSpec } from "../vmm/machine/disks.js";
import { MAX_CPUS, runGuest, type RunSummary } from "../vmm/runner.js";
import { stdinInput } from "../vmm/runner-input.js";
import type { BackendName } from "../vmm/runner-types.js";
import { OptionValueError, parseAddress, parseMemSize } from "../vmm/size.js";
import { X86_MODES, type X86Mode } from "../vmm/x86-boot.js";
import { backendPicker } from "./backends.js";
import { UsageError } from "./errors.js";
import { exitToJson, leHex } from "./json.js";
import type { Out } from "./regs.js";
import { formatTable } from "./table.js";

const RUN_HELP = `Usage: regvisor run [--backend kvm|soft] [--mode inline|threaded] [--dump-regs] [--json]
       regvisor run [options] FILE

Without FILE, runs the bundled demo guest. Without --backend, /dev/kvm is used when it works,
else the soft backend (with a one-line notice on stderr).
  --backend kvm   x86-64 guest on /dev/kvm: long mode, greeting and fib(90) through port 0xE9
  --backend soft  RISC-V guest on regvisor's software hypervisor, through the SBI console
  --mode M        soft backend only: inline (default with one vCPU) or threaded (each vCPU
                  in a Worker; the default with --cpus 2 or more)
  --dump-regs     print the final vCPU state: every id of the register list, by catalog name
  --json          print one JSON object: output, exits, last exit, registers

With FILE (an ELF, a RISC-V Linux Image, or a flat binary with --load-addr), runs your own
guest; the backend follows the file (x86-64/i386 ELF → kvm, RISC-V ELF or Image → soft). A
Linux Image is recognised by its header and loaded 2 MiB above the RAM base.
  --mem SIZE          guest RAM (default 128M; K, M, G suffixes)
  --cpus N            vCPUs (default 1, at most ${MAX_CPUS}); RISC-V secondaries start stopped
                      and come up through SBI HSM; x86 ones all start at the entry, rdi = index
  --initrd FILE       RISC-V Linux: initial ramdisk (/chosen/linux,initrd-start/end)
  --disk FILE[,readonly]  RISC-V: a raw disk image as virtio-blk (repeatable: /dev/vda, vdb,
                      …, virtio-mmio at 0x10001000 + n·0x1000, IRQ 1 + n); a guest flush is an
                      fsync of the file; readonly: guest writes fail with an I/O error
  --load-addr ADDR    flat binary: guest-physical load address
  --entry ADDR        flat binary: first instruction (default: the load address)
  --x86-mode M        real, protected or long (default: long for ELF64, protected for ELF32,
                      real for flat binaries)
  --cmdline TEXT      RISC-V: the device tree's /chosen/bootargs
  --timeout SECONDS   stop the guest after this long (exit status 124)
  --trace-exits       print every exit (kind, port/address, data) to stderr
  --stats             print exit counts, instructions retired (soft) and wall time to stderr
  --json              print one summary object: reason, status, counts, final registers
Exit status: 0 clean shutdown/halt; the value written to port 0xf4 or the SRST reason; 124
timeout or an x86 HLT that can never wake; 125 guest fault; 141 the console's reader went
away (EPIPE); 1 bad image; 2 bad command line.
`;

/** Options that only make sense with a FILE. */
const FILE_ONLY = [
  "mem",
  "cpus",
  "initrd",
  "disk",
  "load-addr",
  "entry",
  "x86-mode",
  "cmdline",
  "timeout",
  "trace-exits",
  "stats",
] as const;

/** Largest `--timeout`: what a 32-bit millisecond timer holds (about 24.8 days). */
const MAX_TIMEOUT_S = 2_147_483;

/**
 * `Out`, optionally able to take raw bytes (guest output is not always UTF-8), or the stream
 * itself, whose `write()` result gives guest output backpressure.
 */
export type RunOut = Out & {
  readonly stdoutBytes?: (bytes: Uint8Array) => void;
  readonly stdoutStream?: Writable;
};

type RunRegister = NamedRegister;

type Values = ReturnType<typeof parseRunArgs>["values"];

// The return type is parseArgs' own, inferred from the option table.
function parseRunArgs(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      backend: { type: "string" },
      mode: { type: "string" },
      "dump-regs": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      mem: { type: "string" },
      "load-addr": { type: "string" },
      entry: { type: "string" },
      "x86-mode": { type: "string" },
      cmdline: { type: "string" },
      cpus: { type: "string" },
      initrd: { type: "string" },
      disk: { type: "string", multiple: true },
      timeout: { type: "string" },
      "trace-exits": { type: "boolean", default: false },
      stats: { type: "boolean", default: false },
    },
  });
}

/** Value column for the human register dump: short values whole, long ones abbreviated. */
function valueText(value: Uint8Array): string {
  if (value.length <= 16) return leHex(value);
  const nonZero = value.reduce((n, b) => n + (b === 0 ? 0 : 1), 0);
  return `(${value.length} bytes, ${nonZero} non-zero)`;
}

function registersJson(regs: readonly RunRegister[]): unknown[] {
  return regs.map((r) => ({
    name: r.name,
    id: formatRegId(r.id),
    class: r.class,
    size: r.value.length,
    value: leHex(r.value),
  }));
}

function registersTable(regs: readonly RunRegister[]): string {
  const rows = regs.map((r) => [
    r.name,
    formatRegId(r.id),
    String(r.value.length),
    valueText(r.value),
  ]);
  return formatTable(["NAME", "ID", "SIZE", "VALUE"], rows);
}

function parseBackend(requested: string | undefined): BackendName | undefined {
  if (requested === undefined || requested === "kvm" || requested === "soft") return requested;
  throw new UsageError(`unknown backend "${requested}"; kvm or soft`);
}

function parseMode(mode: string | undefined): "inline" | "threaded" | undefined {
  if (mode === undefined || mode === "inline" || mode === "threaded") return mode;
  throw new UsageError(`unknown mode "${mode}"; inline or threaded`);
}

function chooseBackend(requested: string | undefined, err: (t: string) => void): "kvm" | "soft" {
  const backend = parseBackend(requested);
  if (backend !== undefined) return backend;
  const reason = kvmUnavailableReason();
  if (reason === undefined) return "kvm";
  err(`regvisor: /dev/kvm is not usable (${reason}); running on the soft backend\n`);
  return "soft";
}

/**
 * Runs `regvisor run …`; returns the exit status (0 when the guest finished cleanly; with FILE,
 * the guest's status as documented in RUN_HELP).
 * @throws {UsageError} on a bad command line; image and backend errors pass through.
 */
export async function runCommand(
  argv: string[],
  out: RunOut,
  err: (text: string) => void,
): Promise<number> {
  const { values, positionals } = parseRunArgs(argv);
  if (values.help) {
    out.stdout(RUN_HELP);
    return 0;
  }
  if (positionals.length > 1) {
    throw new UsageError(`run takes one FILE, got ${positionals.length}: ${positionals.join(" ")}`);
  }
  const file = positionals[0];
  if (file !== undefined) return runFile(file, values, out, err);
  const fileOnly = FILE_ONLY.find((name) => values[name] !== undefined && values[name] !== false);
  if (fileOnly !== undefined) {
    throw new UsageError(`--${fileOnly} needs a FILE to run (without one, run starts the demo)`);
  }
  return runBundledDemo(values, out, err);
}

function runBundledDemo(values: Values, out: Out, err: (text: string) => void): number {
  const mode = parseMode(values.mode);
  const backend = chooseBackend(values.backend, err);
  if (mode !== undefined && backend !== "soft") {
    throw new UsageError("--mode applies to the soft backend only");
  }
  const result: {
    output: string;
    exits: number;
    exitKinds: Readonly<Record<string, number>>;
    lastExit: VcpuExit;
    finalRegs: readonly RunRegister[];
  } = backend === "kvm" ? runDemo() : runSoftDemo(mode === undefined ? {} : { mode });
  const clean = backend === "kvm" ? result.lastExit.kind === "hlt" : isShutdown(result.lastExit);
  if (values.json) {
    const json = {
      backend,
      ...(backend === "soft" ? { mode: mode ?? "inline" } : {}),
      output: result.output,
      clean,
      exits: result.exits,
      exitKinds: result.exitKinds,
      lastExit: exitToJson(result.lastExit),
      ...(values["dump-regs"] ? { registers: registersJson(result.finalRegs) } : {}),
    };
    out.stdout(JSON.stringify(json, null, 2) + "\n");
  } else {
    out.stdout(result.output);
    if (values["dump-regs"]) out.stdout(registersTable(result.finalRegs));
    err(
      `regvisor: ${backend} guest ended with ${result.lastExit.kind} after ${result.exits} exits\n`,
    );
  }
  return clean ? 0 : 1;
}

function isShutdown(exit: VcpuExit): boolean {
  return exit.kind === "system_event" && exit.type === 1;
}

/** A guest file could not be read. */
export class GuestFileError extends RegvisorError {
  constructor(path: string, cause: unknown) {
    const code = cause instanceof Error && "code" in cause ? String(cause.code) : "";
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EISDIR"
          ? "it is a directory"
          : code === "EACCES"
            ? "permission denied"
            : cause instanceof Error
              ? cause.message
              : String(cause);
    super("GUEST_FILE", `Cannot read guest file "${path}": ${why}`, { cause });
  }
}

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const seconds = /^\d+(\.\d+)?$/.test(text.trim()) ? Number(text) : NaN;
  if (!(seconds > 0) || seconds > MAX_TIMEOUT_S) {
    throw new UsageError(
      `--timeout: expected a number of seconds between 0 and ${MAX_TIMEOUT_S}, such as 5 or 0.5, got ${JSON.stringify(text)}`,
    );
  }
  return seconds * 1000;
}

function parseX86Mode(text: string | undefined): X86Mode | undefined {
  if (text === undefined) return undefined;
  const mode = X86_MODES.find((m) => m === text);
  if (mode === undefined) {
    throw new UsageError(`--x86-mode: unknown mode "${text}"; ${X86_MODES.join(", ")}`);
  }
  return mode;
}

/** Guest output: the stream or raw bytes where `out` takes them, else UTF-8 decoded. */
function outputSink(out: RunOut): {
  write: ((bytes: Uint8Array) => void) | ConsoleSink;
  flush: () => void;
} {
  if (out.stdoutStream !== undefined) {
    return { write: streamSink(out.stdoutStream), flush: () => undefined };
  }
  const raw = out.stdoutBytes;
  if (raw !== undefined) return { write: raw, flush: () => undefined };
  const decoder = new TextDecoder();
  return {
    write: (bytes) => {
      const text = decoder.decode(bytes, { stream: true });
      if (text !== "") out.stdout(text);
    },
    flush: () => {
      const text = decoder.decode();
      if (text !== "") out.stdout(text);
    },
  };
}

function parseCpus(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MAX_CPUS)) {
    throw new UsageError(
      `--cpus: expected a whole number from 1 to ${MAX_CPUS}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

function parseDisks(texts: readonly string[] | undefined): DiskSpec[] {
  try {
    return (texts ?? []).map(parseDiskSpec);
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
}

function readGuestFile(path: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (error) {
    throw new GuestFileError(path, error);
  }
}

async function runFile(
  path: string,
  values: Values,
  out: RunOut,
  err: (t: string) => void,
): Promise<number> {
  const mode = parseMode(values.mode);
  const backend = parseBackend(values.backend);
  const timeoutMs = parseTimeout(values.timeout);
  const x86Mode = parseX86Mode(values["x86-mode"]);
  const cpus = parseCpus(values.cpus);
  const disks = parseDisks(values.disk);
  let summary: RunSummary;
  const captured: Uint8Array[] = [];
  const sink = values.json
    ? { write: (b: Uint8Array) => void captured.push(b.slice()), flush: () => undefined }
    : outputSink(out);
  try {
    const memSize = values.mem === undefined ? undefined : parseMemSize(values.mem);
    const loadAddr = optionalAddress(values["load-addr"], "--load-addr");
    const entry = optionalAddress(values.entry, "--entry");
    const file = readGuestFile(path);
    const initrd = values.initrd === undefined ? undefined : readGuestFile(values.initrd);
    using input = stdinInput();
    using backends = backendPicker({
      ...(mode === undefined ? {} : { mode }),
      ...(cpus === undefined ? {} : { cpus }),
    });
    summary = await runGuest({
      file,
      backendFor: backends.backendFor,
      ...(cpus === undefined ? {} : { cpus }),
      ...(initrd === undefined ? {} : { initrd }),
      ...(disks.length === 0 ? {} : { disks }),
      output: sink.write,
      input,
      ...(backend === undefined ? {} : { backend }),
      ...(mode === undefined ? {} : { mode }),
      ...(memSize === undefined ? {} : { memSize }),
      ...(loadAddr === undefined ? {} : { loadAddr }),
      ...(entry === undefined ? {} : { entry }),
      ...(x86Mode === undefined ? {} : { x86Mode }),
      ...(values.cmdline === undefined ? {} : { cmdline: values.cmdline }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(values["trace-exits"]
        ? {
            trace: (line: string) => {
              err(`regvisor: ${line}\n`);
            },
          }
        : {}),
      collectRegisters: values.json || values["dump-regs"],
    });
  } catch (error) {
    // A value the command line got wrong is a usage error (status 2), like a bad flag.
    if (error instanceof OptionValueError) throw new UsageError(error.message);
    throw error;
  } finally {
    sink.flush();
  }
  report(summary, values, out, err, captured);
  return summary.ending.status;
}

function optionalAddress(text: string | undefined, option: string): bigint | undefined {
  return text === undefined ? undefined : parseAddress(text, option);
}

function report(
  s: RunSummary,
  values: Values,
  out: Out,
  err: (t: string) => void,
  captured: readonly Uint8Array[],
): void {
  if (values.json) {
    out.stdout(JSON.stringify(summaryJson(s, captured), null, 2) + "\n");
  } else if (values["dump-regs"]) {
    out.stdout(registersTable(s.registers));
  }
  if (s.registersError !== undefined) {
    err(`regvisor: cannot read the final registers: ${s.registersError}\n`);
  }
  if (values.stats) {
    const kinds = Object.entries(s.exitKinds).map(([k, n]) => `${k} ${n}`);
    err(`regvisor: stats: ${s.exits} exits (${kinds.join(", ")})\n`);
    if (s.instructions !== undefined) {
      const perSecond = s.wallMs > 0 ? Number(s.instructions) / (s.wallMs / 1000) : 0;
      err(
        `regvisor: stats: ${s.instructions} guest instructions retired (${(perSecond / 1e6).toFixed(1)} M/s)\n`,
      );
    }
    err(`regvisor: stats: wall time ${(s.wallMs / 1000).toFixed(3)} s\n`);
  }
  const pc = `${s.pcName}=0x${s.pc.toString(16)}`;
  const exits = `${s.exits} exit${s.exits === 1 ? "" : "s"}`;
  err(`regvisor: ${s.ending.message} at ${pc} after ${exits}; exit status ${s.ending.status}\n`);
}

function summaryJson(s: RunSummary, captured: readonly Uint8Array[]): Record<string, unknown> {
  const bytes = Buffer.concat(captured);
  return {
    backend: s.backend,
    ...(s.mode === undefined ? {} : { mode: s.mode }),
    arch: s.arch,
    format: s.format,
    entry: `0x${s.entry.toString(16)}`,
    ...s.facts,
    output: new TextDecoder().decode(bytes),
    reason: s.ending.reason,
    status: s.ending.status,
    message: s.ending.message,
    ...(s.ending.value === undefined ? {} : { value: Number(s.ending.value) }),
    pcName: s.pcName,
    pc: `0x${s.pc.toString(16)}`,
    exits: s.exits,
    exitKinds: s.exitKinds,
    unclaimedAccesses: s.unclaimed,
    ...(s.instructions === undefined ? {} : { instructionsRetired: Number(s.instructions) }),
    wallSeconds: Number((s.wallMs / 1000).toFixed(6)),
    lastExit: s.lastExit === undefined ? null : exitToJson(s.lastExit),
    registers: registersJson(s.registers),
  };
}
