/**
 * virtio-console (device ID 3, virtio 1.2 §5.3) with one port: receiveq 0 and transmitq 1, no
 * feature bits (no MULTIPORT, SIZE or EMERG_WRITE), a 12-byte configuration space of zeros.
 * Linux shows the port as /dev/hvc0.
 *
 * Output has backpressure, as the UART's: transmit buffers are offered to the host in order and
 * a buffer is returned to the driver only once the host took all of it. While the host
 * refuses, the buffer stays in the avail ring (the device has not consumed it) and the guest's
 * writes block when its ring is full; the machine calls `drain()` when the host can take bytes
 * again. The bytes of the current buffer the host already took are the only extra state.
 *
 * Input: `receive(bytes)` fills the receive buffers the driver posted and returns how many bytes
 * fit; the rest stays with the host, which is told through `rxSpace()` when the driver posts
 * more buffers.
 */
import { VirtioMmio } from "./mmio.js";
import { gather } from "./queue.js";
import type { StateReader, StateWriter } from "../state.js";
import type { DmaMemory, IrqLine } from "../types.js";

/** The host side of a virtio console. */
export interface ConsoleHost {
  /** Takes output bytes; returns how many it accepted (0 … bytes.length), in order. */
  write(bytes: Uint8Array): number;
  /** Optional: the driver posted receive buffers (feed pending input with `receive`). */
  rxSpace?(): void;
}

/** Options of a virtio-console device. */
export interface VirtioConsoleOptions {
  readonly name: string;
  readonly mem: DmaMemory;
  readonly irq: IrqLine;
  readonly host: ConsoleHost;
}

/** Entries per queue (QueueNumMax). */
export const VIRTIO_CONSOLE_QUEUE_SIZE = 64;
const RECEIVEQ = 0;
const TRANSMITQ = 1;

/** A single-port virtio console; see the module header. */
export class VirtioConsole extends VirtioMmio {
  private readonly host: ConsoleHost;
  /** Bytes of the transmit buffer at the head of the avail ring the host already took. */
  private txTaken = 0;
  private readonly configSpace = new Uint8Array(12);

  constructor(options: VirtioConsoleOptions) {
    super({
      name: options.name,
      deviceId: 3,
      features: 0n,
      queueMax: [VIRTIO_CONSOLE_QUEUE_SIZE, VIRTIO_CONSOLE_QUEUE_SIZE],
      mem: options.mem,
      irq: options.irq,
    });
    this.host = options.host;
  }

  /**
   * Input for the guest: fills posted receive buffers in order.
   * @returns how many bytes were taken (0 when the driver posted no buffer or is not ready).
   */
  receive(bytes: Uint8Array): number {
    let taken = 0;
    this.guarded(() => {
      const q = this.queue(RECEIVEQ);
      if (q === undefined) return;
      while (taken < bytes.length) {
        const chain = q.pop();
        if (chain === undefined) break;
        let written = 0;
        for (const s of chain.writable) {
          const part = bytes.subarray(taken + written, taken + written + s.bytes.length);
          s.bytes.set(part);
          this.mem.wrote(s.gpa, part.length);
          written += part.length;
          if (taken + written === bytes.length) break;
        }
        q.push(chain.head, written);
        taken += written;
      }
      if (taken > 0) this.usedBuffers(q);
    });
    return taken;
  }

  /** Offers pending output to the host again (call when the host becomes writable). */
  drain(): void {
    this.guarded(() => {
      this.transmit();
    });
  }

  protected config(): Uint8Array {
    return this.configSpace;
  }

  protected process(index: number): void {
    if (index === TRANSMITQ) this.transmit();
    else if (index === RECEIVEQ) this.host.rxSpace?.();
  }

  private transmit(): void {
    const q = this.queue(TRANSMITQ);
    if (q === undefined) return;
    let used = false;
    for (let chain = q.peek(); chain !== undefined; chain = q.peek()) {
      const left = chain.readableLength - this.txTaken;
      if (left > 0) {
        const bytes = new Uint8Array(left);
        gather(chain.readable, this.txTaken, bytes);
        const accepted = Math.max(0, Math.min(left, Math.trunc(this.host.write(bytes))));
        this.txTaken += accepted;
        if (accepted < left) break;
      }
      q.pop();
      q.push(chain.head, 0);
      this.txTaken = 0;
      used = true;
    }
    if (used) this.usedBuffers(q);
  }

  protected resetDevice(): void {
    this.txTaken = 0;
  }

  protected saveDevice(w: StateWriter): void {
    w.u32(this.txTaken);
  }

  protected restoreDevice(r: StateReader): () => void {
    const taken = r.u32("the bytes of the current transmit buffer already sent");
    return () => {
      this.txTaken = taken;
    };
  }
}
