/**
 * virtio-blk (device ID 2, virtio 1.2 §5.2) over a `BlockBackend`, one request queue.
 *
 * A request is a descriptor chain (§5.2.6): a 16-byte device-readable header { type u32,
 * reserved u32, sector u64 }, then the data (device-readable for OUT, device-writable for IN and
 * GET_ID), then one device-writable status byte — the last writable byte of the chain. Types
 * served: IN (0), OUT (1), FLUSH (4), GET_ID (8); others complete with UNSUPP. Status IOERR
 * for: a short header, a data length not a multiple of 512, sectors beyond the capacity, a write
 * to a read-only disk (the file is not touched), an I/O error of the backend.
 *
 * Features offered: VIRTIO_BLK_F_SIZE_MAX (segments up to 1 MiB), VIRTIO_BLK_F_SEG_MAX (queue
 * size − 2: the header and status take two descriptors), VIRTIO_BLK_F_FLUSH, and
 * VIRTIO_BLK_F_RO for read-only disks. Capacity is the backend size in 512-byte sectors
 * (a partial last sector is not visible).
 *
 * Requests complete synchronously inside the notify, so none is ever in flight between exits
 * and the saved state is the transport's plus the capacity and read-only flag (checked on
 * restore: a state saved against another disk size is refused).
 */
import { VirtioMmio } from "./mmio.js";
import { gather, window, type Chain, type Segment } from "./queue.js";
import type { BlockBackend } from "./disk.js";
import type { StateReader, StateWriter } from "../state.js";
import type { DmaMemory, IrqLine } from "../types.js";

/** Request types (§5.2.6). */
export const VIRTIO_BLK_T = { IN: 0, OUT: 1, FLUSH: 4, GET_ID: 8 } as const;
/** Request status values (§5.2.6). */
export const VIRTIO_BLK_S = { OK: 0, IOERR: 1, UNSUPP: 2 } as const;
/** Feature bits (§5.2.3). */
export const VIRTIO_BLK_F = { SIZE_MAX: 1n, SEG_MAX: 2n, RO: 5n, FLUSH: 9n } as const;

/** Entries of the request queue (QueueNumMax). */
export const VIRTIO_BLK_QUEUE_SIZE = 128;
/** Largest segment the driver may use (size_max). */
export const VIRTIO_BLK_SIZE_MAX = 1 << 20;
const SECTOR = 512;
const HEADER = 16;
/** GET_ID answers with at most 20 bytes (VIRTIO_BLK_ID_BYTES). */
const ID_BYTES = 20;

/** Options of a virtio-blk device. */
export interface VirtioBlkOptions {
  readonly name: string;
  readonly mem: DmaMemory;
  readonly irq: IrqLine;
  readonly disk: BlockBackend;
  /** Serial returned by GET_ID (at most 20 bytes of UTF-8; default: the device name). */
  readonly serial?: string;
}

/** A virtio-blk device over a `BlockBackend`. */
export class VirtioBlk extends VirtioMmio {
  private readonly disk: BlockBackend;
  private readonly sectors: bigint;
  private readonly serial: Uint8Array;
  private readonly configSpace: Uint8Array;

  constructor(options: VirtioBlkOptions) {
    const { disk } = options;
    let features =
      (1n << VIRTIO_BLK_F.SIZE_MAX) | (1n << VIRTIO_BLK_F.SEG_MAX) | (1n << VIRTIO_BLK_F.FLUSH);
    if (disk.readOnly) features |= 1n << VIRTIO_BLK_F.RO;
    super({
      name: options.name,
      deviceId: 2,
      features,
      queueMax: [VIRTIO_BLK_QUEUE_SIZE],
      mem: options.mem,
      irq: options.irq,
    });
    this.disk = disk;
    this.sectors = BigInt(Math.floor(disk.size / SECTOR));
    this.serial = new TextEncoder().encode(options.serial ?? options.name).subarray(0, ID_BYTES);
    // struct virtio_blk_config (§5.2.4): capacity u64 @0, size_max u32 @8, seg_max u32 @12.
    this.configSpace = new Uint8Array(64);
    const view = new DataView(this.configSpace.buffer);
    view.setBigUint64(0, this.sectors, true);
    view.setUint32(8, VIRTIO_BLK_SIZE_MAX, true);
    view.setUint32(12, VIRTIO_BLK_QUEUE_SIZE - 2, true);
  }

  protected config(): Uint8Array {
    return this.configSpace;
  }

  protected process(index: number): void {
    const q = this.queue(index);
    if (q === undefined) return;
    let used = false;
    for (let chain = q.pop(); chain !== undefined; chain = q.pop()) {
      if (chain.writableLength === 0) {
        this.fail(`request ${chain.head} has no status byte`);
        return;
      }
      q.push(chain.head, this.serve(chain));
      used = true;
    }
    if (used) this.usedBuffers(q);
  }

  /** Serves one request; returns the bytes written into its buffers, status included. */
  private serve(chain: Chain): number {
    const statusAt = chain.writableLength - 1;
    const [status] = window(chain.writable, statusAt, 1);
    const answer = (code: number, written: number): number => {
      if (status !== undefined) {
        status.bytes[0] = code;
        this.mem.wrote(status.gpa, 1);
      }
      return written + 1;
    };
    const header = new Uint8Array(HEADER);
    if (gather(chain.readable, 0, header) < HEADER) return answer(VIRTIO_BLK_S.IOERR, 0);
    const view = new DataView(header.buffer);
    const type = view.getUint32(0, true);
    const sector = view.getBigUint64(8, true);
    switch (type) {
      case VIRTIO_BLK_T.IN: {
        const data = window(chain.writable, 0, statusAt);
        const ok = this.transfer(sector, statusAt, data, "in");
        return ok ? answer(VIRTIO_BLK_S.OK, statusAt) : answer(VIRTIO_BLK_S.IOERR, 0);
      }
      case VIRTIO_BLK_T.OUT: {
        const length = chain.readableLength - HEADER;
        const data = window(chain.readable, HEADER, length);
        const ok = !this.disk.readOnly && this.transfer(sector, length, data, "out");
        return answer(ok ? VIRTIO_BLK_S.OK : VIRTIO_BLK_S.IOERR, 0);
      }
      case VIRTIO_BLK_T.FLUSH:
        try {
          this.disk.flush();
          return answer(VIRTIO_BLK_S.OK, 0);
        } catch {
          return answer(VIRTIO_BLK_S.IOERR, 0);
        }
      case VIRTIO_BLK_T.GET_ID: {
        const id = new Uint8Array(Math.min(ID_BYTES, statusAt));
        id.set(this.serial.subarray(0, id.length));
        let at = 0;
        for (const s of window(chain.writable, 0, id.length)) {
          s.bytes.set(id.subarray(at, at + s.bytes.length));
          this.mem.wrote(s.gpa, s.bytes.length);
          at += s.bytes.length;
        }
        return answer(VIRTIO_BLK_S.OK, id.length);
      }
      default:
        return answer(VIRTIO_BLK_S.UNSUPP, 0);
    }
  }

  /** Moves `length` bytes between sector `sector` and `data`; false on any error. */
  private transfer(sector: bigint, length: number, data: Segment[], dir: "in" | "out"): boolean {
    if (length % SECTOR !== 0) return false;
    if (sector > this.sectors || BigInt(length / SECTOR) > this.sectors - sector) return false;
    let offset = Number(sector) * SECTOR;
    try {
      for (const s of data) {
        if (dir === "in") {
          this.disk.read(offset, s.bytes);
          this.mem.wrote(s.gpa, s.bytes.length);
        } else {
          this.disk.write(offset, s.bytes);
        }
        offset += s.bytes.length;
      }
      return true;
    } catch {
      return false;
    }
  }

  protected resetDevice(): void {
    // No state beyond the transport's: requests never outlive a notify.
  }

  protected saveDevice(w: StateWriter): void {
    w.u64(this.sectors).bool(this.disk.readOnly);
  }

  protected restoreDevice(r: StateReader): () => void {
    const sectors = r.u64("the capacity");
    const readOnly = r.bool("the read-only flag");
    if (sectors !== this.sectors)
      throw r.fail(`it was saved with a disk of ${sectors} sectors, this disk has ${this.sectors}`);
    if (readOnly !== this.disk.readOnly)
      throw r.fail(
        `it was saved with a ${readOnly ? "read-only" : "writable"} disk, this one is ${this.disk.readOnly ? "read-only" : "writable"}`,
      );
    return () => undefined;
  }
}
