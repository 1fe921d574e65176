/**
 * The vCPU thread of a KVM vCPU's `runAsync()` (Worker side): it records its kernel thread id
 * (so `kick()` can signal it), then issues KVM_RUN on the vCPU fd each time the main thread asks
 * and posts the result; the main thread decodes the exit from its own kvm_run mapping (the same
 * pages). Its event loop stays blocked in `Atomics.wait` on purpose. Loaded from the compiled
 * output as `new Worker(new URL("./run-thread.js", import.meta.url))`; ioctls go through
 * ./ffi.ts, whose addon is context-aware and so loads here too.
 *
 * Shared words (Int32Array over `workerData.ctrl`): see RUN_CTRL in ./run-worker.ts.
 */
import { workerData } from "node:worker_threads";
import { IOCTLS } from "../../abi/kvm/ioctls.js";
import { ioctlValue, threadId } from "./ffi.js";
import { RUN_CTRL, type RunThreadInit } from "./run-worker.js";

// Struct codec boundary: workerData is exactly the RunThreadInit that run-worker.ts built.
const init = workerData as RunThreadInit;
const ctrl = new Int32Array(init.ctrl);
const RUN = IOCTLS.KVM_RUN.number;

Atomics.store(ctrl, RUN_CTRL.TID, threadId());
Atomics.store(ctrl, RUN_CTRL.READY, 1);
Atomics.notify(ctrl, RUN_CTRL.READY);

let seen = 0;
while (Atomics.load(ctrl, RUN_CTRL.STOP) === 0) {
  Atomics.wait(ctrl, RUN_CTRL.REQ, seen);
  const req = Atomics.load(ctrl, RUN_CTRL.REQ);
  if (req === seen || Atomics.load(ctrl, RUN_CTRL.STOP) !== 0) continue;
  seen = req;
  // KVM_RUN is never retried on EINTR (ffi.ts): that EINTR is the kick.
  Atomics.store(ctrl, RUN_CTRL.RESULT, ioctlValue(init.fd, RUN, 0));
  Atomics.store(ctrl, RUN_CTRL.RESP, req);
  Atomics.notify(ctrl, RUN_CTRL.RESP);
}
