/**
 * A machine's description (./state.ts's "describe" step): the JSON-able `MachineDescription`
 * and the disk identity it carries. Apart from the capture and restore code in ./state.ts so
 * that a machine which only runs (it describes itself on a snapshot or migration) does not
 * load the snapshot format, the restore planner and the x86 catalogs at start.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { resolve } from "node:path";
import type { Vm } from "../../backends/vcpu.js";
import { RegvisorError } from "../../errors.js";
import type { ImageArch } from "../image.js";
import { memslotFlags } from "../snapshot/memslot-flags.js";
import type { BackendName, MachineBackend, RunMode } from "./backend.js";
import type { ArchMachine, MachineDevice, RamSlot } from "./types.js";

/** Version of the `MachineDescription` JSON. */
export const DESCRIPTION_VERSION = 1;

/** One RAM slot as JSON (`gpa` in hex: JSON has no 64-bit integers). */
export interface RamDescription {
  readonly slot: number;
  readonly gpa: string;
  readonly size: number;
  readonly flags: number;
}

/** One device as JSON. */
export interface DeviceDescription {
  readonly name: string;
  readonly kind: string;
  /** Version of its saved state. */
  readonly version: number;
  readonly address?: string;
  readonly irq?: number;
}

/** What identifies a disk file's contents. */
export interface DiskIdentity {
  readonly size: number;
  readonly mtimeMs: number;
  /** SHA-256 of the whole file, hex. */
  readonly sha256: string;
}

/** One disk as JSON: reattached by path, checked by identity. */
export interface DiskDescription extends DiskIdentity {
  readonly path: string;
  readonly readOnly: boolean;
}

/** A machine, without its state: everything a destination needs to build an empty one. */
export interface MachineDescription {
  /** `vmm.machine`'s kind: `<arch>-<guest>`, e.g. "riscv-linux", "x86-demo". */
  readonly kind: string;
  readonly version: number;
  readonly arch: ImageArch;
  readonly backend: BackendName;
  readonly mode?: RunMode;
  /** "linux", "elf", "flat", "demo". */
  readonly guest: string;
  readonly cpus: number;
  readonly cmdline?: string;
  readonly ram: readonly RamDescription[];
  readonly devices: readonly DeviceDescription[];
  readonly disks: readonly DiskDescription[];
  /** Arch facts of the boot (DTB address, ISA, x86 mode). */
  readonly facts: Readonly<Record<string, string>>;
}

/** What `describeMachine()` needs beyond the arch part. */
export interface DescribeInput {
  readonly parts: ArchMachine;
  readonly backend: Pick<MachineBackend, "name" | "arch" | "mode">;
  readonly guest: string;
  readonly cmdline?: string;
  /** The disks by path, in virtio-blk order. */
  readonly disks: readonly { readonly path: string; readonly readOnly: boolean }[];
  /** Skip hashing the disks (a migration to shared storage checks them at switch-over). */
  readonly hashDisks?: boolean;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** A disk file changed (or vanished) since the state was taken. */
export class DiskChangedError extends RegvisorError {
  constructor(path: string, detail: string) {
    super(
      "DISK_CHANGED",
      `Cannot reattach disk "${path}": ${detail}; restore the image the snapshot was taken with, or pass --allow-disk-change to use it as it is`,
    );
  }
}

/**
 * Size, mtime and SHA-256 of a disk file.
 * @throws DiskChangedError when it cannot be read.
 */
export function diskIdentity(path: string, hash = true): DiskIdentity {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    throw new DiskChangedError(path, `it cannot be opened (${String(code ?? error)})`);
  }
  try {
    const stat = fstatSync(fd);
    // node:crypto is loaded here, on the first snapshot or migration, not by every run that
    // imports this module (loading it costs ~6-10 ms of process start).
    const sha = process.getBuiltinModule("node:crypto").createHash("sha256");
    if (hash) {
      const chunk = new Uint8Array(1 << 20);
      for (let at = 0; ;) {
        const n = readSync(fd, chunk, 0, chunk.length, at);
        if (n === 0) break;
        sha.update(chunk.subarray(0, n));
        at += n;
      }
    }
    return { size: stat.size, mtimeMs: stat.mtimeMs, sha256: hash ? sha.digest("hex") : "" };
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses a disk whose size or contents differ from `want` (a disk described without a hash
 * is checked by size only).
 * @throws DiskChangedError naming the disk and what changed.
 */
export function checkDisk(want: DiskDescription): void {
  const have = diskIdentity(want.path, want.sha256 !== "");
  const when = new Date(want.mtimeMs).toISOString();
  if (have.size !== want.size) {
    throw new DiskChangedError(
      want.path,
      `it is ${have.size} bytes, the snapshot's was ${want.size} (modified ${when})`,
    );
  }
  if (want.sha256 !== "" && have.sha256 !== want.sha256) {
    throw new DiskChangedError(
      want.path,
      `its contents changed since the snapshot (SHA-256 ${have.sha256.slice(0, 12)}…, was ${want.sha256.slice(0, 12)}…; modified ${new Date(have.mtimeMs).toISOString()}, was ${when})`,
    );
  }
}

/** The RAM slots of a VM. */
export function ramSlots(vm: Vm): RamSlot[] {
  return vm.memory.map((m) => ({
    slot: m.slot,
    gpa: m.guestPhysAddr,
    size: m.size,
    flags: memslotFlags(m),
  }));
}

function describeDevice(d: MachineDevice): DeviceDescription {
  return {
    name: d.device.name,
    kind: d.kind,
    version: d.device.save().version,
    ...(d.address === undefined ? {} : { address: hex(d.address) }),
    ...(d.irq === undefined ? {} : { irq: d.irq }),
  };
}

/** Describes a machine (see the module header); reads each disk whole unless `hashDisks` is false. */
export function describeMachine(input: DescribeInput): MachineDescription {
  const { parts, backend } = input;
  return {
    kind: `${backend.arch}-${input.guest}`,
    version: DESCRIPTION_VERSION,
    arch: backend.arch,
    backend: backend.name,
    ...(backend.mode === undefined ? {} : { mode: backend.mode }),
    guest: input.guest,
    cpus: parts.vcpus.length,
    ...(input.cmdline === undefined ? {} : { cmdline: input.cmdline }),
    ram: ramSlots(parts.vm).map((r) => ({ ...r, gpa: hex(r.gpa) })),
    devices: parts.devices.map(describeDevice),
    disks: input.disks.map((d) => ({
      path: resolve(d.path),
      readOnly: d.readOnly,
      ...diskIdentity(d.path, input.hashDisks ?? true),
    })),
    facts: parts.facts,
  };
}
