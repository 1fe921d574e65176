/**
 * `regvisor run --incoming tcp:HOST:PORT|unix:PATH [--api PATH] [machine options]`: the
 * destination of a live migration (src/vmm/migration/incoming.ts). Prints one line on stderr
 * when it listens and one when the guest arrived; the guest's console then continues on stdout.
 * A refused or broken stream ends with one line and status 1, before the guest ever ran here.
 */
import type { ApiServer } from "../vmm/api/server.js";
import { startApiServer } from "../vmm/api/server.js";
import type { RunMode } from "../vmm/machine/backend.js";
import type { Machine } from "../vmm/machine/machine.js";
import { receiveGuest, type IncomingExpectation } from "../vmm/migration/incoming.js";
import { machineSource } from "../vmm/migration/machine-source.js";
import { MigrationError, parseMigrationUri } from "../vmm/migration/transport.js";
import { stdinInput } from "../vmm/runner-input.js";
import { OptionValueError, parseMemSize } from "../vmm/size.js";
import { backendPicker, parseBackend, parseMode } from "./backends.js";
import { UsageError } from "./errors.js";
import { parseTimeout } from "./options.js";
import { outputSink, parseCpus, parseDisks, report, type RunOut, type Values } from "./run.js";
import { listenForStopSignals } from "./signals.js";

/** Options that describe a guest file, meaningless for a guest that arrives. */
const NOT_WITH_INCOMING = ["load-addr", "entry", "x86-mode", "initrd", "json"] as const;

/** Runs `run --incoming URI`; resolves to the exit status. */
export async function runIncoming(
  text: string,
  values: Values,
  out: RunOut,
  err: (t: string) => void,
): Promise<number> {
  const bad = NOT_WITH_INCOMING.find((name) => values[name] !== undefined);
  if (bad !== undefined) throw new UsageError(`--${bad} does not apply to run --incoming`);
  let uri;
  try {
    uri = parseMigrationUri(text);
  } catch (error) {
    throw new UsageError(`--incoming: ${(error as Error).message}`);
  }
  const backend = parseBackend(values.backend);
  const mode = parseMode(values.mode);
  const cpus = parseCpus(values.cpus);
  const disks = values.disk === undefined ? undefined : await parseDisks(values.disk);
  const timeoutMs = parseTimeout(values.timeout);
  let memSize: bigint | undefined;
  try {
    memSize = values.mem === undefined ? undefined : parseMemSize(values.mem);
  } catch (error) {
    if (error instanceof OptionValueError) throw new UsageError(error.message);
    throw error;
  }
  const expect: IncomingExpectation = {
    ...(backend === undefined ? {} : { backend }),
    ...(memSize === undefined ? {} : { memSize }),
    ...(cpus === undefined ? {} : { cpus }),
    ...(disks === undefined ? {} : { disks }),
    ...(values.cmdline === undefined ? {} : { cmdline: values.cmdline }),
  };
  const sink = outputSink(out);
  const pickers: Disposable[] = [];
  let api: ApiServer | undefined;
  const apiPath = values.api;
  try {
    using input = stdinInput();
    using stop = listenForStopSignals();
    const received = receiveGuest({
      uri,
      expect,
      ...(mode === undefined ? {} : { mode }),
      backendFor: (arch, wanted: RunMode | undefined) => {
        const picker = backendPicker(wanted === undefined ? {} : { mode: wanted });
        pickers.push(picker);
        return picker.backendFor(arch);
      },
      output: sink.write,
      input,
      stop,
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
      ...(values["trace-exits"] === true
        ? {
            trace: (line: string) => {
              err(`regvisor: ${line}\n`);
            },
          }
        : {}),
      collectRegisters: values["dump-regs"] === true,
      onListening: (where) => {
        err(`regvisor: waiting for a migration on ${where}\n`);
      },
      onReceived: ({ bytes, rounds }) => {
        err(
          `regvisor: the guest arrived (${(bytes / 1048576).toFixed(1)} MiB in ${rounds} rounds); it runs here now\n`,
        );
      },
      onMachine: async (machine: Machine) => {
        machine.enableMigration(machineSource);
        if (apiPath !== undefined) api = await startApiServer({ path: apiPath, control: machine });
      },
    });
    let summary;
    try {
      summary = await received;
    } catch (error) {
      // SIGINT/SIGTERM before the guest arrived: one line, and the signal's status.
      const ending = stop.requested();
      if (ending === undefined || !(error instanceof MigrationError)) throw error;
      err(`regvisor: ${error.message}\n`);
      return ending.status;
    }
    sink.flush();
    await report(summary, values, out, err, []);
    return summary.ending.status;
  } finally {
    sink.flush();
    await api?.close();
    for (const p of pickers) p[Symbol.dispose]();
  }
}
