/**
 * `RunThread`: the main-thread side of a KVM vCPU's `runAsync()`. KVM_RUN blocks its thread
 * until the next exit, so it runs on a Worker of its own (./run-thread.ts) while the caller
 * awaits a shared word with `Atomics.waitAsync` and its event loop stays free.
 *
 * A kick (`KvmVcpu.kick`) sets `kvm_run.immediate_exit` and sends SIGNAL to the worker's thread
 * with tgkill: KVM_RUN checks immediate_exit on entry and `signal_pending` in its loop
 * (arch/x86/kvm/x86.c `vcpu_run` → KVM_EXIT_INTR, -EINTR), so the run ends whether the signal
 * lands before or during the ioctl. The signal needs a handler, or its default action would end
 * the process: a no-op listener is installed while any run thread exists (Node then handles it
 * through libuv on whichever thread it hits). SIGUSR2 because SIGUSR1 starts Node's inspector
 * and SIGALRM is the deadline kicker's (src/vmm/runner-kick.ts).
 */
import { constants } from "node:os";
import { Worker } from "node:worker_threads";
import { waitForChange } from "../wait-async.js";
import { signalThread } from "./ffi.js";

/** The signal a kick sends to the vCPU thread. */
export const KICK_SIGNAL = "SIGUSR2";
const KICK_SIGNO = constants.signals.SIGUSR2;

/** Word indexes of the shared control array. */
export const RUN_CTRL = {
  /** Request sequence (main → thread). */
  REQ: 0,
  /** Sequence of the last finished run (thread → main). */
  RESP: 1,
  /** KVM_RUN's result: ≥ 0, or -errno. */
  RESULT: 2,
  /** The thread's kernel tid (0 until ready). */
  TID: 3,
  /** 0 booting, 1 ready. */
  READY: 4,
  /** 1: the thread must end. */
  STOP: 5,
} as const;

/** The Worker's `workerData`. */
export interface RunThreadInit {
  readonly ctrl: SharedArrayBuffer;
  readonly fd: number;
}

/** The vCPU thread went away before answering. */
export class RunThreadError extends Error {
  override readonly name = "RunThreadError";
}

let signalUsers = 0;
const ignoreKick = (): void => undefined;

/** One vCPU's KVM_RUN thread. */
export class RunThread {
  readonly #ctrl = new Int32Array(new SharedArrayBuffer(8 * 4));
  readonly #worker: Worker;
  #seq = 0;
  #gone: string | undefined;
  #closed = false;

  constructor(fd: number) {
    if (signalUsers++ === 0) process.on(KICK_SIGNAL, ignoreKick);
    const workerData: RunThreadInit = { ctrl: this.#ctrl.buffer, fd };
    this.#worker = new Worker(new URL("./run-thread.js", import.meta.url), { workerData });
    // Only a run in progress keeps the process alive (run() refs it).
    this.#worker.unref();
    this.#worker.on("error", (error: Error) => {
      this.#gone = `the vCPU thread failed: ${error.message}`;
    });
    this.#worker.on("exit", () => {
      this.#gone ??= "the vCPU thread ended";
      Atomics.store(this.#ctrl, RUN_CTRL.STOP, 1);
      Atomics.notify(this.#ctrl, RUN_CTRL.READY);
      Atomics.notify(this.#ctrl, RUN_CTRL.RESP);
    });
  }

  /** KVM_RUN on the thread: resolves with its result (≥ 0 or -errno). */
  async run(): Promise<number> {
    const ctrl = this.#ctrl;
    this.#worker.ref();
    try {
      while (Atomics.load(ctrl, RUN_CTRL.READY) === 0 && this.#gone === undefined) {
        await waitForChange(ctrl, RUN_CTRL.READY, 0);
      }
      this.#check();
      this.#seq = (this.#seq + 1) | 0;
      const seq = this.#seq;
      Atomics.store(ctrl, RUN_CTRL.REQ, seq);
      Atomics.notify(ctrl, RUN_CTRL.REQ);
      for (;;) {
        const resp = Atomics.load(ctrl, RUN_CTRL.RESP);
        if (resp === seq) break;
        this.#check();
        await waitForChange(ctrl, RUN_CTRL.RESP, resp);
      }
      return Atomics.load(ctrl, RUN_CTRL.RESULT);
    } finally {
      this.#worker.unref();
    }
  }

  /** Signals the thread (if it is up) so that a KVM_RUN in progress returns EINTR. */
  signal(): void {
    const tid = Atomics.load(this.#ctrl, RUN_CTRL.TID);
    // ESRCH (the thread already ended) needs nothing: there is no run to interrupt.
    if (tid > 0 && this.#gone === undefined) signalThread(tid, KICK_SIGNO);
  }

  /** Ends the thread (after a kick, a KVM_RUN in progress returns promptly). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    Atomics.store(this.#ctrl, RUN_CTRL.STOP, 1);
    Atomics.notify(this.#ctrl, RUN_CTRL.REQ);
    void this.#worker.terminate().finally(() => {
      // Keep the handler until the thread is gone: a late kick must not meet the default action.
      if (--signalUsers === 0) process.off(KICK_SIGNAL, ignoreKick);
    });
  }

  #check(): void {
    if (this.#gone !== undefined) throw new RunThreadError(`Cannot run the vCPU: ${this.#gone}`);
  }
}
