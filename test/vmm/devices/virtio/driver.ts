/**
 * A fake guest for virtio device tests: guest RAM as `DmaMemory` and a driver that speaks the
 * virtio-mmio register protocol and builds split virtqueues in that RAM, as Linux's
 * virtio_mmio + virtio_ring do.
 */
import type { DmaMemory, MmioDevice } from "../../../../src/vmm/devices/types.js";
import { VIRTIO_STATUS } from "../../../../src/vmm/devices/virtio/mmio.js";

export const RAM_BASE = 0x80000000n;

/** Guest RAM at RAM_BASE; records every `wrote()`. */
export class FakeRam implements DmaMemory {
  readonly bytes: Uint8Array;
  readonly writes: { gpa: bigint; length: number }[] = [];
  private next = 0x1000;

  constructor(size = 1 << 20) {
    this.bytes = new Uint8Array(size);
  }

  slice(gpa: bigint, length: number): Uint8Array | undefined {
    const off = gpa - RAM_BASE;
    if (off < 0n || length < 0 || off + BigInt(length) > BigInt(this.bytes.length))
      return undefined;
    return this.bytes.subarray(Number(off), Number(off) + length);
  }

  wrote(gpa: bigint, length: number): void {
    this.writes.push({ gpa, length });
  }

  /** Allocates `n` bytes aligned to `align` (a bump allocator). */
  alloc(n: number, align = 16): bigint {
    this.next = Math.ceil(this.next / align) * align;
    const at = this.next;
    this.next += n;
    if (this.next > this.bytes.length) throw new Error("fake RAM exhausted");
    return RAM_BASE + BigInt(at);
  }

  view(gpa: bigint, n: number): Uint8Array {
    const v = this.slice(gpa, n);
    if (v === undefined) throw new Error("outside fake RAM");
    return v;
  }

  dv(gpa: bigint, n: number): DataView {
    const v = this.view(gpa, n);
    return new DataView(v.buffer, v.byteOffset, n);
  }
}

/** A buffer of a request: device-readable data, or `writable` bytes for the device to fill. */
export type Buffer = { readonly data: Uint8Array } | { readonly writable: number };

interface DriverQueue {
  size: number;
  desc: bigint;
  avail: bigint;
  used: bigint;
  nextDesc: number;
  availIdx: number;
  lastUsed: number;
}

/** The driver side of one virtio-mmio device. */
export class GuestDriver {
  readonly queues: DriverQueue[] = [];

  constructor(
    readonly dev: MmioDevice,
    readonly ram: FakeRam,
  ) {}

  r32(offset: number): number {
    const d = new Uint8Array(4);
    this.dev.mmioRead(offset, d);
    return new DataView(d.buffer).getUint32(0, true);
  }

  w32(offset: number, value: number): void {
    const d = new Uint8Array(4);
    new DataView(d.buffer).setUint32(0, value >>> 0, true);
    this.dev.mmioWrite(offset, d);
  }

  features(): bigint {
    this.w32(0x14, 0);
    const lo = this.r32(0x10);
    this.w32(0x14, 1);
    return (BigInt(this.r32(0x10)) << 32n) | BigInt(lo);
  }

  /** Status handshake (§3.1.1) accepting `wanted` (default: everything offered). Returns FEATURES_OK. */
  negotiate(wanted?: bigint): boolean {
    this.w32(0x70, 0);
    this.w32(0x70, VIRTIO_STATUS.ACKNOWLEDGE);
    this.w32(0x70, VIRTIO_STATUS.ACKNOWLEDGE | VIRTIO_STATUS.DRIVER);
    const f = wanted ?? this.features();
    this.w32(0x24, 0);
    this.w32(0x20, Number(f & 0xffffffffn));
    this.w32(0x24, 1);
    this.w32(0x20, Number(f >> 32n));
    this.w32(0x70, VIRTIO_STATUS.ACKNOWLEDGE | VIRTIO_STATUS.DRIVER | VIRTIO_STATUS.FEATURES_OK);
    return (this.r32(0x70) & VIRTIO_STATUS.FEATURES_OK) !== 0;
  }

  /** Allocates and enables queue `index` with `size` entries. */
  setupQueue(index: number, size: number): void {
    const desc = this.ram.alloc(16 * size, 16);
    const avail = this.ram.alloc(6 + 2 * size, 2);
    const used = this.ram.alloc(6 + 8 * size, 4);
    this.w32(0x30, index);
    this.w32(0x38, size);
    this.w32(0x80, Number(desc & 0xffffffffn));
    this.w32(0x84, Number(desc >> 32n));
    this.w32(0x90, Number(avail & 0xffffffffn));
    this.w32(0x94, Number(avail >> 32n));
    this.w32(0xa0, Number(used & 0xffffffffn));
    this.w32(0xa4, Number(used >> 32n));
    this.w32(0x44, 1);
    this.queues[index] = { size, desc, avail, used, nextDesc: 0, availIdx: 0, lastUsed: 0 };
  }

  /** negotiate() + queues + DRIVER_OK. */
  init(queueSizes: number[], wanted?: bigint): void {
    if (!this.negotiate(wanted)) throw new Error("FEATURES_OK refused");
    queueSizes.forEach((s, i) => {
      this.setupQueue(i, s);
    });
    this.w32(0x70, this.r32(0x70) | VIRTIO_STATUS.DRIVER_OK);
  }

  private q(index: number): DriverQueue {
    const q = this.queues[index];
    if (q === undefined) throw new Error(`queue ${index} not set up`);
    return q;
  }

  /** Writes descriptor `i` of a table at `table`. */
  writeDesc(
    table: bigint,
    i: number,
    addr: bigint,
    len: number,
    flags: number,
    next: number,
  ): void {
    const d = this.ram.dv(table + BigInt(16 * i), 16);
    d.setBigUint64(0, addr, true);
    d.setUint32(8, len, true);
    d.setUint16(12, flags, true);
    d.setUint16(14, next, true);
  }

  /** Puts `head` in the avail ring and bumps avail.idx. */
  publish(index: number, head: number): void {
    const q = this.q(index);
    const a = this.ram.dv(q.avail, 6 + 2 * q.size);
    a.setUint16(4 + 2 * (q.availIdx % q.size), head, true);
    q.availIdx = (q.availIdx + 1) & 0xffff;
    a.setUint16(2, q.availIdx, true);
  }

  /**
   * Builds a chain of `buffers` (directly, or through an indirect table) and makes it
   * available. Returns the head and the guest addresses of each buffer.
   */
  submit(
    index: number,
    buffers: Buffer[],
    opts: { indirect?: boolean } = {},
  ): { head: number; addrs: bigint[] } {
    const q = this.q(index);
    const addrs = buffers.map((b) => {
      const n = "data" in b ? b.data.length : b.writable;
      const at = this.ram.alloc(Math.max(n, 1), 8);
      if ("data" in b) this.ram.view(at, n).set(b.data);
      return at;
    });
    const head = q.nextDesc % q.size;
    if (opts.indirect === true) {
      const table = this.ram.alloc(16 * buffers.length, 16);
      buffers.forEach((b, i) => {
        const n = "data" in b ? b.data.length : b.writable;
        const last = i === buffers.length - 1;
        this.writeDesc(table, i, addrs[i] ?? 0n, n, ("data" in b ? 0 : 2) | (last ? 0 : 1), i + 1);
      });
      this.writeDesc(q.desc, head, table, 16 * buffers.length, 4, 0);
      q.nextDesc++;
    } else {
      buffers.forEach((b, i) => {
        const n = "data" in b ? b.data.length : b.writable;
        const slot = (q.nextDesc + i) % q.size;
        const last = i === buffers.length - 1;
        this.writeDesc(
          q.desc,
          slot,
          addrs[i] ?? 0n,
          n,
          ("data" in b ? 0 : 2) | (last ? 0 : 1),
          (slot + 1) % q.size,
        );
      });
      q.nextDesc += buffers.length;
    }
    this.publish(index, head);
    return { head, addrs };
  }

  notify(index: number): void {
    this.w32(0x50, index);
  }

  /** Used entries the device added since the last call. */
  takeUsed(index: number): { id: number; len: number }[] {
    const q = this.q(index);
    const u = this.ram.dv(q.used, 6 + 8 * q.size);
    const idx = u.getUint16(2, true);
    const out: { id: number; len: number }[] = [];
    while (q.lastUsed !== idx) {
      const slot = q.lastUsed % q.size;
      out.push({ id: u.getUint32(4 + 8 * slot, true), len: u.getUint32(8 + 8 * slot, true) });
      q.lastUsed = (q.lastUsed + 1) & 0xffff;
    }
    // used_event = what we consumed: interrupt for the next one (Linux's virtqueue_enable_cb).
    this.ram.dv(q.avail + BigInt(4 + 2 * q.size), 2).setUint16(0, q.lastUsed, true);
    return out;
  }

  /** Sets used_event (EVENT_IDX): interrupt when the used index passes `idx`. */
  usedEvent(index: number, idx: number): void {
    const q = this.q(index);
    this.ram.dv(q.avail + BigInt(4 + 2 * q.size), 2).setUint16(0, idx, true);
  }

  /** avail_event as the device last wrote it (EVENT_IDX). */
  availEvent(index: number): number {
    const q = this.q(index);
    return this.ram.dv(q.used + BigInt(4 + 8 * q.size), 2).getUint16(0, true);
  }

  /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT. */
  suppress(index: number, on: boolean): void {
    this.ram.dv(this.q(index).avail, 2).setUint16(0, on ? 1 : 0, true);
  }

  /** Reads InterruptStatus and acknowledges it. */
  ack(): number {
    const s = this.r32(0x60);
    this.w32(0x64, s);
    return s;
  }
}
