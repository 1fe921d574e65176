/**
 * Encoding of device state for `Device.save()` / `Device.restore()`.
 *
 * Every device's state is a flat little-endian record (u8/u16/u32/u64 fields and length-prefixed
 * byte strings) preceded by nothing: the version travels beside the bytes in `DeviceState`.
 * `StateReader` bounds every read and every length, so a device's `restore()` can only throw
 * `DeviceStateError`; devices decode everything into fresh values first and assign them only
 * after the whole record was read (STYLE.md: a failed restore changes nothing).
 */
import { RegvisorError } from "../../errors.js";
import type { DeviceState } from "./types.js";

/** A device's saved state could not be restored: wrong version, truncated or inconsistent. */
export class DeviceStateError extends RegvisorError {
  /** The device whose state was refused. */
  readonly device: string;

  constructor(device: string, detail: string) {
    super("DEVICE_STATE", `Cannot restore device "${device}": ${detail}; the device is unchanged`);
    this.device = device;
  }

  override toJSON(): ReturnType<RegvisorError["toJSON"]> {
    return { ...super.toJSON(), device: this.device };
  }
}

/** Appends little-endian fields; `finish()` returns exactly the bytes written. */
export class StateWriter {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private length = 0;

  private reserve(n: number): number {
    if (this.length + n > this.buffer.length) {
      const bigger = new Uint8Array(Math.max(this.buffer.length * 2, this.length + n));
      bigger.set(this.buffer.subarray(0, this.length));
      this.buffer = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  /** Appends a u8. */
  u8(v: number): this {
    const at = this.reserve(1); // may replace this.view
    this.view.setUint8(at, v);
    return this;
  }

  /** Appends a boolean as a u8 (0 or 1). */
  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  /** Appends a u16. */
  u16(v: number): this {
    const at = this.reserve(2); // may replace this.view
    this.view.setUint16(at, v, true);
    return this;
  }

  /** Appends a u32. */
  u32(v: number): this {
    const at = this.reserve(4); // may replace this.view
    this.view.setUint32(at, v >>> 0, true);
    return this;
  }

  /** Appends a u64. */
  u64(v: bigint): this {
    const at = this.reserve(8); // may replace this.view
    this.view.setBigUint64(at, BigInt.asUintN(64, v), true);
    return this;
  }

  /** Appends a u32 length and the bytes. */
  bytes(v: Uint8Array): this {
    this.u32(v.length);
    const at = this.reserve(v.length); // may replace this.buffer: take the offset first
    this.buffer.set(v, at);
    return this;
  }

  /** The state written so far (a copy). */
  finish(): Uint8Array {
    return this.buffer.slice(0, this.length);
  }
}

/** Reads a `StateWriter` record back; every overrun or bad value is a `DeviceStateError`. */
export class StateReader {
  private readonly view: DataView;
  private position = 0;

  constructor(
    private readonly device: string,
    private readonly data: Uint8Array,
  ) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  /** A `DeviceStateError` for this device. */
  fail(detail: string): DeviceStateError {
    return new DeviceStateError(this.device, detail);
  }

  private take(n: number, what: string): number {
    if (n > this.data.length - this.position)
      throw this.fail(`the state is truncated at byte ${this.position} (reading ${what})`);
    const at = this.position;
    this.position += n;
    return at;
  }

  /** Reads a u8. */
  u8(what: string): number {
    return this.view.getUint8(this.take(1, what));
  }

  /** Reads a u8 that must be 0 or 1. */
  bool(what: string): boolean {
    const v = this.u8(what);
    if (v > 1) throw this.fail(`${what} is ${v}, not 0 or 1`);
    return v === 1;
  }

  /** Reads a u16. */
  u16(what: string): number {
    return this.view.getUint16(this.take(2, what), true);
  }

  /** Reads a u32. */
  u32(what: string): number {
    return this.view.getUint32(this.take(4, what), true);
  }

  /** Reads a u32 that must be at most `max`. */
  u32Max(what: string, max: number): number {
    const v = this.u32(what);
    if (v > max) throw this.fail(`${what} is ${v}, above its limit ${max}`);
    return v;
  }

  /** Reads a u64. */
  u64(what: string): bigint {
    return this.view.getBigUint64(this.take(8, what), true);
  }

  /** Reads a length-prefixed byte string of at most `max` bytes (a copy). */
  bytes(what: string, max: number): Uint8Array {
    const n = this.u32Max(`the length of ${what}`, max);
    const at = this.take(n, what);
    return this.data.slice(at, at + n);
  }

  /** Throws unless every byte was read. */
  end(): void {
    const left = this.data.length - this.position;
    if (left !== 0) throw this.fail(`${left} unexpected bytes after the state`);
  }
}

/**
 * Checks the shape and version of a state handed to `restore()` and returns its reader.
 * @throws DeviceStateError when the version is not `version`.
 */
export function stateReader(device: string, state: DeviceState, version: number): StateReader {
  if (!(state.bytes instanceof Uint8Array))
    throw new TypeError(`Cannot restore device "${device}": state.bytes is not a Uint8Array`);
  if (state.version !== version) {
    throw new DeviceStateError(
      device,
      `state version ${state.version} is not the supported version ${version}`,
    );
  }
  return new StateReader(device, state.bytes);
}
