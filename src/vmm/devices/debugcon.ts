/**
 * The Bochs/QEMU debug console (x86 port 0xe9): a byte written is guest output, a read returns
 * 0xe9, which is how guests detect it (QEMU hw/char/debugcon.c, `readback` default 0xe9). It has
 * no state of its own; its DEVICE section is empty so a snapshot still names it.
 */
import { StateWriter, stateReader } from "./state.js";
import type { Device, DeviceState, PioDevice } from "./types.js";

/** Port of the debug console and the value a read returns. */
export const DEBUGCON_PORT = 0xe9;
const STATE_VERSION = 1;

/** A one-port output device; `write` reports whether the host took the byte without waiting. */
export class DebugConsole implements PioDevice, Device {
  /**
   * @param name device name in snapshots ("debugcon").
   * @param write receives each byte written; returns false when the host side is full (the
   *   byte is kept by the host; the caller parks the vCPU until it drains).
   */
  constructor(
    readonly name: string,
    private readonly write: (bytes: Uint8Array) => boolean,
  ) {}

  /** Reads back the port number (one byte; a wider read is split by the caller). */
  pioRead(): number {
    return DEBUGCON_PORT;
  }

  /** Outputs the low byte. */
  pioWrite(_offset: number, _size: number, value: number): void {
    this.write(Uint8Array.of(value & 0xff));
  }

  /** No state: an empty record. */
  save(): DeviceState {
    return { version: STATE_VERSION, bytes: new StateWriter().finish() };
  }

  /**
   * Checks the (empty) record.
   * @throws DeviceStateError on another version or any byte.
   */
  restore(state: DeviceState): void {
    stateReader(this.name, state, STATE_VERSION).end();
  }
}
