/**
 * The contract between the machine (src/vmm/machine) and its device models (this folder).
 *
 * Devices are pure models: they never touch a backend, a file descriptor of the console or a
 * timer of their own. The machine routes MMIO/port exits to them through a bus, gives each an
 * interrupt line, lends them guest RAM for DMA, and moves bytes between their host side and the
 * outside world. Every device saves and restores its whole state (registers, FIFOs, virtqueue
 * indices, in-flight requests) as one versioned DEVICE section of a snapshot or migration stream.
 */

/** A level-triggered interrupt line into an interrupt controller (PLIC source, IOAPIC GSI). */
export interface IrqLine {
  /** Drives the line: true = asserted. Repeating the current level is a no-op. */
  set(level: boolean): void;
}

/** A device mapped into guest-physical MMIO space. */
export interface MmioDevice {
  /**
   * A guest read of `data.length` bytes (1, 2, 4 or 8) at `offset` from the device's base:
   * fill `data` little-endian.
   */
  mmioRead(offset: number, data: Uint8Array): void;
  /** A guest write of `data` (1, 2, 4 or 8 bytes, little-endian) at `offset`. */
  mmioWrite(offset: number, data: Uint8Array): void;
}

/** A device on the x86 I/O port bus. Values are little-endian, `size` bytes (1, 2 or 4). */
export interface PioDevice {
  pioRead(offset: number, size: number): number;
  pioWrite(offset: number, size: number, value: number): void;
}

/** Guest RAM as devices see it for DMA: guest-physical addresses, bounds-checked. */
export interface DmaMemory {
  /**
   * A view of `length` bytes at `gpa`, or `undefined` when any of it is outside guest RAM (the
   * device then fails the request, as a DMA to nowhere would).
   */
  slice(gpa: bigint, length: number): Uint8Array | undefined;
  /** Must be called after the device wrote guest RAM: dirty logging and code invalidation. */
  wrote(gpa: bigint, length: number): void;
}

/** Saved state of one device: a version and opaque bytes, restored by the same device kind. */
export interface DeviceState {
  /** Format version of `bytes`; `restore` refuses versions it does not know. */
  readonly version: number;
  readonly bytes: Uint8Array;
}

/** What every device has. */
export interface Device {
  /** Stable name, unique in a machine: the DEVICE section's name ("uart0", "plic", "virtio-blk0"). */
  readonly name: string;
  /** The device's whole state. Called only while every vCPU is parked between exits. */
  save(): DeviceState;
  /**
   * Replaces the device's state with a saved one.
   * @throws DeviceStateError (a RangeError subclass is fine too) when the bytes are malformed or
   *   the version is unknown; the device is then unchanged.
   */
  restore(state: DeviceState): void;
}
