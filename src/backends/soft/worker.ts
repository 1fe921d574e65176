/**
 * Threaded mode, worker side: the "kernel thread" of one soft vCPU. It imports the hart module
 * named in `workerData`, builds the `VcpuKernel`, signals ready, then serves the mailbox
 * (./mailbox.ts) forever: wait on REQ, handle, reply, notify RESP. Its event loop stays blocked
 * on purpose; memslot updates are read with `receiveMessageOnPort`. Loaded from the compiled
 * output as `new Worker(new URL("./worker.js", import.meta.url))`.
 */
import { receiveMessageOnPort, workerData } from "node:worker_threads";
import { regId } from "../../abi/regid.js";
import type { HartApi, Memslot } from "./riscv/contract.js";
import { VcpuKernel, type RunBudget } from "./kernel.js";
import { Errno } from "./kstate.js";
import {
  CTRL,
  Mailbox,
  OP,
  STATUS,
  spinWhile,
  type WireMemslot,
  type WorkerInit,
  WATCH_KINDS,
} from "./mailbox.js";
import { BatchErrno } from "./regs-many.js";
import { splitHalves, type IdParts } from "./regs.js";
import { RunArea } from "./runarea.js";
import { VmShared } from "./shared.js";
import { registerWasmMemory } from "./riscv/wasm-memory.js";

// Struct codec boundary: workerData is exactly the WorkerInit that threaded.ts built.
const init = workerData as WorkerInit;
const box = new Mailbox(init.mailbox);

function fromWire(slots: readonly WireMemslot[]): Memslot[] {
  return slots.map((s) => {
    // The bytes must view the posted memory's own buffer object, by which the hart finds it.
    const mem = registerWasmMemory(s.memory);
    return {
      slot: s.slot,
      gpa: s.gpa,
      bytes: new Uint8Array(mem?.buffer ?? s.buffer, s.byteOffset, s.length),
      readonly: s.readonly,
      ...(s.dirty === undefined ? {} : { dirty: s.dirty }),
    };
  });
}

interface HartModule {
  readonly Hart: new (options: { hartId: number }) => HartApi;
}

async function boot(): Promise<VcpuKernel> {
  // Module boundary: the module named by the VMM exports `Hart` (checked just below).
  const mod = (await import(init.hartModule)) as Partial<HartModule>;
  if (typeof mod.Hart !== "function") {
    throw new TypeError(`${init.hartModule} does not export a Hart class`);
  }
  return new VcpuKernel({
    hart: new mod.Hart({ hartId: init.hartId }),
    hartId: init.hartId,
    shared: new VmShared(init.shared),
    page: new RunArea(init.runPage),
    memslots: fromWire(init.memslots),
    ...(init.budget === undefined ? {} : { budget: init.budget }),
  });
}

function replyError(error: unknown): void {
  const ctrl = box.ctrl;
  if (error instanceof Errno) {
    ctrl[CTRL.STATUS] = STATUS.ERRNO;
    ctrl[CTRL.ERRNO] = error.errno;
    ctrl[CTRL.INDEX] = error instanceof BatchErrno ? error.index : -1;
    return;
  }
  const e = error instanceof Error ? error : new Error(String(error));
  ctrl[CTRL.STATUS] = STATUS.ERROR;
  ctrl[CTRL.REPLY_LEN] = box.writeText(JSON.stringify({ name: e.name, message: e.message }));
}

/** Ids of a batch request, split straight from their bytes (no BigInt on this hot path). */
function wireIds(count: number): IdParts[] {
  const parts = new Array<IdParts>(count);
  for (let i = 0; i < count; i++) {
    const at = 8 + 8 * i;
    parts[i] = splitHalves(box.view.getUint32(at, true), box.view.getUint32(at + 4, true));
  }
  return parts;
}

/** Handles one request; returns false when the worker should stop. */
function handle(kernel: VcpuKernel, op: number): boolean {
  const { view, data } = box;
  switch (op) {
    case OP.REG_LIST: {
      const ids = kernel.regList();
      view.setUint32(0, ids.length, true);
      box.writeIds(ids, 8);
      return true;
    }
    case OP.GET_ONE:
      view.setBigUint64(
        0,
        BigInt.asUintN(64, kernel.getOne(regId(view.getBigUint64(0, true)))),
        true,
      );
      return true;
    case OP.SET_ONE:
      kernel.setOne(regId(view.getBigUint64(0, true)), view.getBigUint64(8, true));
      return true;
    case OP.GET_MANY: {
      // The reply overwrites the request, so the ids are split first; `total` is at byte 4.
      const ids = wireIds(view.getUint32(0, true));
      kernel.getManyParts(ids, data.subarray(0, view.getUint32(4, true)));
      return true;
    }
    case OP.SET_MANY: {
      const count = view.getUint32(0, true);
      const at = 8 + 8 * count;
      kernel.setManyParts(wireIds(count), data.subarray(at, at + view.getUint32(4, true)));
      return true;
    }
    case OP.RUN:
      box.ctrl[CTRL.RESULT] = kernel.run();
      return true;
    case OP.SET_MEMSLOTS: {
      const message = receiveMessageOnPort(init.port);
      // Wire codec: threaded.ts posts exactly one WireMemslot[] before this op.
      if (message !== undefined) kernel.setMemslots(fromWire(message.message as WireMemslot[]));
      return true;
    }
    case OP.SET_BUDGET:
      // Wire codec: threaded.ts wrote JSON.stringify(budget).
      kernel.setBudget(JSON.parse(box.readText(box.ctrl[CTRL.REQ_LEN] ?? 0)) as RunBudget);
      return true;
    case OP.SET_GUEST_DEBUG: {
      const count = view.getUint32(4, true);
      const hw = Array.from({ length: count }, (_, i) => view.getBigUint64(8 + 8 * i, true));
      const at = 8 + 8 * count;
      const watch = Array.from({ length: view.getUint32(at, true) }, (_, i) => ({
        address: view.getBigUint64(at + 4 + 16 * i, true),
        length: view.getUint32(at + 12 + 16 * i, true),
        kind: WATCH_KINDS[view.getUint32(at + 16 + 16 * i, true)] ?? "awatch",
      }));
      kernel.setGuestDebug(view.getUint32(0, true), hw, watch);
      return true;
    }
    case OP.GET_MP_STATE:
      view.setUint32(0, kernel.getMpState(), true);
      return true;
    case OP.SET_MP_STATE:
      kernel.setMpState(view.getUint32(0, true));
      return true;
    case OP.CLOSE:
      kernel.close();
      return false;
    default:
      throw new RangeError(`Unknown mailbox op ${op}`);
  }
}

function serve(kernel: VcpuKernel): void {
  const ctrl = box.ctrl;
  // REQ starts at 0 and the caller only posts after READY; starting from the value read here
  // could miss a request posted between READY and this line.
  let seen = 0;
  for (;;) {
    // Requests come in bursts (get, get, set, run): poll briefly before sleeping.
    if (init.spinUs > 0) spinWhile(ctrl, CTRL.REQ, (value) => value === seen, init.spinUs);
    Atomics.wait(ctrl, CTRL.REQ, seen);
    const seq = Atomics.load(ctrl, CTRL.REQ);
    if (seq === seen) continue;
    seen = seq;
    ctrl[CTRL.STATUS] = STATUS.OK;
    let more = true;
    try {
      more = handle(kernel, ctrl[CTRL.OP] ?? 0);
    } catch (error) {
      replyError(error);
    }
    Atomics.store(ctrl, CTRL.RESP, seq);
    Atomics.notify(ctrl, CTRL.RESP);
    if (!more) return;
  }
}

try {
  const kernel = await boot();
  Atomics.store(box.ctrl, CTRL.READY, 1);
  Atomics.notify(box.ctrl, CTRL.READY);
  serve(kernel);
  init.port.close();
} catch (error) {
  const e = error instanceof Error ? error : new Error(String(error));
  box.ctrl[CTRL.REPLY_LEN] = box.writeText(`${e.name}: ${e.message}`);
  Atomics.store(box.ctrl, CTRL.READY, 2);
  Atomics.notify(box.ctrl, CTRL.READY);
}
