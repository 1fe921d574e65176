/**
 * The DEVICE sections a whole-machine snapshot carries (format.ts, section type 4):
 *
 * | name | payload |
 * | --- | --- |
 * | `vmm.machine` | UTF-8 JSON object: `kind` (string, e.g. `"x86-demo"`) and that kind's options (e.g. `irqchip`, `n`, `memoryBytes`) |
 * | `vmm.run` | UTF-8 JSON object: `version` 1, `exits` (exits handled before the snapshot, `intr` excluded), `exitKinds` (`{kind: count}`), `quiesced` (true: the last exit was completed with an `immediate_exit` KVM_RUN before capture) |
 * | `vmm.console` | u32 version (1), then the bytes the guest printed so far |
 *
 * Decoding is as strict as the container's: anything unexpected is a `SnapshotFormatError`
 * (SNAPSHOT_MALFORMED) naming the device, so restore refuses before touching the destination.
 */
import { SnapshotFormatError } from "./errors.js";
import type { MachineConfig, RunProgress } from "./machine.js";
import type { DeviceState, Snapshot } from "./model.js";

/** Device names used by whole-machine snapshots. */
export const MACHINE_DEVICES = {
  machine: "vmm.machine",
  run: "vmm.run",
  console: "vmm.console",
} as const;

const CONSOLE_VERSION = 1;
const RUN_VERSION = 1;
/** Exit counts above this are refused (a demo takes ~100; a long guest stays far below). */
const MAX_EXITS = Number.MAX_SAFE_INTEGER;

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8Out = new TextEncoder();

function malformed(device: string, detail: string): SnapshotFormatError {
  return new SnapshotFormatError("SNAPSHOT_MALFORMED", `device "${device}": ${detail}`);
}

function parseJsonObject(device: string, data: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(data));
  } catch {
    throw malformed(device, "not valid UTF-8 JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw malformed(device, "not a JSON object");
  // Checked just above: a plain, non-array object.
  return value as Record<string, unknown>;
}

const isCount = (v: unknown): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= MAX_EXITS;

/** Encodes `vmm.machine`. */
export function encodeMachineConfig(config: MachineConfig): DeviceState {
  return { name: MACHINE_DEVICES.machine, data: utf8Out.encode(JSON.stringify(config)) };
}

/** Encodes `vmm.run`. */
export function encodeRunProgress(p: RunProgress, quiesced: boolean): DeviceState {
  const json = { version: RUN_VERSION, exits: p.exits, exitKinds: p.exitKinds, quiesced };
  return { name: MACHINE_DEVICES.run, data: utf8Out.encode(JSON.stringify(json)) };
}

/** Encodes `vmm.console`. */
export function encodeConsole(output: Uint8Array): DeviceState {
  const data = new Uint8Array(4 + output.length);
  new DataView(data.buffer).setUint32(0, CONSOLE_VERSION, true);
  data.set(output, 4);
  return { name: MACHINE_DEVICES.console, data };
}

/** The machine-level state of a snapshot, decoded and checked. */
export interface MachineState {
  readonly config: MachineConfig;
  readonly progress: RunProgress;
  readonly quiesced: boolean;
  readonly output: Uint8Array;
}

function device(s: Pick<Snapshot, "devices">, name: string): Uint8Array {
  const found = s.devices.find((d) => d.name === name);
  if (found === undefined) {
    throw new SnapshotFormatError(
      "SNAPSHOT_MALFORMED",
      `no "${name}" device: not a whole-machine snapshot (written by captureMachine / regvisor run --snapshot-at-exit)`,
    );
  }
  return found.data;
}

function decodeConfig(data: Uint8Array): MachineConfig {
  const json = parseJsonObject(MACHINE_DEVICES.machine, data);
  if (typeof json.kind !== "string" || json.kind === "")
    throw malformed(MACHINE_DEVICES.machine, '"kind" is not a non-empty string');
  return { ...json, kind: json.kind };
}

function decodeProgress(data: Uint8Array): { progress: RunProgress; quiesced: boolean } {
  const name = MACHINE_DEVICES.run;
  const json = parseJsonObject(name, data);
  if (json.version !== RUN_VERSION) throw malformed(name, `version is not ${RUN_VERSION}`);
  if (!isCount(json.exits)) throw malformed(name, '"exits" is not a count');
  if (typeof json.quiesced !== "boolean") throw malformed(name, '"quiesced" is not a boolean');
  const kinds = json.exitKinds;
  if (typeof kinds !== "object" || kinds === null || Array.isArray(kinds))
    throw malformed(name, '"exitKinds" is not an object');
  const exitKinds: Record<string, number> = {};
  let sum = 0;
  for (const [k, v] of Object.entries(kinds)) {
    if (!isCount(v)) throw malformed(name, `exitKinds.${k} is not a count`);
    exitKinds[k] = v;
    sum += v;
  }
  if (sum !== json.exits) throw malformed(name, `exitKinds add up to ${sum}, not ${json.exits}`);
  return { progress: { exits: json.exits, exitKinds }, quiesced: json.quiesced };
}

function decodeConsole(data: Uint8Array): Uint8Array {
  if (data.length < 4) throw malformed(MACHINE_DEVICES.console, "shorter than its 4-byte header");
  const version = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
  if (version !== CONSOLE_VERSION)
    throw malformed(MACHINE_DEVICES.console, `version ${version} is not ${CONSOLE_VERSION}`);
  return data.slice(4);
}

/**
 * Decodes the machine devices of a snapshot.
 * @throws {SnapshotFormatError} if one is missing or malformed.
 */
export function decodeMachineState(s: Pick<Snapshot, "devices">): MachineState {
  const config = decodeConfig(device(s, MACHINE_DEVICES.machine));
  const { progress, quiesced } = decodeProgress(device(s, MACHINE_DEVICES.run));
  const output = decodeConsole(device(s, MACHINE_DEVICES.console));
  return { config, progress, quiesced, output };
}
