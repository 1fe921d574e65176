/**
 * Decodes `kvm_run` after KVM_RUN returns into the backend-neutral `VcpuExit` union (ABI doc
 * §4.3, §4.4). Data-carrying exits hand out live views into the mapping: for IO, the PIO data
 * page at `io.data_offset`; for MMIO, `mmio.data`. The guest's OUT/write bytes are there at the
 * exit, and for IN/read the VMM writes its answer there before the next `run()`, which KVM
 * completes on entry. The last IO exit object is reused when every field repeats (a guest
 * polling one port), so the common loop allocates nothing.
 */
import { KVM_EXIT, KVM_EXIT_IO, KVM_SYSTEM_EVENT, kvmExitName } from "../../abi/kvm/ioctls.js";
import { KVM_RUN, KVM_RUN_EXIT } from "../../abi/kvm/layouts.js";
import type { VcpuExit } from "../vcpu.js";
import type { NativeMemory } from "./ffi.js";

type IoExit = Extract<VcpuExit, { kind: "io" }>;

const EXIT_REASON = KVM_RUN.fields.exit_reason.offset;
const IO = KVM_RUN_EXIT.io;
if (IO.size !== IO.direction + 1 || IO.port !== IO.direction + 2) {
  throw new Error("kvm_run.io layout: direction, size and port must be adjacent");
}
const MMIO = KVM_RUN_EXIT.mmio;
const FAIL = KVM_RUN_EXIT.fail_entry;
const INTERNAL = KVM_RUN_EXIT.internal;
const EVENT = KVM_RUN_EXIT.system_event;
const DEBUG = KVM_RUN_EXIT.debug;
/** The #BP vector, and DR6's B0–B3 and BS bits (SDM Vol. 3B §18.2.3). */
const BP_VECTOR = 3;
const DR6_B0_3 = 0xfn;
const DR6_BS = 1n << 14n;
// internal.data and system_event.data hold at most 16 u64 (include/uapi/linux/kvm.h).
const MAX_DATA = 16;

const SYSTEM_EVENT_NAMES = new Map<number, string>(
  Object.entries(KVM_SYSTEM_EVENT).map(([name, value]) => [value, name]),
);

/** Shared immutable exits without payload. */
export const HLT_EXIT: VcpuExit = Object.freeze({ kind: "hlt" });
/** KVM_EXIT_SHUTDOWN (triple fault). */
export const SHUTDOWN_EXIT: VcpuExit = Object.freeze({ kind: "shutdown" });
/** EINTR from KVM_RUN (immediate_exit or a signal) and KVM_EXIT_INTR. */
export const INTR_EXIT: VcpuExit = Object.freeze({ kind: "intr" });

/** Stateful decoder for one vCPU's kvm_run mapping. */
export class ExitDecoder {
  readonly #run: NativeMemory;
  readonly #view: DataView;
  #lastIo: IoExit | undefined;
  #lastIoKey = -1;
  #lastIoOffset = -1;

  constructor(run: NativeMemory) {
    this.#run = run;
    this.#view = run.view;
  }

  /** The raw `exit_reason`. */
  reason(): number {
    return this.#view.getUint32(EXIT_REASON, true);
  }

  /** Decodes the current exit. */
  decode(): VcpuExit {
    const reason = this.reason();
    switch (reason) {
      case KVM_EXIT.IO:
        return this.#io();
      case KVM_EXIT.HLT:
        return HLT_EXIT;
      case KVM_EXIT.MMIO:
        return this.#mmio();
      case KVM_EXIT.SHUTDOWN:
        return SHUTDOWN_EXIT;
      case KVM_EXIT.INTR:
        return INTR_EXIT;
      case KVM_EXIT.FAIL_ENTRY:
        return {
          kind: "fail_entry",
          reason: this.#view.getBigUint64(FAIL.hardware_entry_failure_reason, true),
          cpu: this.#view.getUint32(FAIL.cpu, true),
        };
      case KVM_EXIT.INTERNAL_ERROR:
        return {
          kind: "internal_error",
          suberror: this.#view.getUint32(INTERNAL.suberror, true),
          data: this.#u64s(INTERNAL.data, this.#view.getUint32(INTERNAL.ndata, true)),
        };
      case KVM_EXIT.SYSTEM_EVENT:
        return this.#systemEvent();
      case KVM_EXIT.DEBUG:
        return this.#debug();
      default:
        return { kind: "unsupported", exitReason: reason, reason: kvmExitName(reason) };
    }
  }

  #io(): VcpuExit {
    const v = this.#view;
    // direction (u8), size (u8) and port (u16) are adjacent (checked at load), so one u32 read
    // identifies them; with count and data_offset it decides whether the last exit repeats.
    const key = v.getUint32(IO.direction, true);
    const count = v.getUint32(IO.count, true);
    // data_offset is a u64 but always inside the mapping (x86: 4096, the PIO page); reading
    // the two u32 halves avoids a BigInt per exit.
    const offset =
      v.getUint32(IO.data_offset, true) + v.getUint32(IO.data_offset + 4, true) * 2 ** 32;
    const last = this.#lastIo;
    if (
      last !== undefined &&
      key === this.#lastIoKey &&
      count === last.count &&
      offset === this.#lastIoOffset
    ) {
      return last;
    }
    const direction = v.getUint8(IO.direction);
    const size = v.getUint8(IO.size);
    const port = v.getUint16(IO.port, true);
    const length = size * count;
    if (offset + length > this.#run.size) {
      return {
        kind: "unsupported",
        exitReason: KVM_EXIT.IO,
        reason: "KVM_EXIT_IO data outside the mapping",
      };
    }
    const exit: IoExit = Object.freeze({
      kind: "io",
      direction: direction === KVM_EXIT_IO.OUT ? "out" : "in",
      port,
      size,
      count,
      data: this.#run.bytes.subarray(offset, offset + length),
    });
    this.#lastIo = exit;
    this.#lastIoKey = key;
    this.#lastIoOffset = offset;
    return exit;
  }

  #mmio(): VcpuExit {
    const len = Math.min(this.#view.getUint32(MMIO.len, true), 8);
    return {
      kind: "mmio",
      address: this.#view.getBigUint64(MMIO.phys_addr, true),
      isWrite: this.#view.getUint8(MMIO.is_write) !== 0,
      data: this.#run.bytes.subarray(MMIO.data, MMIO.data + len),
    };
  }

  // x86 kvm_debug_exit_arch: `pc` is the linear address (CS base + RIP) of the instruction the
  // event is reported at (arch/x86/kvm/vmx/vmx.c handle_exception_nmi, kvm_get_linear_rip).
  // `cause` from the exception and DR6 (SDM Vol. 3B §18.2.3): #BP (3) is an int3, B0–B3 a DR
  // breakpoint, BS a single step.
  #debug(): VcpuExit {
    const v = this.#view;
    const exception = v.getUint32(DEBUG.exception, true);
    const dr6 = v.getBigUint64(DEBUG.dr6, true);
    const cause =
      exception === BP_VECTOR
        ? "swbreak"
        : (dr6 & DR6_B0_3) !== 0n
          ? "hwbreak"
          : (dr6 & DR6_BS) !== 0n
            ? "step"
            : undefined;
    return {
      kind: "debug",
      pc: v.getBigUint64(DEBUG.pc, true),
      exception,
      dr6,
      dr7: v.getBigUint64(DEBUG.dr7, true),
      ...(cause === undefined ? {} : { cause }),
    };
  }

  #systemEvent(): VcpuExit {
    const type = this.#view.getUint32(EVENT.type, true);
    return {
      kind: "system_event",
      type,
      typeName: SYSTEM_EVENT_NAMES.get(type) ?? `TYPE_${type}`,
      data: this.#u64s(EVENT.data, this.#view.getUint32(EVENT.ndata, true)),
    };
  }

  #u64s(offset: number, count: number): bigint[] {
    const n = Math.min(count, MAX_DATA);
    const out: bigint[] = [];
    for (let i = 0; i < n; i++) out.push(this.#view.getBigUint64(offset + 8 * i, true));
    return out;
  }
}
