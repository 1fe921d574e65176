/**
 * Threaded mode, main-thread side: each vCPU's kernel and hart live in a Worker
 * (./worker.ts); every call crosses the SharedArrayBuffer mailbox of ./mailbox.ts and blocks the
 * caller in `Atomics.wait` until the reply, so the `Vcpu` interface stays synchronous — except
 * `runAsync()`, which posts KVM_RUN the same way and awaits the reply with `Atomics.waitAsync`,
 * leaving the caller's event loop free while the guest runs. Guest RAM,
 * the run page and the VM-shared area are SharedArrayBuffers mapped on both sides; only
 * memslot changes use a MessagePort.
 */
import { MessageChannel, Worker } from "node:worker_threads";
import { regId, type RegId } from "../../abi/regid.js";
import type { Memslot, Watchpoint } from "./riscv/contract.js";
import { wasmMemoryOf } from "./riscv/wasm-memory.js";
import type { RunBudget } from "./kernel.js";
import { Errno } from "./kstate.js";
import {
  CTRL,
  Mailbox,
  OP,
  STATUS,
  type WireError,
  type WireMemslot,
  type WorkerInit,
  spinWhile,
  WATCH_KINDS,
} from "./mailbox.js";
import { BatchErrno } from "./regs-many.js";
import type { RunArea } from "./runarea.js";
import type { VmShared } from "./shared.js";
import type { KernelPort } from "./vcpu.js";
import { waitForChange } from "../wait-async.js";

/** How long a worker may take to load its modules before `createVcpu` gives up. */
const BOOT_TIMEOUT_MS = 30_000;

/** Inputs of `createThreadedPort`. */
export interface ThreadedPortInit {
  readonly hartModule: string;
  readonly hartId: number;
  readonly shared: VmShared;
  readonly runArea: RunArea;
  readonly memslots: readonly Memslot[];
  readonly budget?: RunBudget;
  /** Microseconds both sides poll before sleeping in Atomics.wait (default 0: never). */
  readonly spinUs?: number;
}

/** A vCPU worker failed to start, or died. */
export class SoftWorkerError extends Error {
  override readonly name = "SoftWorkerError";
}

/** Starts a vCPU worker and returns the port that talks to it (blocks until it is ready). */
export function createThreadedPort(init: ThreadedPortInit): KernelPort {
  return new ThreadedPort(init);
}

/** Converts memslots to their wire form (SharedArrayBuffer + offset + length). */
export function toWire(slots: readonly Memslot[]): WireMemslot[] {
  return slots.map((s) => {
    if (!(s.bytes.buffer instanceof SharedArrayBuffer)) {
      throw new TypeError("Threaded soft VMs need SharedArrayBuffer-backed memslots");
    }
    return {
      slot: s.slot,
      gpa: s.gpa,
      buffer: s.bytes.buffer,
      byteOffset: s.bytes.byteOffset,
      length: s.bytes.length,
      readonly: s.readonly,
      dirty: s.dirty,
      memory: wasmMemoryOf(s.bytes),
    };
  });
}

class ThreadedPort implements KernelPort {
  private readonly box = new Mailbox();
  private readonly worker: Worker;
  private readonly channel = new MessageChannel();
  private seq = 0;
  private dead = false;
  private readonly spinUs: number;

  constructor(init: ThreadedPortInit) {
    this.spinUs = init.spinUs ?? 0;
    const workerData: WorkerInit = {
      mailbox: this.box.buffer,
      runPage: init.runArea.buffer,
      shared: init.shared.buffer,
      hartModule: init.hartModule,
      hartId: init.hartId,
      memslots: toWire(init.memslots),
      budget: init.budget,
      spinUs: this.spinUs,
      port: this.channel.port2,
    };
    this.worker = new Worker(new URL("./worker.js", import.meta.url), {
      workerData,
      transferList: [this.channel.port2],
    });
    // The worker must never keep the process alive on its own: close() ends it, exit kills it.
    this.worker.unref();
    // A worker that dies (out of memory, terminate) must not leave a runAsync() awaiting.
    this.worker.on("exit", () => {
      this.dead = true;
      Atomics.notify(this.box.ctrl, CTRL.RESP);
    });
    this.channel.port1.unref();
    this.awaitReady();
  }

  regList(): RegId[] {
    this.call(OP.REG_LIST, 0);
    const count = this.box.view.getUint32(0, true);
    return this.box.readIds(count, 8).map((id) => regId(id));
  }

  getOne(id: RegId): bigint {
    this.box.view.setBigUint64(0, id, true);
    this.call(OP.GET_ONE, 8);
    return this.box.view.getBigUint64(0, true);
  }

  setOne(id: RegId, value: bigint): void {
    this.box.view.setBigUint64(0, id, true);
    this.box.view.setBigUint64(8, BigInt.asUintN(64, value), true);
    this.call(OP.SET_ONE, 16);
  }

  getMany(ids: readonly RegId[], out: Uint8Array): void {
    this.fits(8 + 8 * ids.length + out.length);
    this.box.view.setUint32(0, ids.length, true);
    this.box.view.setUint32(4, out.length, true);
    this.box.writeIds(ids, 8);
    this.call(OP.GET_MANY, 8 + 8 * ids.length);
    out.set(this.box.data.subarray(0, out.length));
  }

  setMany(ids: readonly RegId[], bytes: Uint8Array): void {
    // The facade checked bytes.length === Σ size(id).
    const at = 8 + 8 * ids.length;
    this.fits(at + bytes.length);
    this.box.view.setUint32(0, ids.length, true);
    this.box.view.setUint32(4, bytes.length, true);
    this.box.writeIds(ids, 8);
    this.box.data.set(bytes, at);
    this.call(OP.SET_MANY, at + bytes.length);
  }

  run(): number {
    this.call(OP.RUN, 0);
    return Atomics.load(this.box.ctrl, CTRL.RESULT);
  }

  async runAsync(): Promise<number> {
    const seq = this.post(OP.RUN, 0);
    const ctrl = this.box.ctrl;
    // A pending Atomics.waitAsync does not keep Node's event loop alive; the worker, ref'd for
    // the length of the run, does (a process awaiting its guest must not exit under it).
    this.worker.ref();
    try {
      for (;;) {
        const resp = Atomics.load(ctrl, CTRL.RESP);
        if (resp - seq >= 0) break;
        if (this.dead) throw new SoftWorkerError("The vCPU worker is gone");
        await waitForChange(ctrl, CTRL.RESP, resp);
      }
    } finally {
      this.worker.unref();
    }
    this.reply();
    return Atomics.load(ctrl, CTRL.RESULT);
  }

  setMemslots(slots: readonly Memslot[]): void {
    this.channel.port1.postMessage(toWire(slots));
    this.call(OP.SET_MEMSLOTS, 0);
  }

  setBudget(budget: RunBudget): void {
    this.call(OP.SET_BUDGET, this.box.writeText(JSON.stringify(budget)));
  }

  setGuestDebug(
    control: number,
    hwBreakpoints: readonly bigint[],
    watchpoints: readonly Watchpoint[] = [],
  ): void {
    // control, n, n × address; then m, m × (address, length, kind index).
    const at = 8 + 8 * hwBreakpoints.length;
    const bytes = at + 4 + 16 * watchpoints.length;
    this.fits(bytes);
    const view = this.box.view;
    view.setUint32(0, control, true);
    view.setUint32(4, hwBreakpoints.length, true);
    hwBreakpoints.forEach((a, i) => {
      view.setBigUint64(8 + 8 * i, a, true);
    });
    view.setUint32(at, watchpoints.length, true);
    watchpoints.forEach((w, i) => {
      view.setBigUint64(at + 4 + 16 * i, w.address, true);
      view.setUint32(at + 12 + 16 * i, w.length, true);
      view.setUint32(at + 16 + 16 * i, WATCH_KINDS.indexOf(w.kind), true);
    });
    this.call(OP.SET_GUEST_DEBUG, bytes);
  }

  getMpState(): number {
    this.call(OP.GET_MP_STATE, 0);
    return this.box.view.getUint32(0, true);
  }

  setMpState(state: number): void {
    this.box.view.setUint32(0, state, true);
    this.call(OP.SET_MP_STATE, 4);
  }

  close(): void {
    if (this.dead) return;
    try {
      this.call(OP.CLOSE, 0);
    } finally {
      this.dead = true;
      this.channel.port1.close();
      void this.worker.terminate();
    }
  }

  private fits(bytes: number): void {
    if (bytes > this.box.capacity) {
      throw new RangeError(
        `A batch of ${bytes} bytes exceeds the threaded mailbox (${this.box.capacity} bytes)`,
      );
    }
  }

  private awaitReady(): void {
    const ctrl = this.box.ctrl;
    Atomics.wait(ctrl, CTRL.READY, 0, BOOT_TIMEOUT_MS);
    const ready = Atomics.load(ctrl, CTRL.READY);
    if (ready === 1) return;
    this.dead = true;
    void this.worker.terminate();
    const why =
      ready === 2 ? this.box.readText(Atomics.load(ctrl, CTRL.REPLY_LEN)) : "it did not start";
    throw new SoftWorkerError(`Cannot start the vCPU worker: ${why}`);
  }

  /** Posts one request; returns its sequence number. */
  private post(op: number, reqLen: number): number {
    if (this.dead) throw new SoftWorkerError("The vCPU worker is gone");
    const ctrl = this.box.ctrl;
    ctrl[CTRL.OP] = op;
    ctrl[CTRL.REQ_LEN] = reqLen;
    this.seq = (this.seq + 1) | 0;
    const seq = this.seq;
    Atomics.store(ctrl, CTRL.REQ, seq);
    Atomics.notify(ctrl, CTRL.REQ);
    return seq;
  }

  /** One round trip; throws the kernel's Errno/BatchErrno or the worker's error. */
  private call(op: number, reqLen: number): void {
    const seq = this.post(op, reqLen);
    const ctrl = this.box.ctrl;
    if (this.spinUs > 0) spinWhile(ctrl, CTRL.RESP, (value) => value !== seq, this.spinUs);
    for (;;) {
      const resp = Atomics.load(ctrl, CTRL.RESP);
      // ≥ rather than ===: close() may post after a runAsync() whose reply nobody awaited yet.
      if (resp - seq >= 0) break;
      Atomics.wait(ctrl, CTRL.RESP, resp);
    }
    this.reply();
  }

  /** Throws the error of the reply now in the mailbox, if it is one. */
  private reply(): void {
    const ctrl = this.box.ctrl;
    const status = ctrl[CTRL.STATUS];
    if (status === STATUS.OK) return;
    if (status === STATUS.ERRNO) {
      const errno = ctrl[CTRL.ERRNO] ?? 0;
      const index = ctrl[CTRL.INDEX] ?? -1;
      throw index >= 0 ? new BatchErrno(errno, index) : new Errno(errno);
    }
    // Wire codec: the worker wrote exactly a WireError as JSON (worker.ts `replyError`).
    const wire = JSON.parse(this.box.readText(ctrl[CTRL.REPLY_LEN] ?? 0)) as WireError;
    const error = new SoftWorkerError(`${wire.name} in the vCPU worker: ${wire.message}`);
    if (wire.name === "RangeError") throw new RangeError(error.message, { cause: error });
    if (wire.name === "TypeError") throw new TypeError(error.message, { cause: error });
    throw error;
  }
}
