/**
 * Port I/O dispatch for the run loop: turning a KVM_EXIT_IO (`VcpuExit` kind "io") into calls
 * on a `PortDevice`, with the issue 6 rules for everything no device claims — reads return
 * all-ones, writes are ignored, never fatal — and a once-per-address record of those accesses
 * for `--trace-exits`.
 *
 * Exit layout (kvm_run.io, include/uapi/linux/kvm.h): `count` elements of `size` bytes each,
 * back to back in `data`, little-endian; for `rep ins/outs` count > 1, all at the same port.
 */
import type { VcpuExit } from "../backends/vcpu.js";

/** What a device did with an OUT. */
export type PortOutcome =
  | { readonly kind: "handled" }
  | { readonly kind: "unhandled" }
  /** The guest asked to stop the VM with this status (x86 exit port). */
  | { readonly kind: "exit"; readonly status: number };

/** A set of x86 I/O ports. Values are little-endian, `size` bytes (1, 2 or 4). */
export interface PortDevice {
  /** The value read, or `undefined` when no register of the device is at `port`. */
  ioIn(port: number, size: number): number | undefined;
  /** Performs an OUT of `value` (`size` bytes). */
  ioOut(port: number, size: number, value: number): PortOutcome;
}

/** The result of servicing one I/O exit. */
export interface IoResult {
  /** Set when an element wrote the exit port; later elements were not performed. */
  readonly exitStatus: number | undefined;
  /** Ports no device claimed (each once per exit); the caller logs the first sighting. */
  readonly unhandled: readonly number[];
}

/** The "io" variant of `VcpuExit`. */
export type IoExit = Extract<VcpuExit, { kind: "io" }>;

/**
 * Performs an I/O exit on `device`: OUT elements are passed on in order; IN elements are
 * written into `exit.data` for the next `run()`, all-ones (0xff bytes) where nothing answers.
 * @throws RangeError when `size` is not 1, 2 or 4 or `data` is shorter than size × count.
 */
export function serviceIoExit(device: PortDevice, exit: IoExit): IoResult {
  const { port, size, count, data } = exit;
  if (size !== 1 && size !== 2 && size !== 4)
    throw new RangeError(`I/O size must be 1, 2 or 4, got ${size}`);
  if (data.length < size * count)
    throw new RangeError(`I/O data has ${data.length} bytes, needs ${size * count}`);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let missed = false;
  for (let i = 0; i < count; i++) {
    const at = i * size;
    if (exit.direction === "out") {
      const outcome = device.ioOut(port, size, readLe(view, at, size));
      if (outcome.kind === "exit")
        return { exitStatus: outcome.status, unhandled: missed ? [port] : [] };
      if (outcome.kind === "unhandled") missed = true;
    } else {
      const value = device.ioIn(port, size);
      if (value === undefined) missed = true;
      writeLe(view, at, size, value ?? allOnes(size));
    }
  }
  return { exitStatus: undefined, unhandled: missed ? [port] : [] };
}

/** What a read from an empty ISA bus returns: every data line pulled high. */
function allOnes(size: number): number {
  return size === 4 ? 0xffff_ffff : (1 << (8 * size)) - 1;
}

function readLe(view: DataView, at: number, size: number): number {
  if (size === 1) return view.getUint8(at);
  return size === 2 ? view.getUint16(at, true) : view.getUint32(at, true);
}

function writeLe(view: DataView, at: number, size: number, value: number): void {
  if (size === 1) view.setUint8(at, value);
  else if (size === 2) view.setUint16(at, value, true);
  else view.setUint32(at, value >>> 0, true);
}

/** Devices tried in order; the first that claims a port answers it. */
export function combineDevices(devices: readonly PortDevice[]): PortDevice {
  return {
    ioIn(port, size) {
      for (const d of devices) {
        const value = d.ioIn(port, size);
        if (value !== undefined) return value;
      }
      return undefined;
    },
    ioOut(port, size, value) {
      for (const d of devices) {
        const outcome = d.ioOut(port, size, value);
        if (outcome.kind !== "unhandled") return outcome;
      }
      return { kind: "unhandled" };
    },
  };
}

/**
 * Remembers which unclaimed addresses were already reported, so `--trace-exits` logs each one
 * once. Bounded: after `limit` distinct addresses it stops remembering (and stops reporting).
 */
export class OnceLog {
  private readonly seen = new Set<string>();

  constructor(private readonly limit = 4096) {}

  /** True the first time `(space, address)` is seen (space e.g. "pio-in", "mmio-write"). */
  first(space: string, address: number | bigint): boolean {
    const key = `${space}:${address.toString(16)}`;
    if (this.seen.has(key) || this.seen.size >= this.limit) return false;
    this.seen.add(key);
    return true;
  }
}
