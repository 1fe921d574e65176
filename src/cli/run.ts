/**
 * `regvisor run`: without FILE, runs the bundled demo guest of the backend's architecture
 * (src/vmm/demo.ts: x86-64 long mode on KVM printing through port 0xE9, or RISC-V S-mode on the
 * soft backend printing through the SBI console); with FILE, runs the user's own ELF, Linux
 * Image or flat binary. Both go through the one runner (src/vmm/runner-core.ts) and exit with the
 * guest's status; `--snapshot-at-exit N --snapshot-out F` stops either after its N-th exit and
 * writes a snapshot of the whole machine (src/vmm/machine/state.ts) for `regvisor restore`.
 */
import { writeFileSync } from "node:fs";
import type { Writable } from "node:stream";
import { RegvisorError } from "../errors.js";
// The API server, gdb stub, migration source, demo images, disks and the register dump are
// imported where they are used: a plain `run FILE` does not load them (start-up time counts in
// every guest's boot).
import type { ApiServer } from "../vmm/api/server.js";
import type { GdbAddress } from "../vmm/gdbstub/server.js";
import type { MachineGdb } from "../vmm/machine/debug.js";
import { OpenInputFile, readInputFile } from "../vmm/input-file.js";
import { bufferedSink, streamSink, type ConsoleSink } from "../vmm/machine/console-sink.js";
import type { DiskSpec } from "../vmm/machine/disks.js";
import type { Machine, MachineRunResult } from "../vmm/machine/machine.js";
import { MAX_CPUS, runGuest, type RunRequest, type RunSummary } from "../vmm/runner-core.js";
import { noInput, stdinInput } from "../vmm/runner-input.js";
import { OptionValueError, parseAddress, parseMemSize } from "../vmm/size.js";
import type { X86Mode } from "../vmm/x86-boot.js";
import { backendPicker, chooseBackend, parseBackend, parseMode } from "./backends.js";
import { UsageError } from "./errors.js";
import { exitToJson } from "./json.js";
import { parseCommandLine, parseTimeout, type OptionValues } from "./options.js";
import type { Out } from "./regs.js";
import { RUN_OPTIONS } from "./run-options.js";
import { listenForStopSignals } from "./signals.js";

const RUN_HELP = `Usage: regvisor run [--backend kvm|soft] [--mode inline|threaded] [--dump-regs] [--json]
       regvisor run [options] FILE
       regvisor run [options] [FILE] --snapshot-at-exit N --snapshot-out SNAP [--json]

Without FILE, runs the bundled demo guest. Without --backend, /dev/kvm (or the device in
REGVISOR_KVM_DEVICE) is used when it works, else the soft backend (with a one-line notice).
  --backend kvm   x86-64 guest on /dev/kvm: long mode, greeting and fib(90) through port 0xE9
  --backend soft  RISC-V guest on regvisor's software hypervisor, through the SBI console
  --mode M        soft backend only: inline (default with one vCPU) or threaded (each vCPU
                  in a Worker; the default with --cpus 2 or more)
  --dump-regs     print the final vCPU state: every id of the register list, by catalog name
  --json          print one JSON object: output, reason, status, pc, exits, last exit, registers
  --snapshot-at-exit N  stop the guest (demo or FILE) after its N-th exit to the VMM (intr
                        not counted, all vCPUs together; 0 = before the first run), complete
                        that exit and write a snapshot of the whole machine (see 'regvisor
                        restore --help'); stdout has what the guest printed so far
  --snapshot-out SNAP   where that snapshot goes

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
  --virtio-console    RISC-V: a virtio-console as the guest console (stdin/stdout), on the
                      virtio-mmio transport after the disks; Linux 6.1 names it hvc1
                      (console=hvc1; hvc0 is the SBI console)
  --load-addr ADDR    flat binary: guest-physical load address
  --entry ADDR        flat binary: first instruction (default: the load address)
  --x86-mode M        real, protected or long (default: long for ELF64, protected for ELF32,
                      real for flat binaries)
  --cmdline TEXT      RISC-V: the device tree's /chosen/bootargs
  --timeout SECONDS   stop the guest after this long (exit status 124)
  --api PATH          serve the control socket on the Unix socket PATH while the guest runs
                      (GET /status; PUT /pause, /resume, /quit, /migrate; see 'regvisor ctl
                      --help'); the guest can live-migrate (its RAM logs dirty pages only
                      while a migration runs)
  --incoming URI      instead of FILE: wait on tcp:HOST:PORT or unix:PATH for one live
                      migration ('regvisor ctl PATH migrate URI' on the source) and run the
                      guest it brings; --mem, --cpus, --disk, --cmdline, --backend, if given,
                      must match it
  --gdb ADDRESS       serve a GDB remote stub: HOST:PORT (loopback only), :PORT, or unix:PATH;
                      a debugger that connects stops the guest (target remote ADDRESS)
  --gdb-wait          with --gdb: no guest instruction runs until the debugger continues
  --gdb-allow-remote  with --gdb: listen on a non-loopback HOST (the stub is full control)
  --gdb-continue-on-disconnect  a debugger that goes away without detaching lets the guest
                      run on (default: the guest stays stopped until a debugger reattaches)
  --trace-exits       print every exit (kind, port/address, data) to stderr
  --stats             print exit counts, instructions retired (soft) and wall time to stderr
  --json              print one summary object: reason, status, counts, final registers
Exit status: 0 clean shutdown/halt, or a quit on the control socket; the value written to
port 0xf4 or the SRST reason; 124 timeout or an x86 HLT that can never wake; 125 guest fault;
130/143 stopped by SIGINT/SIGTERM; 141 stdout's (the console's) reader went away (EPIPE);
74 stdout failed otherwise (ENOSPC); 1 bad image; 2 bad command line.
`;

/** Options that only make sense with a FILE. */
const FILE_ONLY = [
  "mem",
  "cpus",
  "initrd",
  "disk",
  "virtio-console",
  "load-addr",
  "entry",
  "x86-mode",
  "cmdline",
  "api",
  "gdb",
  "gdb-wait",
  "gdb-allow-remote",
  "gdb-continue-on-disconnect",
  "timeout",
  "trace-exits",
  "stats",
] as const satisfies readonly (keyof typeof RUN_OPTIONS)[];

/**
 * `Out`, optionally able to take raw bytes (guest output is not always UTF-8), or the stream
 * itself, whose `write()` result gives guest output backpressure.
 */
export type RunOut = Out & {
  readonly stdoutBytes?: (bytes: Uint8Array) => void;
  readonly stdoutStream?: Writable;
};

/** Parsed `run` options. */
export type Values = OptionValues<typeof RUN_OPTIONS>;

/**
 * Runs `regvisor run …`; resolves to the exit status (0 when the guest finished cleanly; with
 * FILE, the guest's status as documented in RUN_HELP).
 * @throws {UsageError} on a bad command line; image and backend errors pass through.
 */
export async function runCommand(
  argv: string[],
  out: RunOut,
  err: (text: string) => void,
): Promise<number> {
  const parsed = parseCommandLine("run", argv, RUN_OPTIONS, RUN_HELP, out);
  if (parsed === undefined) return 0;
  const { values, positionals } = parsed;
  if (positionals.length > 1) {
    throw new UsageError(`run takes one FILE, got ${positionals.length}: ${positionals.join(" ")}`);
  }
  const file = positionals[0];
  if (values.incoming !== undefined) {
    if (file !== undefined)
      throw new UsageError("run --incoming takes no FILE: the guest comes from the stream");
    return (await import("./incoming.js")).runIncoming(values.incoming, values, out, err);
  }
  const snapshot = parseSnapshotFlags(values);
  if (file !== undefined) return runFile(file, values, snapshot, out, err);
  const fileOnly = FILE_ONLY.find((name) => values[name] !== undefined && values[name] !== false);
  if (fileOnly !== undefined) {
    throw new UsageError(`--${fileOnly} needs a FILE to run (without one, run starts the demo)`);
  }
  return runBundledDemo(values, snapshot, out, err);
}

/** `--snapshot-at-exit N --snapshot-out SNAP`. */
interface SnapshotFlags {
  readonly atExit: number;
  readonly file: string;
}

/** A run that could not produce the requested snapshot. */
export class SnapshotRunError extends RegvisorError {
  constructor(message: string) {
    super("SNAPSHOT_RUN", message);
  }
}

function parseSnapshotFlags(values: Values): SnapshotFlags | undefined {
  const text = values["snapshot-at-exit"];
  const file = values["snapshot-out"];
  if (text === undefined && file === undefined) return undefined;
  if (text === undefined) throw new UsageError("--snapshot-out needs --snapshot-at-exit N");
  const n = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(n))
    throw new UsageError(
      `--snapshot-at-exit: expected an exit count of 0 or more, such as 2, got "${text}"`,
    );
  if (file === undefined || file === "") throw new UsageError("--snapshot-out FILE is required");
  return { atExit: n, file };
}

/** What a snapshot run wrote (or why it could not). */
interface SnapshotWritten {
  bytes?: number;
  failure?: string;
}

/** Stops the run at exit N and writes the snapshot once the machine has stopped. */
function snapshotHooks(
  flags: SnapshotFlags | undefined,
  written: SnapshotWritten,
): Pick<RunRequest, "stopAtExit" | "afterRun"> {
  if (flags === undefined) return {};
  return {
    stopAtExit: flags.atExit,
    afterRun: async (machine: Machine, result: MachineRunResult) => {
      if (result.ending.reason !== "snapshot") {
        const exits = machine.progress().exits;
        const clean = result.ending.status === 0 && result.ending.reason !== "quit";
        const kind = result.lastExit === undefined ? "" : ` (${result.lastExit.kind})`;
        written.failure = `Cannot snapshot at exit ${flags.atExit}: the guest stopped at exit ${exits}, ${clean ? "finished" : result.ending.reason}${kind}; nothing is left to resume`;
        return;
      }
      const { encodeSnapshot } = await import("../vmm/snapshot/format.js");
      const bytes = encodeSnapshot(await machine.captureState());
      writeFileSync(flags.file, bytes);
      written.bytes = bytes.length;
    },
  };
}

/** Reports a snapshot run: JSON, or the output so far and one line on stderr. */
function reportSnapshot(
  s: RunSummary,
  flags: SnapshotFlags,
  written: SnapshotWritten,
  output: string | undefined,
  values: Values,
  out: Out,
  err: (t: string) => void,
): number {
  if (written.failure !== undefined || written.bytes === undefined) {
    throw new SnapshotRunError(written.failure ?? `Cannot snapshot at exit ${flags.atExit}`);
  }
  const lastExit = s.lastExit === undefined ? null : exitToJson(s.lastExit);
  if (values.json === true) {
    const json = {
      backend: s.mode === undefined ? s.backend : `${s.backend}-${s.mode}`,
      guest: s.format,
      snapshotAtExit: flags.atExit,
      file: flags.file,
      bytes: written.bytes,
      output: output ?? "",
      exitKinds: withoutIntr(s.exitKinds),
      lastExit,
    };
    out.stdout(JSON.stringify(json, null, 2) + "\n");
  } else {
    const kind = s.lastExit === undefined ? "before the first run" : `exit kind ${s.lastExit.kind}`;
    err(
      `regvisor: snapshot at exit ${flags.atExit} (${kind}) written to ${flags.file}: ${written.bytes} bytes\n`,
    );
  }
  return 0;
}

function withoutIntr(kinds: Readonly<Record<string, number>>): Record<string, number> {
  return Object.fromEntries(Object.entries(kinds).filter(([k]) => k !== "intr"));
}

/**
 * The bundled demo through the runner: the backend picks the architecture (src/vmm/demo.ts);
 * no console input, so every run prints the same.
 */
async function runBundledDemo(
  values: Values,
  snapshot: SnapshotFlags | undefined,
  out: RunOut,
  err: (text: string) => void,
): Promise<number> {
  const mode = parseMode(values.mode);
  const backend = chooseBackend(values.backend, err);
  if (mode !== undefined && backend !== "soft") {
    throw new UsageError("--mode applies to the soft backend only");
  }
  const { DEMO_SPECS, demoImage } = await import("../vmm/demo.js");
  const spec = DEMO_SPECS[backend === "kvm" ? "x86" : "riscv"];
  using backends = backendPicker(mode === undefined ? {} : { mode });
  const written: SnapshotWritten = {};
  let output = "";
  const decoder = new TextDecoder();
  const summary = await runGuest({
    file: demoImage(spec),
    guest: "demo",
    backendFor: backends.backendFor,
    backend,
    ...(mode === undefined ? {} : { mode }),
    memSize: spec.memSize,
    loadAddr: spec.loadAddr,
    ...(spec.x86Mode === undefined ? {} : { x86Mode: spec.x86Mode }),
    ...(spec.demoInput === undefined ? {} : { demoInput: spec.demoInput }),
    ...(spec.irqchip === undefined ? {} : { irqchip: spec.irqchip }),
    output: (bytes) => (output += decoder.decode(bytes, { stream: true })),
    input: noInput(),
    collectRegisters: values.json === true || values["dump-regs"] === true,
    ...snapshotHooks(snapshot, written),
  });
  output += decoder.decode();
  if (snapshot !== undefined) {
    if (values.json !== true) out.stdout(output);
    return reportSnapshot(summary, snapshot, written, output, values, out, err);
  }
  // Exits to the VMM, as the demo has always counted them: `intr` returns are not exits.
  const counted = summary.exits - (summary.exitKinds.intr ?? 0);
  const dumpRegs = values["dump-regs"] === true;
  const registers = values.json === true || dumpRegs ? await import("./registers.js") : undefined;
  if (values.json === true) {
    const json = {
      backend,
      ...(backend === "soft" ? { mode: mode ?? "inline" } : {}),
      output,
      reason: summary.ending.reason,
      status: summary.ending.status,
      message: summary.ending.message,
      clean: summary.ending.status === 0,
      pcName: summary.pcName,
      pc: `0x${summary.pc.toString(16)}`,
      exits: counted,
      exitKinds: withoutIntr(summary.exitKinds),
      lastExit: summary.lastExit === undefined ? null : exitToJson(summary.lastExit),
      ...(dumpRegs ? { registers: registers?.registersJson(summary.registers) } : {}),
    };
    out.stdout(JSON.stringify(json, null, 2) + "\n");
  } else {
    out.stdout(output);
    if (registers !== undefined) out.stdout(registers.registersTable(summary.registers));
    const kind = summary.lastExit?.kind ?? summary.ending.reason;
    err(`regvisor: ${backend} guest ended with ${kind} after ${counted} exits\n`);
  }
  return summary.ending.status;
}

/** The smallest size limit of a guest image file (see runFile). */
const GUEST_IMAGE_MIN_LIMIT = 1 << 30;

/** `--x86-mode`, checked (the x86 boot code is loaded only when it is given). */
async function parseX86Mode(text: string | undefined): Promise<X86Mode | undefined> {
  if (text === undefined) return undefined;
  const { X86_MODES } = await import("../vmm/x86-boot.js");
  const mode = X86_MODES.find((m) => m === text);
  if (mode === undefined) {
    throw new UsageError(`--x86-mode: unknown mode "${text}"; ${X86_MODES.join(", ")}`);
  }
  return mode;
}

/** Guest output: the stream or raw bytes where `out` takes them, else UTF-8 decoded. */
export function outputSink(out: RunOut): {
  write: ((bytes: Uint8Array) => void) | ConsoleSink;
  flush: () => void;
} {
  if (out.stdoutStream !== undefined) {
    // One write(2) per line, not per SBI putchar (console-sink.ts). A second Ctrl-C ends the
    // process at once (signals.ts): the 'exit' listener still writes what is held back.
    const sink = bufferedSink(streamSink(out.stdoutStream));
    const atExit = (): void => {
      sink.flush();
    };
    process.once("exit", atExit);
    return {
      write: sink,
      flush: () => {
        process.off("exit", atExit);
        sink.flush();
      },
    };
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

/** `--cpus`, checked. */
export function parseCpus(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = /^\d+$/.test(text.trim()) ? Number(text) : NaN;
  if (!(n >= 1 && n <= MAX_CPUS)) {
    throw new UsageError(
      `--cpus: expected a whole number from 1 to ${MAX_CPUS}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/** `--disk`s, checked (the disk code is loaded only when there are some). */
export async function parseDisks(texts: readonly string[] | undefined): Promise<DiskSpec[]> {
  if (texts === undefined || texts.length === 0) return [];
  const { parseDiskSpec } = await import("../vmm/machine/disks.js");
  try {
    return texts.map(parseDiskSpec);
  } catch (error) {
    if (error instanceof RangeError) throw new UsageError(error.message);
    throw error;
  }
}

async function runFile(
  path: string,
  values: Values,
  snapshot: SnapshotFlags | undefined,
  out: RunOut,
  err: (t: string) => void,
): Promise<number> {
  const mode = parseMode(values.mode);
  const backend = parseBackend(values.backend);
  const timeoutMs = parseTimeout(values.timeout);
  const x86Mode = await parseX86Mode(values["x86-mode"]);
  const cpus = parseCpus(values.cpus);
  const disks = await parseDisks(values.disk);
  const json = values.json === true;
  let summary: RunSummary;
  let api: ApiServer | undefined;
  const written: SnapshotWritten = {};
  let gdb: MachineGdb | undefined;
  const captured: Uint8Array[] = [];
  const sink = json
    ? { write: (b: Uint8Array) => void captured.push(b.slice()), flush: () => undefined }
    : outputSink(out);
  try {
    const memSize = values.mem === undefined ? undefined : parseMemSize(values.mem);
    const loadAddr = optionalAddress(values["load-addr"], "--load-addr");
    const entry = optionalAddress(values.entry, "--entry");
    // An image larger than guest RAM cannot load; an ELF may carry symbols beyond its
    // segments, so the limit is RAM or 1 GiB, whichever is larger. An initrd lies in RAM whole.
    const maxBytes = Math.max(Number(memSize ?? 0n), GUEST_IMAGE_MIN_LIMIT);
    // Held open and read where its bytes go: a flat binary or Linux Image straight into RAM.
    using file = new OpenInputFile(path, { what: "guest image", maxBytes });
    const initrd =
      values.initrd === undefined
        ? undefined
        : readInputFile(values.initrd, { what: "initrd", maxBytes });
    using input = stdinInput();
    using stop = listenForStopSignals();
    using backends = backendPicker({
      ...(mode === undefined ? {} : { mode }),
      ...(cpus === undefined ? {} : { cpus }),
    });
    const apiPath = values.api;
    const gdbOptions = await parseGdbOptions(values);
    try {
      summary = await runGuest({
        file,
        backendFor: backends.backendFor,
        ...(cpus === undefined ? {} : { cpus }),
        ...(initrd === undefined ? {} : { initrd }),
        ...(disks.length === 0 ? {} : { disks }),
        ...(values["virtio-console"] === true ? { virtioConsole: true } : {}),
        output: sink.write,
        input,
        stop,
        ...(backend === undefined ? {} : { backend }),
        ...(mode === undefined ? {} : { mode }),
        ...(memSize === undefined ? {} : { memSize }),
        ...(loadAddr === undefined ? {} : { loadAddr }),
        ...(entry === undefined ? {} : { entry }),
        ...(x86Mode === undefined ? {} : { x86Mode }),
        ...(values.cmdline === undefined ? {} : { cmdline: values.cmdline }),
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
        ...(values["trace-exits"] === true
          ? {
              trace: (line: string) => {
                err(`regvisor: ${line}\n`);
              },
            }
          : {}),
        collectRegisters: json || values["dump-regs"] === true,
        ...snapshotHooks(snapshot, written),
        ...(apiPath === undefined && gdbOptions === undefined
          ? {}
          : {
              onMachine: async (machine: Machine) => {
                const { MachineGdb } = await import("../vmm/machine/debug.js");
                const stub = new MachineGdb(machine, (line) => {
                  err(`regvisor: ${line}\n`);
                });
                gdb = stub;
                if (gdbOptions !== undefined) await startRunGdb(machine, stub, gdbOptions, err);
                if (apiPath !== undefined) {
                  const { machineSource } = await import("../vmm/migration/machine-source.js");
                  const { startApiServer } = await import("../vmm/api/server.js");
                  machine.enableMigration(machineSource);
                  api = await startApiServer({
                    path: apiPath,
                    control: machine,
                    gdb: (address) => stub.attach(address),
                  });
                }
              },
            }),
      });
    } finally {
      // The sockets live as long as the machine: a client sees them vanish when the run ends.
      await api?.close();
      await gdb?.close();
    }
  } catch (error) {
    // A value the command line got wrong is a usage error (status 2), like a bad flag.
    if (error instanceof OptionValueError) throw new UsageError(error.message);
    throw error;
  } finally {
    sink.flush();
  }
  if (snapshot !== undefined) {
    const output = json ? new TextDecoder().decode(Buffer.concat(captured)) : undefined;
    return reportSnapshot(summary, snapshot, written, output, values, out, err);
  }
  await report(summary, values, out, err, captured);
  return summary.ending.status;
}

/** `--gdb*` as given, or undefined without `--gdb`. */
interface RunGdbOptions {
  readonly address: GdbAddress;
  readonly wait: boolean;
  readonly allowRemote: boolean;
  readonly onDisconnect: "stay" | "continue";
}

async function parseGdbOptions(values: Values): Promise<RunGdbOptions | undefined> {
  const text = values.gdb;
  if (text === undefined) {
    for (const flag of ["gdb-wait", "gdb-allow-remote", "gdb-continue-on-disconnect"] as const) {
      if (values[flag] === true) throw new UsageError(`--${flag} needs --gdb ADDRESS`);
    }
    return undefined;
  }
  const { parseGdbAddress } = await import("../vmm/gdbstub/server.js");
  let address: GdbAddress;
  try {
    address = parseGdbAddress(text);
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
  return {
    address,
    wait: values["gdb-wait"] === true,
    allowRemote: values["gdb-allow-remote"] === true,
    onDisconnect: values["gdb-continue-on-disconnect"] === true ? "continue" : "stay",
  };
}

/** Starts `--gdb` for `machine` (paused first with `--gdb-wait`) and says where it listens. */
async function startRunGdb(
  machine: Machine,
  stub: MachineGdb,
  options: RunGdbOptions,
  err: (t: string) => void,
): Promise<void> {
  const endpoint = await stub.start(options.address, {
    allowRemote: options.allowRemote,
    onDisconnect: options.onDisconnect,
  });
  if (options.wait) machine.holdAtStart();
  const waiting = options.wait ? "; the guest waits for it to continue" : "";
  err(`regvisor: gdb: listening on ${endpoint} (target remote ${endpoint})${waiting}\n`);
}

function optionalAddress(text: string | undefined, option: string): bigint | undefined {
  return text === undefined ? undefined : parseAddress(text, option);
}

/** The end-of-run lines (`--json`, `--dump-regs`, `--stats`, the one-line ending). */
export async function report(
  s: RunSummary,
  values: Values,
  out: Out,
  err: (t: string) => void,
  captured: readonly Uint8Array[],
): Promise<void> {
  if (values.json === true) {
    const { registersJson } = await import("./registers.js");
    const json = { ...summaryJson(s, captured), registers: registersJson(s.registers) };
    out.stdout(JSON.stringify(json, null, 2) + "\n");
  } else if (values["dump-regs"] === true) {
    out.stdout((await import("./registers.js")).registersTable(s.registers));
  }
  if (s.registersError !== undefined) {
    err(`regvisor: cannot read the final registers: ${s.registersError}\n`);
  }
  if (values.stats === true) {
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
  };
}
