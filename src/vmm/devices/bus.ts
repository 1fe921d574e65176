/**
 * The MMIO bus and the x86 port bus: address ranges registered by name, dispatch of a guest
 * access to (device, offset), and an `unclaimed` result where no device answers (the machine
 * then applies its rule for unclaimed addresses: reads all-ones, writes ignored).
 *
 * An access belongs to a device only when it lies wholly inside the device's range; one that
 * starts inside and runs past the end is unclaimed (no device spans two ranges).
 */
import type { MmioDevice, PioDevice } from "./types.js";

/** Where an address landed. */
export type BusHit<D> =
  | {
      readonly kind: "device";
      readonly name: string;
      readonly device: D;
      /** Offset of the access from the device's base. */
      readonly offset: number;
    }
  | { readonly kind: "unclaimed" };

interface Range<D> {
  readonly name: string;
  readonly base: bigint;
  /** One past the last address. */
  readonly end: bigint;
  readonly device: D;
}

const UNCLAIMED = { kind: "unclaimed" } as const;

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function span(r: Pick<Range<unknown>, "base" | "end">): string {
  return `${hex(r.base)}–${hex(r.end - 1n)}`;
}

/** Address ranges → devices, shared by both buses. */
class AddressMap<D> {
  /** Sorted by base, non-overlapping. */
  private readonly ranges: Range<D>[] = [];

  constructor(
    private readonly what: string,
    private readonly limit: bigint,
  ) {}

  register(name: string, base: bigint, size: bigint, device: D): void {
    if (name === "")
      throw new TypeError(`Cannot register a device on the ${this.what}: empty name`);
    if (base < 0n || size <= 0n || base + size > this.limit) {
      throw new RangeError(
        `Cannot register "${name}" on the ${this.what} at ${hex(base)} size ${hex(size)}: ` +
          `the range must be non-empty and lie within 0–${hex(this.limit - 1n)}`,
      );
    }
    const range: Range<D> = { name, base, end: base + size, device };
    for (const r of this.ranges) {
      if (r.name === name)
        throw new RangeError(`Cannot register "${name}" on the ${this.what}: the name is taken`);
      if (range.base < r.end && r.base < range.end) {
        throw new RangeError(
          `Cannot register "${name}" on the ${this.what} at ${span(range)}: ` +
            `it overlaps "${r.name}" at ${span(r)}`,
        );
      }
    }
    const at = this.ranges.findIndex((r) => r.base > base);
    this.ranges.splice(at === -1 ? this.ranges.length : at, 0, range);
  }

  find(address: bigint, size: number): BusHit<D> {
    const ranges = this.ranges;
    let lo = 0;
    let hi = ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      const r = ranges[mid];
      if (r === undefined) break; // unreachable: lo ≤ mid ≤ hi < length
      if (address < r.base) hi = mid - 1;
      else if (address >= r.end) lo = mid + 1;
      else {
        if (address + BigInt(size) > r.end) return UNCLAIMED;
        return { kind: "device", name: r.name, device: r.device, offset: Number(address - r.base) };
      }
    }
    return UNCLAIMED;
  }

  list(): { name: string; base: bigint; size: bigint }[] {
    return this.ranges.map((r) => ({ name: r.name, base: r.base, size: r.end - r.base }));
  }
}

function checkMmioSize(size: number): void {
  if (size !== 1 && size !== 2 && size !== 4 && size !== 8)
    throw new RangeError(`MMIO access size must be 1, 2, 4 or 8 bytes, got ${size}`);
}

function checkPioSize(size: number): void {
  if (size !== 1 && size !== 2 && size !== 4)
    throw new RangeError(`port access size must be 1, 2 or 4 bytes, got ${size}`);
}

/** Guest-physical MMIO space (64-bit addresses). */
export class MmioBus {
  private readonly map = new AddressMap<MmioDevice>("MMIO bus", 1n << 64n);

  /**
   * Maps `device` at [base, base + size).
   * @throws RangeError when the range is empty, beyond 2^64, overlaps another device (both are
   *   named) or the name is taken.
   */
  register(name: string, base: bigint, size: bigint, device: MmioDevice): void {
    this.map.register(name, base, size, device);
  }

  /** The device and offset an access of `size` bytes at `address` goes to. */
  resolve(address: bigint, size: number): BusHit<MmioDevice> {
    checkMmioSize(size);
    return this.map.find(address, size);
  }

  /**
   * Performs a guest read of `data.length` bytes at `address` into `data` (little-endian).
   * @returns false when no device claims the access (`data` untouched).
   * @throws RangeError when `data.length` is not 1, 2, 4 or 8.
   */
  read(address: bigint, data: Uint8Array): boolean {
    const hit = this.resolve(address, data.length);
    if (hit.kind === "unclaimed") return false;
    hit.device.mmioRead(hit.offset, data);
    return true;
  }

  /**
   * Performs a guest write of `data` at `address`.
   * @returns false when no device claims the access.
   * @throws RangeError when `data.length` is not 1, 2, 4 or 8.
   */
  write(address: bigint, data: Uint8Array): boolean {
    const hit = this.resolve(address, data.length);
    if (hit.kind === "unclaimed") return false;
    hit.device.mmioWrite(hit.offset, data);
    return true;
  }

  /** The registered ranges, by base address. */
  list(): { name: string; base: bigint; size: bigint }[] {
    return this.map.list();
  }
}

/** The x86 I/O port space (ports 0–0xffff). */
export class PortBus {
  private readonly map = new AddressMap<PioDevice>("port bus", 0x10000n);

  /**
   * Maps `device` at ports [base, base + size).
   * @throws RangeError when the range is empty, beyond 0xffff, overlaps another device (both
   *   are named) or the name is taken.
   */
  register(name: string, base: number, size: number, device: PioDevice): void {
    this.map.register(name, BigInt(base), BigInt(size), device);
  }

  /** The device and offset an access of `size` bytes at `port` goes to. */
  resolve(port: number, size: number): BusHit<PioDevice> {
    checkPioSize(size);
    return this.map.find(BigInt(port), size);
  }

  /**
   * Performs an IN of `size` bytes.
   * @returns the value, or undefined when no device claims the port.
   */
  read(port: number, size: number): number | undefined {
    const hit = this.resolve(port, size);
    return hit.kind === "unclaimed" ? undefined : hit.device.pioRead(hit.offset, size);
  }

  /**
   * Performs an OUT of `value` (`size` bytes).
   * @returns false when no device claims the port.
   */
  write(port: number, size: number, value: number): boolean {
    const hit = this.resolve(port, size);
    if (hit.kind === "unclaimed") return false;
    hit.device.pioWrite(hit.offset, size, value);
    return true;
  }

  /** The registered ranges, by base port. */
  list(): { name: string; base: bigint; size: bigint }[] {
    return this.map.list();
  }
}
