/**
 * Split virtqueues (virtio 1.2 §2.7) as a device sees them, over guest RAM lent as `DmaMemory`.
 *
 * Layout in guest RAM, all little-endian (§2.7.5–§2.7.8), for a queue of `size` entries:
 *   descriptor table  16·size bytes, 16-aligned: { addr u64, len u32, flags u16, next u16 }
 *   driver (avail)    6 + 2·size bytes, 2-aligned: { flags u16, idx u16, ring[size] u16, used_event u16 }
 *   device (used)     6 + 8·size bytes, 4-aligned: { flags u16, idx u16, ring[size] {id u32, len u32}, avail_event u16 }
 *
 * Everything the driver wrote is untrusted: indices, lengths, flags and buffer addresses are
 * checked before use and a violation throws `VirtqueueError`, which the transport turns into
 * DEVICE_NEEDS_RESET. Descriptor buffers are returned as views of guest RAM that `DmaMemory`
 * bounds-checked, so no later access can leave guest RAM.
 *
 * Supported: descriptor chains, indirect descriptors (VIRTIO_F_RING_INDIRECT_DESC, §2.7.5.3;
 * no nesting, no NEXT on the indirect descriptor, at most `MAX_INDIRECT` entries), interrupt
 * suppression through VIRTQ_AVAIL_F_NO_INTERRUPT, or with VIRTIO_F_RING_EVENT_IDX (§2.7.10)
 * through used_event (the device interrupts only when the used index passes it) and
 * avail_event (the device asks to be notified for the entry after the last it took). Not
 * supported: packed queues.
 *
 * The ring indices are shared with vCPUs running on other threads: the avail index is read and
 * the used index published with `Atomics` where the view allows it, so the used element is
 * visible before the index that covers it (§2.7.13's ordering, from the device side).
 */
import { RegvisorError } from "../../../errors.js";
import type { DmaMemory } from "../types.js";

/** Descriptor flags (§2.7.5). */
export const VIRTQ_DESC_F = { NEXT: 1, WRITE: 2, INDIRECT: 4 } as const;
/** avail.flags bit asking the device not to interrupt (§2.7.7). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** Largest queue size (§2.7: Queue Size up to 32768). */
export const VIRTQ_MAX_SIZE = 32768;
/** Most entries an indirect table may have here (Linux uses at most the segment count). */
export const MAX_INDIRECT = 1024;

/** The driver broke the virtqueue rules; the device must stop and ask for a reset. */
export class VirtqueueError extends RegvisorError {
  constructor(detail: string) {
    super("VIRTQ_MALFORMED", detail);
  }
}

/** Ring features negotiated for a queue. */
export interface QueueFeatures {
  /** VIRTIO_F_RING_INDIRECT_DESC. */
  readonly indirect: boolean;
  /** VIRTIO_F_RING_EVENT_IDX. */
  readonly eventIdx: boolean;
}

/** Where a queue's three parts are, as the driver configured them. */
export interface QueueLayout {
  readonly size: number;
  readonly desc: bigint;
  readonly driver: bigint;
  readonly device: bigint;
}

/** One buffer of a chain: a bounds-checked view of guest RAM and where it is. */
export interface Segment {
  readonly gpa: bigint;
  readonly bytes: Uint8Array;
}

/** A descriptor chain: device-readable buffers first, then device-writable ones (§2.7.4.2). */
export interface Chain {
  /** Head descriptor index: the id returned in the used ring. */
  readonly head: number;
  readonly readable: readonly Segment[];
  readonly writable: readonly Segment[];
  readonly readableLength: number;
  readonly writableLength: number;
}

/**
 * Checks a queue layout: size a power of two in 1 … max, alignment (§2.7), all three parts in
 * guest RAM. Returns a reason when it is unusable.
 */
export function checkLayout(mem: DmaMemory, l: QueueLayout, max: number): string | undefined {
  if (!Number.isInteger(l.size) || l.size < 1 || l.size > max || (l.size & (l.size - 1)) !== 0)
    return `queue size ${l.size} is not a power of 2 in 1 … ${max}`;
  if (l.desc % 16n !== 0n || l.driver % 2n !== 0n || l.device % 4n !== 0n)
    return "a ring is misaligned (descriptors 16, driver 2, device 4)";
  for (const [what, gpa, n] of [
    ["descriptor table", l.desc, 16 * l.size],
    ["driver ring", l.driver, 6 + 2 * l.size],
    ["device ring", l.device, 6 + 8 * l.size],
  ] as const) {
    if (mem.slice(gpa, n) === undefined)
      return `the ${what} at 0x${gpa.toString(16)} (${n} bytes) is outside guest RAM`;
  }
  return undefined;
}

function u16View(bytes: Uint8Array, at: number): Uint16Array | undefined {
  const offset = bytes.byteOffset + at;
  return offset % 2 === 0 ? new Uint16Array(bytes.buffer, offset, 1) : undefined;
}

/** A live split virtqueue. Indices are free-running u16 counters, as in the rings. */
export class SplitQueue {
  private readonly desc: DataView;
  private readonly avail: DataView;
  private readonly used: DataView;
  private readonly availIdx: Uint16Array | undefined;
  private readonly usedIdxCell: Uint16Array | undefined;
  private readonly availEvent: Uint16Array | undefined;
  /** The used index when the device last decided about an interrupt (EVENT_IDX). */
  private signalled: number;

  /**
   * @param layout a layout `checkLayout` accepted.
   * @param features the negotiated ring features.
   * @param lastAvail next avail index the device will take.
   * @param usedIdx next used index the device will write.
   * @throws VirtqueueError when a part of the layout is outside guest RAM.
   */
  constructor(
    private readonly mem: DmaMemory,
    readonly layout: QueueLayout,
    private readonly features: QueueFeatures,
    public lastAvail = 0,
    public usedIdx = 0,
  ) {
    const part = (gpa: bigint, n: number): Uint8Array => {
      const bytes = mem.slice(gpa, n);
      if (bytes === undefined) throw new VirtqueueError("a ring is outside guest RAM");
      return bytes;
    };
    const size = layout.size;
    const d = part(layout.desc, 16 * size);
    const a = part(layout.driver, 6 + 2 * size);
    const u = part(layout.device, 6 + 8 * size);
    this.desc = new DataView(d.buffer, d.byteOffset, d.byteLength);
    this.avail = new DataView(a.buffer, a.byteOffset, a.byteLength);
    this.used = new DataView(u.buffer, u.byteOffset, u.byteLength);
    this.availIdx = u16View(a, 2);
    this.usedIdxCell = u16View(u, 2);
    this.availEvent = u16View(u, 4 + 8 * size);
    this.signalled = usedIdx;
  }

  /** Chains the driver has made available and the device has not taken. */
  available(): number {
    const idx = this.availIdx ? Atomics.load(this.availIdx, 0) : this.avail.getUint16(2, true);
    const n = (idx - this.lastAvail) & 0xffff;
    if (n > this.layout.size) {
      throw new VirtqueueError(
        `avail.idx ${idx} is ${n} entries ahead of the device (${this.lastAvail}), more than the queue's ${this.layout.size}`,
      );
    }
    return n;
  }

  /** The next available chain without taking it, or undefined when there is none. */
  peek(): Chain | undefined {
    if (this.available() === 0) return undefined;
    const slot = this.lastAvail % this.layout.size;
    const head = this.avail.getUint16(4 + 2 * slot, true);
    return this.walk(head);
  }

  /** Takes the next available chain, or undefined when there is none. */
  pop(): Chain | undefined {
    const chain = this.peek();
    if (chain === undefined) return undefined;
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.features.eventIdx) {
      // avail_event = the next entry we will take: the driver notifies when it publishes it.
      // Written before the next available() check, so an entry published meanwhile is seen.
      if (this.availEvent) Atomics.store(this.availEvent, 0, this.lastAvail);
      else this.used.setUint16(4 + 8 * this.layout.size, this.lastAvail, true);
      this.mem.wrote(this.layout.device + BigInt(4 + 8 * this.layout.size), 2);
    }
    return chain;
  }

  /** Returns chain `head` to the driver with `written` bytes written into its buffers. */
  push(head: number, written: number): void {
    const slot = this.usedIdx % this.layout.size;
    this.used.setUint32(4 + 8 * slot, head, true);
    this.used.setUint32(8 + 8 * slot, written, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    if (this.usedIdxCell) Atomics.store(this.usedIdxCell, 0, this.usedIdx);
    else this.used.setUint16(2, this.usedIdx, true);
    this.mem.wrote(this.layout.device + BigInt(4 + 8 * slot), 8);
    this.mem.wrote(this.layout.device + 2n, 2);
  }

  /**
   * Whether the driver wants an interrupt for the buffers used since the last call: with
   * EVENT_IDX when the used index passed used_event (vring_need_event, §2.7.10), otherwise
   * when VIRTQ_AVAIL_F_NO_INTERRUPT is clear.
   */
  interruptWanted(): boolean {
    if (!this.features.eventIdx)
      return (this.avail.getUint16(0, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    const event = this.avail.getUint16(4 + 2 * this.layout.size, true);
    const now = this.usedIdx;
    const old = this.signalled;
    this.signalled = now;
    return ((now - event - 1) & 0xffff) < ((now - old) & 0xffff);
  }

  /** Follows a descriptor chain, checking every index, flag and buffer (§2.7.5). */
  private walk(head: number): Chain {
    const size = this.layout.size;
    if (head >= size)
      throw new VirtqueueError(`head descriptor ${head} is outside the queue of ${size}`);
    const readable: Segment[] = [];
    const writable: Segment[] = [];
    let readableLength = 0;
    let writableLength = 0;
    let table = this.desc;
    let entries = size;
    let inIndirect = false;
    let index = head;
    let seen = 0;
    for (;;) {
      if (index >= entries)
        throw new VirtqueueError(`descriptor ${index} is outside its table of ${entries}`);
      if (++seen > entries) throw new VirtqueueError(`the chain from descriptor ${head} loops`);
      const at = 16 * index;
      const addr = table.getBigUint64(at, true);
      const len = table.getUint32(at + 8, true);
      const flags = table.getUint16(at + 12, true);
      const next = table.getUint16(at + 14, true);
      if (flags & VIRTQ_DESC_F.INDIRECT) {
        if (!this.features.indirect)
          throw new VirtqueueError("an indirect descriptor without VIRTIO_F_RING_INDIRECT_DESC");
        if (inIndirect) throw new VirtqueueError("an indirect descriptor inside an indirect table");
        if (flags & VIRTQ_DESC_F.NEXT)
          throw new VirtqueueError("an indirect descriptor with NEXT set");
        if (len === 0 || len % 16 !== 0 || len / 16 > MAX_INDIRECT)
          throw new VirtqueueError(
            `an indirect table of ${len} bytes (a multiple of 16, at most ${16 * MAX_INDIRECT})`,
          );
        const bytes = this.mem.slice(addr, len);
        if (bytes === undefined)
          throw new VirtqueueError(
            `an indirect table at 0x${addr.toString(16)} is outside guest RAM`,
          );
        table = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        entries = len / 16;
        inIndirect = true;
        index = 0;
        seen = 0;
        continue;
      }
      const bytes = this.mem.slice(addr, len);
      if (bytes === undefined)
        throw new VirtqueueError(
          `a buffer at 0x${addr.toString(16)} (${len} bytes) is outside guest RAM`,
        );
      if (flags & VIRTQ_DESC_F.WRITE) {
        writable.push({ gpa: addr, bytes });
        writableLength += len;
      } else {
        if (writable.length > 0)
          throw new VirtqueueError("a device-readable buffer after a device-writable one");
        readable.push({ gpa: addr, bytes });
        readableLength += len;
      }
      // used.len is a u32: a chain longer than that cannot be reported (§2.7.8).
      if (readableLength + writableLength > 0xffffffff)
        throw new VirtqueueError("a chain longer than 4 GiB");
      if (!(flags & VIRTQ_DESC_F.NEXT)) break;
      index = next;
    }
    return { head, readable, writable, readableLength, writableLength };
  }
}

/**
 * Copies up to `out.length` bytes of `segments`, starting `skip` bytes in, into `out`.
 * @returns the number of bytes copied.
 */
export function gather(segments: readonly Segment[], skip: number, out: Uint8Array): number {
  let done = 0;
  for (const s of segments) {
    if (done === out.length) break;
    if (skip >= s.bytes.length) {
      skip -= s.bytes.length;
      continue;
    }
    const part = s.bytes.subarray(skip, skip + out.length - done);
    out.set(part, done);
    done += part.length;
    skip = 0;
  }
  return done;
}

/** The views covering bytes [start, start + length) of `segments` (no copy). */
export function window(segments: readonly Segment[], start: number, length: number): Segment[] {
  const out: Segment[] = [];
  let skip = start;
  let left = length;
  for (const s of segments) {
    if (left === 0) break;
    if (skip >= s.bytes.length) {
      skip -= s.bytes.length;
      continue;
    }
    const bytes = s.bytes.subarray(skip, skip + left);
    out.push({ gpa: s.gpa + BigInt(skip), bytes });
    left -= bytes.length;
    skip = 0;
  }
  return out;
}
