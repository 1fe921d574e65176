/**
 * The machine's state, piece by piece (issue 11 point 7; issue 15 builds on it): what a snapshot
 * file and a migration stream carry and how a destination is rebuilt from them.
 *
 *   describe       `describeMachine()` (./description.ts) — a JSON-able `MachineDescription`: arch, backend and
 *                  mode, guest kind, vCPUs, cmdline, RAM slots with their KVM_MEM_* flags,
 *                  devices (kind, state version, address, irq), disks by path with an identity
 *                  (size, mtime, SHA-256 of the whole file) and their read-only flag;
 *   quiesce        `quiesceVcpus()` — every vCPU parked between exits completes its last exit
 *                  with a run that returns `intr` at once (`kick()` = KVM's `immediate_exit`):
 *                  KVM finishes a pending port IN, MMIO read or SBI call only on the next
 *                  KVM_RUN (Documentation/virt/kvm/api.rst, "KVM_RUN"), so no state hides there;
 *   capture        `captureVcpus()` (`regList()` + one `getManyRegs` per vCPU), `ramRegions()`
 *                  (live views, one per memslot), `saveDevices()` (one DEVICE section each);
 *   build empty    `buildEmptyMachine()` — the arch part's `build()`: VM, memslots with the
 *                  described flags, vCPUs, devices wired, RAM zero, no boot payload;
 *   load RAM       `loadRam()` — fresh RAM (only stored pages written) or RAM that already holds
 *                  an older round (every page written, zero pages too);
 *   apply          `applyVcpuState()` (the restore policy, then the arch fixups) and
 *                  `restoreDevices()` (each device's section, by name).
 *
 * Device sections carry the device's `DeviceState` as a u32 version (little-endian) followed by
 * its bytes; the machine-level sections `vmm.machine` (the description), `vmm.run` (exit
 * counters) and `vmm.console` (the console output so far, bounded) are ../snapshot/devices.ts's.
 *
 * vCPU power state (`captureVcpuPower()` / `applyVcpuPower()`, beside `captureVcpus()` /
 * `applyVcpuState()`): KVM_GET/SET_MP_STATE. On x86 it is the MP_STATE pseudo register, already
 * in every vCPU's register list, so it travels there and nowhere else. RISC-V has no register
 * for it (SBI HSM started/stopped lives in `vcpu->arch.mp_state`, arch/riscv/kvm/vcpu.c), so
 * it travels as the section `vmm.mp-state`: u32 count, then count × u32 `KVM_MP_STATE_*` in
 * vCPU index order (little-endian). Without it a restored secondary hart would stay stopped.
 *
 * Disk identity: size and SHA-256 decide whether a disk is the one the state was taken with (a
 * changed byte anywhere is caught; hashing costs one read of the file, ~0.2 s per 100 MiB here);
 * mtime is recorded and named in the refusal, but a file whose mtime alone changed (copied,
 * touched) is accepted.
 */
import { X86_PSEUDO } from "../../abi/arch/x86/index.js";
import type { ArchName } from "../../abi/regid.js";
import type { GuestMemory, Vcpu, Vm } from "../../backends/vcpu.js";
import type { Device } from "../devices/types.js";
import { applyArchFixups } from "../snapshot/arch-fixups.js";
import { decodeMachineState } from "../snapshot/devices.js";
import { SnapshotFormatError } from "../snapshot/errors.js";
import type { RunProgress } from "../snapshot/machine.js";
import { forEachStoredPage, regionLength } from "../snapshot/memory-pages.js";
import { memslotFlags } from "../snapshot/memslot-flags.js";
import type {
  DeviceState as SectionState,
  MemoryRegion,
  Snapshot,
  SnapshotBackend,
} from "../snapshot/model.js";
import {
  captureVcpu,
  restoreSnapshot,
  type RestoreReport,
  type RestoreSnapshotOptions,
} from "../snapshot/restore.js";
import type { MachineBackend } from "./backend.js";
import type { ArchDefinition, ArchMachine, MachineDevice, MachineIo, RamSlot } from "./types.js";
import type { BlockBackend } from "../devices/virtio/disk.js";
import {
  DESCRIPTION_VERSION,
  type DeviceDescription,
  type DiskDescription,
  type MachineDescription,
  type RamDescription,
} from "./description.js";

export * from "./description.js";

const hex = (v: bigint): string => `0x${v.toString(16)}`;

function bad(detail: string): SnapshotFormatError {
  return new SnapshotFormatError("SNAPSHOT_MALFORMED", `device "vmm.machine": ${detail}`);
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const isInt = (v: unknown, max: number): v is number =>
  typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= max;
const isHex = (v: unknown): v is string => typeof v === "string" && /^0x[0-9a-f]{1,16}$/.test(v);
const isText = (v: unknown): v is string => typeof v === "string" && v.length <= 4096;

/** Most vCPUs and RAM slots a description may name (KVM_MAX_VCPUS on x86; KVM_USER_MEM_SLOTS). */
const MAX_DESCRIBED = 4096;
const MAX_RAM_BYTES = 2 ** 40;

function parseRam(v: unknown, i: number): RamDescription {
  if (!isObject(v)) throw bad(`ram[${i}] is not an object`);
  const { slot, gpa, size, flags } = v;
  if (!isInt(slot, 32767)) throw bad(`ram[${i}].slot is not a slot number`);
  if (!isHex(gpa)) throw bad(`ram[${i}].gpa is not a hex address`);
  if (!isInt(size, MAX_RAM_BYTES) || size === 0 || size % 4096 !== 0)
    throw bad(`ram[${i}].size is not a whole number of 4 KiB pages`);
  if (!isInt(flags, 0xffff_ffff)) throw bad(`ram[${i}].flags is not a u32`);
  return { slot, gpa, size, flags };
}

function parseDevice(v: unknown, i: number): DeviceDescription {
  if (!isObject(v)) throw bad(`devices[${i}] is not an object`);
  const { name, kind, version, address, irq } = v;
  if (!isText(name) || name === "" || name.startsWith("vmm."))
    throw bad(`devices[${i}].name is not a device name`);
  if (!isText(kind)) throw bad(`devices[${i}].kind is not a string`);
  if (!isInt(version, 0xffff_ffff)) throw bad(`devices[${i}].version is not a u32`);
  if (address !== undefined && !isHex(address)) throw bad(`devices[${i}].address is not hex`);
  if (irq !== undefined && !isInt(irq, 1023)) throw bad(`devices[${i}].irq is not a line number`);
  return {
    name,
    kind,
    version,
    ...(address === undefined ? {} : { address }),
    ...(irq === undefined ? {} : { irq }),
  };
}

function parseDisk(v: unknown, i: number): DiskDescription {
  if (!isObject(v)) throw bad(`disks[${i}] is not an object`);
  const { path, readOnly, size, mtimeMs, sha256 } = v;
  if (!isText(path) || path === "") throw bad(`disks[${i}].path is not a path`);
  if (typeof readOnly !== "boolean") throw bad(`disks[${i}].readOnly is not a boolean`);
  if (!isInt(size, Number.MAX_SAFE_INTEGER)) throw bad(`disks[${i}].size is not a size`);
  if (typeof mtimeMs !== "number" || !Number.isFinite(mtimeMs))
    throw bad(`disks[${i}].mtimeMs is not a time`);
  if (typeof sha256 !== "string" || !/^([0-9a-f]{64})?$/.test(sha256))
    throw bad(`disks[${i}].sha256 is not a SHA-256 in hex`);
  return { path, readOnly, size, mtimeMs, sha256 };
}

function parseList<T>(v: unknown, what: string, parse: (v: unknown, i: number) => T): T[] {
  if (!Array.isArray(v) || v.length > MAX_DESCRIBED) throw bad(`"${what}" is not a list`);
  return v.map((item: unknown, i) => parse(item, i));
}

function parseFacts(v: unknown): Record<string, string> {
  if (!isObject(v)) throw bad('"facts" is not an object');
  const facts: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) {
    if (!isText(value)) throw bad(`facts.${k} is not a string`);
    facts[k] = value;
  }
  return facts;
}

/**
 * Checks a `vmm.machine` JSON object as a machine description.
 * @throws SnapshotFormatError (SNAPSHOT_MALFORMED) naming the first bad field.
 */
export function parseDescription(json: Readonly<Record<string, unknown>>): MachineDescription {
  const { kind, version, arch, backend, mode, guest, cpus, cmdline } = json;
  if (version !== DESCRIPTION_VERSION)
    throw bad(`"version" is ${String(version)}, this regvisor reads ${DESCRIPTION_VERSION}`);
  if (!isText(kind)) throw bad('"kind" is not a string');
  if (arch !== "x86" && arch !== "riscv") throw bad('"arch" is not x86 or riscv');
  if (backend !== "kvm" && backend !== "soft") throw bad('"backend" is not kvm or soft');
  if (mode !== undefined && mode !== "inline" && mode !== "threaded")
    throw bad('"mode" is not inline or threaded');
  if (!isText(guest)) throw bad('"guest" is not a string');
  if (!isInt(cpus, MAX_DESCRIBED) || cpus === 0) throw bad('"cpus" is not a vCPU count');
  if (cmdline !== undefined && !isText(cmdline)) throw bad('"cmdline" is not a string');
  const ram = parseList(json.ram, "ram", parseRam);
  if (ram.length === 0) throw bad('"ram" is empty');
  return {
    kind,
    version,
    arch,
    backend,
    ...(mode === undefined ? {} : { mode }),
    guest,
    cpus,
    ...(cmdline === undefined ? {} : { cmdline }),
    ram,
    devices: parseList(json.devices, "devices", parseDevice),
    disks: parseList(json.disks, "disks", parseDisk),
    facts: parseFacts(json.facts),
  };
}

/** The RAM slots of a description. */
export function describedRam(d: MachineDescription): RamSlot[] {
  return d.ram.map((r) => ({ slot: r.slot, gpa: BigInt(r.gpa), size: r.size, flags: r.flags }));
}

/**
 * Builds an empty machine for `description` on `backend` (the arch part's `build()`), with
 * `disks` opened by the caller in description order.
 * @throws RangeError when the description's memslot flags are unknown; backend errors.
 */
export function buildEmptyMachine(
  arch: ArchDefinition,
  description: MachineDescription,
  backend: MachineBackend,
  io: MachineIo,
  disks: readonly BlockBackend[],
): ArchMachine {
  if (arch.arch !== description.arch)
    throw new TypeError(`a ${description.arch} description needs the ${description.arch} part`);
  return arch.build(
    {
      cpus: description.cpus,
      ram: describedRam(description),
      disks,
      facts: description.facts,
      ...(description.cmdline === undefined ? {} : { cmdline: description.cmdline }),
      // The value comes back with the device's state.
      ...(description.devices.some((d) => d.name === "demo-input") ? { demoInput: 0 } : {}),
      ...(description.devices.some((d) => d.name === "virtio-console0")
        ? { virtioConsole: true }
        : {}),
    },
    backend,
    io,
  );
}

/**
 * Completes every vCPU's last exit without running guest code: `kick()` then one run, which
 * must come back `intr` (the vCPUs must be parked between exits, no run pending).
 * @throws Error when a vCPU has no `kick()`, or returns another exit (it ran guest code).
 */
export async function quiesceVcpus(vcpus: readonly Vcpu[]): Promise<void> {
  const without = vcpus.find((v) => v.kick === undefined);
  if (without !== undefined) {
    // Without it the exit in progress stays in the kernel and the restored guest repeats it.
    throw new Error(
      `Cannot quiesce vCPU ${without.index}: it has no kick() to complete its last exit with`,
    );
  }
  for (const vcpu of vcpus) {
    vcpu.kick?.();
    const exit = vcpu.runAsync === undefined ? vcpu.run() : await vcpu.runAsync();
    if (exit.kind !== "intr") {
      throw new Error(
        `Cannot quiesce vCPU ${vcpu.index}: a run after kick() returned a ${exit.kind} exit, not intr`,
      );
    }
  }
}

/** Every vCPU's registers: `regList()`, then one `getManyRegs` batch each. */
export function captureVcpus(vcpus: readonly Vcpu[]): Snapshot["vcpus"] {
  return vcpus.map((v) => captureVcpu(v));
}

/**
 * Guest RAM as MEMORY sections: live views, valid until the guest runs again.
 * @throws RangeError for a region above 4 GiB (no single view; the format's region limit).
 */
export function ramRegions(vm: Vm): MemoryRegion[] {
  return vm.memory.map((m) => ({
    slot: m.slot,
    flags: memslotFlags(m),
    gpa: m.guestPhysAddr,
    data: m.bytes,
  }));
}

/** Why `regions` do not fit `vm`'s memslots, or undefined. */
export function ramProblem(vm: Vm, regions: readonly MemoryRegion[]): string | undefined {
  const text = (slot: number, gpa: bigint, size: number, flags: number): string =>
    `slot ${slot} at ${hex(gpa)} (${size} bytes, flags 0x${flags.toString(16)})`;
  for (const r of regions) {
    const m = vm.memory.find((s) => s.slot === r.slot);
    const want = text(r.slot, r.gpa, regionLength(r), r.flags);
    if (m === undefined) return `the machine has no memory ${want}`;
    const have = text(m.slot, m.guestPhysAddr, m.size, memslotFlags(m));
    if (have !== want) return `memory ${want} is ${have} in the machine`;
  }
  if (regions.length !== vm.memory.length)
    return `the machine has ${vm.memory.length} memory slots, the state ${regions.length}`;
  return undefined;
}

function writePages(m: GuestMemory, region: MemoryRegion, fresh: boolean): void {
  if (!fresh) {
    // RAM of an older round: pages not stored are zero now and must be cleared.
    for (let at = 0; at < m.size; at += 1 << 30) m.view(at, Math.min(1 << 30, m.size - at)).fill(0);
  }
  forEachStoredPage(region, (offset, bytes) => {
    m.view(offset, bytes.length).set(bytes);
  });
}

/**
 * Copies RAM sections into the VM's memslots (same layout). `fresh`: the memslots are as the
 * backend handed them out, all zero, and only stored pages are written; otherwise whole regions.
 * @throws RangeError (nothing written) when the layout differs.
 */
export function loadRam(vm: Vm, regions: readonly MemoryRegion[], fresh = true): void {
  const problem = ramProblem(vm, regions);
  if (problem !== undefined) throw new RangeError(`Cannot load guest RAM: ${problem}`);
  for (const r of regions) {
    const m = vm.memory.find((s) => s.slot === r.slot);
    if (m !== undefined) writePages(m, r, fresh);
  }
}

/** What applying vCPU state did. */
export interface VcpuStateReport {
  readonly registers: RestoreReport;
  /** Per-arch post-restore writes (../snapshot/arch-fixups.ts). */
  readonly fixups: readonly string[];
}

/**
 * Writes every vCPU's registers with the restore policy (ordering, rollback) and the arch
 * fixups.
 * @throws RestoreError (refused: nothing written; failed: rolled back).
 */
export function applyVcpuState(
  vcpus: readonly Vcpu[],
  arch: ArchName,
  states: Snapshot["vcpus"],
  options: RestoreSnapshotOptions = {},
): VcpuStateReport {
  const snapshot: Snapshot = {
    arch,
    backend: "kvm",
    flags: 0,
    meta: {},
    vcpus: states,
    memory: [],
    devices: [],
  };
  const registers = restoreSnapshot(vcpus, snapshot, options);
  return { registers, fixups: applyArchFixups(arch, vcpus, states) };
}

/** Name of the section that carries vCPU power states the register lists lack. */
export const MP_STATE_SECTION = "vmm.mp-state";

/**
 * The vCPUs' power states as the `vmm.mp-state` section, or no section when their register
 * lists carry it already (x86: the MP_STATE pseudo register) or the backend has no
 * `getMpState()` (the machine then restores with the build's power states). Call it before
 * `captureVcpus()`: reading a power state applies a posted HSM start, which resets that hart.
 */
export function captureVcpuPower(vcpus: readonly Vcpu[]): SectionState[] {
  if (vcpus.length === 0 || vcpus.some((v) => v.getMpState === undefined)) return [];
  if (vcpus[0]?.regList().includes(X86_PSEUDO.MP_STATE.id) === true) return [];
  const data = new Uint8Array(4 + 4 * vcpus.length);
  const view = new DataView(data.buffer);
  view.setUint32(0, vcpus.length, true);
  vcpus.forEach((v, i) => {
    view.setUint32(4 + 4 * i, v.getMpState?.() ?? 0, true);
  });
  return [{ name: MP_STATE_SECTION, data }];
}

/**
 * The power states of a `vmm.mp-state` section, one per vCPU; undefined without the section.
 * @throws RangeError when its length or count does not fit `cpus`.
 */
export function decodeVcpuPower(
  sections: readonly SectionState[],
  cpus: number,
): number[] | undefined {
  const section = sections.find((s) => s.name === MP_STATE_SECTION);
  if (section === undefined) return undefined;
  const { data } = section;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const count = data.length >= 4 ? view.getUint32(0, true) : -1;
  if (count !== cpus || data.length !== 4 + 4 * cpus) {
    throw new RangeError(
      `section "${MP_STATE_SECTION}" is ${data.length} bytes for ${count} vCPUs; the machine has ${cpus} (${4 + 4 * cpus} bytes)`,
    );
  }
  return Array.from({ length: cpus }, (_, i) => view.getUint32(4 + 4 * i, true));
}

/**
 * Sets every vCPU's power state from the `vmm.mp-state` section (after `applyVcpuState`); a
 * state without the section leaves them as built.
 * @throws RangeError for a malformed section; Error when the backend has no `setMpState()`;
 *   KvmError (EINVAL) for a state the arch does not take.
 */
export function applyVcpuPower(vcpus: readonly Vcpu[], sections: readonly SectionState[]): void {
  const states = decodeVcpuPower(sections, vcpus.length);
  if (states === undefined) return;
  const without = vcpus.find((v) => v.setMpState === undefined);
  if (without !== undefined) {
    throw new Error(
      `Cannot restore the power state of vCPU ${without.index}: the backend has no setMpState()`,
    );
  }
  vcpus.forEach((v, i) => {
    v.setMpState?.(states[i] ?? 0);
  });
}

/** Every device's state as one DEVICE section (u32 version, then its bytes). */
export function saveDevices(devices: readonly MachineDevice[]): SectionState[] {
  return devices.map(({ device }) => {
    const state = device.save();
    const data = new Uint8Array(4 + state.bytes.length);
    new DataView(data.buffer).setUint32(0, state.version, true);
    data.set(state.bytes, 4);
    return { name: device.name, data };
  });
}

/** The device sections for `devices`, by name, checked before any device is touched. */
function deviceStates(
  devices: readonly Device[],
  sections: readonly SectionState[],
): { device: Device; version: number; bytes: Uint8Array }[] {
  const byName = new Map(sections.map((s) => [s.name, s]));
  const wanted = new Set(devices.map((d) => d.name));
  const extra = sections.filter((s) => !s.name.startsWith("vmm.") && !wanted.has(s.name));
  if (extra.length > 0) {
    throw new RangeError(
      `the state has devices this machine lacks: ${extra.map((s) => s.name).join(", ")}`,
    );
  }
  return devices.map((device) => {
    const section = byName.get(device.name);
    if (section === undefined) throw new RangeError(`the state has no device "${device.name}"`);
    if (section.data.length < 4) throw new RangeError(`device "${device.name}": no version`);
    const view = new DataView(section.data.buffer, section.data.byteOffset, 4);
    return { device, version: view.getUint32(0, true), bytes: section.data.subarray(4) };
  });
}

/**
 * Restores every device from its section (the machine has not run since it was built).
 * @throws RangeError when a device is missing or extra; DeviceStateError from a device.
 */
export function restoreDevices(
  devices: readonly MachineDevice[],
  sections: readonly SectionState[],
): void {
  for (const { device, version, bytes } of deviceStates(
    devices.map((d) => d.device),
    sections,
  )) {
    device.restore({ version, bytes });
  }
}

/** The machine-level state of a snapshot: description, exit counters, console record. */
export interface MachineSnapshotState {
  readonly description: MachineDescription;
  readonly progress: RunProgress;
  readonly console: Uint8Array;
}

/**
 * Decodes and checks the machine-level sections of a snapshot against its header, its RAM and
 * its device sections, touching nothing.
 * @throws SnapshotFormatError (SNAPSHOT_MALFORMED) naming what does not fit.
 */
export function decodeMachineSnapshot(snapshot: Snapshot): MachineSnapshotState {
  const state = decodeMachineState(snapshot);
  const description = parseDescription(state.config);
  if (description.arch !== snapshot.arch)
    throw bad(`"arch" is ${description.arch}, the header says ${snapshot.arch}`);
  const want = describedRam(description)
    .map((r) => `${r.slot}@${hex(r.gpa)}+${r.size}/${r.flags}`)
    .sort();
  const have = snapshot.memory
    .map((m) => `${m.slot}@${hex(m.gpa)}+${regionLength(m)}/${m.flags}`)
    .sort();
  if (want.join() !== have.join())
    throw bad(`"ram" (${want.join(", ")}) is not the MEMORY sections (${have.join(", ")})`);
  if (snapshot.vcpus.length !== description.cpus)
    throw bad(
      `"cpus" is ${description.cpus}, the snapshot has ${snapshot.vcpus.length} vCPU states`,
    );
  for (const d of description.devices) {
    if (!snapshot.devices.some((s) => s.name === d.name))
      throw bad(`device "${d.name}" has no DEVICE section`);
  }
  try {
    decodeVcpuPower(snapshot.devices, description.cpus);
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    throw bad(error.message);
  }
  return { description, progress: state.progress, console: state.output };
}

/** The snapshot header's backend for a machine backend. */
export function snapshotBackend(backend: Pick<MachineBackend, "name" | "mode">): SnapshotBackend {
  if (backend.name === "kvm") return "kvm";
  return backend.mode === "threaded" ? "soft-threaded" : "soft-inline";
}
