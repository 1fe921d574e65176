/**
 * The synchronous mailbox between a threaded soft vCPU's facade (main thread) and its kernel
 * (Worker): one SharedArrayBuffer, one request in flight. The caller writes the request, bumps
 * REQ and blocks in `Atomics.wait` on RESP; the worker, blocked on REQ, handles it, writes the
 * reply and bumps RESP. Atomics give the happens-before edges for the plain bytes in between
 * (and for the shared run page and guest RAM).
 *
 * Layout:
 *
 * ```
 * i32[0] REQ seq      i32[1] RESP seq    i32[2] op        i32[3] status (0 ok, 1 errno, 2 error)
 * i32[4] errno        i32[5] batch index (-1: none)       i32[6] request bytes
 * i32[7] reply bytes  i32[8] run result  i32[9] ready (0 booting, 1 ready, 2 failed)
 * byte 64..           request / reply data (little-endian)
 * ```
 *
 * Request data per op: GET_ONE id; SET_ONE id + 8-byte value; GET_MANY/SET_MANY u32 count at 0,
 * u32 value-stream length at 4, ids from 8, then (SET_MANY) the packed values; SET_GUEST_DEBUG
 * u32 control at 0, u32 count at 4, count u64 breakpoint pcs from 8; SET_BUDGET and errors are
 * JSON text. Memslots
 * travel over a MessagePort (they carry SharedArrayBuffers) and are picked up synchronously
 * with `receiveMessageOnPort`.
 */
import type { MessagePort } from "node:worker_threads";

/** Operation codes. */
export const OP = {
  REG_LIST: 1,
  GET_ONE: 2,
  SET_ONE: 3,
  GET_MANY: 4,
  SET_MANY: 5,
  RUN: 6,
  SET_MEMSLOTS: 7,
  SET_BUDGET: 8,
  CLOSE: 9,
  SET_GUEST_DEBUG: 10,
  GET_MP_STATE: 11,
  SET_MP_STATE: 12,
} as const;

/** Watchpoint kinds of SET_GUEST_DEBUG, by their index on the wire. */
export const WATCH_KINDS = ["watch", "rwatch", "awatch"] as const;

/** Control word indexes. */
export const CTRL = {
  REQ: 0,
  RESP: 1,
  OP: 2,
  STATUS: 3,
  ERRNO: 4,
  INDEX: 5,
  REQ_LEN: 6,
  REPLY_LEN: 7,
  RESULT: 8,
  READY: 9,
} as const;

/** Reply status values. */
export const STATUS = { OK: 0, ERRNO: 1, ERROR: 2 } as const;

/** Offset of the data area. */
export const DATA_OFFSET = 64;
/** Default data capacity: enough for ~65 000 registers in one batch. */
export const DEFAULT_MAILBOX_BYTES = 1 << 20;

/** Typed views over one mailbox buffer. */
export class Mailbox {
  readonly buffer: SharedArrayBuffer;
  readonly ctrl: Int32Array;
  readonly data: Uint8Array;
  readonly view: DataView;

  constructor(buffer?: SharedArrayBuffer, capacity = DEFAULT_MAILBOX_BYTES) {
    this.buffer = buffer ?? new SharedArrayBuffer(DATA_OFFSET + capacity);
    this.ctrl = new Int32Array(this.buffer, 0, DATA_OFFSET / 4);
    this.data = new Uint8Array(this.buffer, DATA_OFFSET);
    this.view = new DataView(this.buffer, DATA_OFFSET);
  }

  /** Bytes the data area holds. */
  get capacity(): number {
    return this.data.length;
  }

  /** Writes `ids` as u64s starting at byte `offset` of the data area. */
  writeIds(ids: readonly bigint[], offset: number): void {
    for (let i = 0; i < ids.length; i++) {
      this.view.setBigUint64(offset + 8 * i, ids[i] ?? 0n, true);
    }
  }

  /** Reads `count` u64 ids starting at byte `offset` of the data area. */
  readIds(count: number, offset: number): bigint[] {
    const ids = new Array<bigint>(count);
    for (let i = 0; i < count; i++) ids[i] = this.view.getBigUint64(offset + 8 * i, true);
    return ids;
  }

  /** Writes UTF-8 text at the start of the data area; returns its length. */
  writeText(text: string): number {
    const bytes = new TextEncoder().encode(text).subarray(0, this.capacity);
    this.data.set(bytes);
    return bytes.length;
  }

  /** Reads `len` bytes of UTF-8 text from the start of the data area. */
  readText(len: number): string {
    return new TextDecoder().decode(this.data.slice(0, len));
  }
}

/**
 * Polls `ctrl[index]` while `busy(value)` holds, for at most `us` microseconds. Calls come in
 * bursts and replies within microseconds, so a short poll saves the futex sleep/wake round trip
 * (~10-20 µs on these machines) — at the price of a busy core on both sides, which is why it is
 * opt-in (`SoftVmOptions.spinUs`); Atomics.wait takes over after it.
 */
export function spinWhile(
  ctrl: Int32Array,
  index: number,
  busy: (value: number) => boolean,
  us: number,
): void {
  const end = performance.now() + us / 1000;
  for (;;) {
    for (let i = 0; i < 256; i++) if (!busy(Atomics.load(ctrl, index))) return;
    if (performance.now() >= end) return;
  }
}

/** A memslot as it crosses the worker boundary. */
export interface WireMemslot {
  readonly slot: number;
  readonly gpa: number;
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly length: number;
  readonly readonly: boolean;
  /** KVM_MEM_LOG_DIRTY_PAGES: the slot's shared dirty bytes (one per page). */
  readonly dirty: Uint8Array | undefined;
  /**
   * The shared WebAssembly.Memory `buffer` belongs to (riscv/wasm-memory.ts), if any: posted
   * with the slot so the worker's hart finds its area and runs compiled code on the same RAM.
   */
  readonly memory: unknown;
}

/** Everything a vCPU worker starts from (its `workerData`). */
export interface WorkerInit {
  readonly mailbox: SharedArrayBuffer;
  readonly runPage: SharedArrayBuffer;
  readonly shared: SharedArrayBuffer;
  readonly hartModule: string;
  readonly hartId: number;
  readonly memslots: readonly WireMemslot[];
  readonly budget: { readonly instructions?: number; readonly timeSliceMs?: number } | undefined;
  /** Microseconds to poll for the next request before sleeping (0: sleep at once). */
  readonly spinUs: number;
  readonly port: MessagePort;
}

/** Errors that are not errno values, as they cross the boundary. */
export interface WireError {
  readonly name: string;
  readonly message: string;
}
