/**
 * The soft vCPU's run page: a `struct kvm_run` in a SharedArrayBuffer, with the header offsets
 * of include/uapi/linux/kvm.h (docs/kvm-register-abi.md §4.1: immediate_exit @1, exit_reason @8,
 * exit union @32, kvm_valid_regs @288, kvm_dirty_regs @296, s @304), exits written by the
 * "kernel" and decoded into `VcpuExit` values on the VMM side. In threaded mode both threads map
 * the same buffer, exactly like the mmapped page of a real vCPU fd.
 *
 * ## Sync registers: a regvisor extension
 *
 * Upstream RISC-V KVM has an empty `struct kvm_sync_regs`. The soft backend defines one, with
 * x86 semantics (§12.1): `kvm_valid_regs` is an input naming the groups to copy out on every
 * return from `run()` (error and interrupt paths included); `kvm_dirty_regs` names groups the VMM
 * edited, applied before the next entry (before pending MMIO/SBI completion), each bit cleared
 * once its group is applied; a bit outside `KVM_SYNC_RISCV.VALID_FIELDS` in either mask makes
 * `run()` fail with EINVAL before entering the guest. Layout inside `s` (offset 304), reusing the
 * kernel's own ONE_REG backing structs:
 *
 * ```
 * s + 0    struct kvm_riscv_core (264 bytes): pc, x1..x31, mode       group CORE = 0x1
 * s + 264  struct kvm_riscv_csr  (88 bytes): sstatus … senvcfg      group CSR  = 0x2
 * ```
 *
 * Writing a group behaves exactly like the ONE_REG writes of its registers (CORE `mode`: 1 = S,
 * anything else U; CSR `sip` masked to SSIP/STIP/SEIP). FP state is not part of the area.
 *
 * Beyond `sizeof(struct kvm_run)` (2352) the page also carries, at `FAULT_TEXT_OFFSET`, the
 * reason text of the last internal-error exit (u16 length + UTF-8), another regvisor extension,
 * and at `INSTRET_OFFSET` the hart's retired-instruction count (u64) as of the last return from
 * `run()`, so a VMM can report it in either execution mode (a third extension).
 *
 * `KVM_EXIT_DEBUG`: RISC-V's `struct kvm_debug_exit_arch` is empty (the VMM reads pc with
 * ONE_REG); the soft backend fills the union with `u64 pc` at +0 and `u32 cause` at +8
 * (1 swbreak, 2 step, 3 hwbreak), a fourth extension, so the exit carries what the gdbstub asks.
 */
import { KVM_EXIT, KVM_SYSTEM_EVENT } from "../../abi/kvm/constants.js";
import { KVM_RUN, KVM_RUN_EXIT } from "../../abi/kvm/layouts.js";
import type { VcpuExit } from "../vcpu.js";
import type { DebugCause } from "./riscv/contract.js";
import { SBI_ERR } from "../../abi/sbi.js";

/** Size of the run page (one 4 KiB page, like KVM_GET_VCPU_MMAP_SIZE's first page). */
export const RUN_PAGE_BYTES = 4096;

/** regvisor's riscv sync-register groups for `kvm_valid_regs` / `kvm_dirty_regs`. */
export const KVM_SYNC_RISCV = { CORE: 0x1, CSR: 0x2, VALID_FIELDS: 0x3 } as const;

/** Offset of the CORE group (struct kvm_riscv_core) in the page. */
export const SYNC_CORE_OFFSET = KVM_RUN.fields.s.offset;
/** Offset of the CSR group (struct kvm_riscv_csr) in the page. */
export const SYNC_CSR_OFFSET = KVM_RUN.fields.s.offset + 264;
/** Offset of the internal-error reason text (after struct kvm_run). */
export const FAULT_TEXT_OFFSET = 3072;
const FAULT_TEXT_MAX = RUN_PAGE_BYTES - FAULT_TEXT_OFFSET - 2;
/** Offset of the retired-instruction count (u64, after struct kvm_run, before the fault text). */
export const INSTRET_OFFSET = FAULT_TEXT_OFFSET - 8;

const H = KVM_RUN.fields;
const MMIO = KVM_RUN_EXIT.mmio;
const SBI = KVM_RUN_EXIT.riscv_sbi;
const SYS = KVM_RUN_EXIT.system_event;
const INTERNAL = KVM_RUN_EXIT.internal;
const CSR_EXIT = KVM_RUN_EXIT.riscv_csr;
const UNION_BYTES = 256;
/** `cause` codes of the soft debug exit (module header). */
const DEBUG_CAUSES: readonly DebugCause[] = [
  "swbreak",
  "step",
  "hwbreak",
  "watch",
  "rwatch",
  "awatch",
];

const SYSTEM_EVENT_NAMES = new Map<number, string>(
  Object.entries(KVM_SYSTEM_EVENT).map(([name, value]) => [value, name]),
);

/** `SBI_ERR_NOT_SUPPORTED`, the value KVM presets `riscv_sbi.ret[0]` to. */
const SBI_ERR_NOT_SUPPORTED = SBI_ERR.NOT_SUPPORTED;

/** Typed access to one run page. */
export class RunArea {
  readonly buffer: SharedArrayBuffer;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** `mmio.data` views of 0..8 bytes, `riscv_sbi.ret` and `riscv_csr.ret_value` (live). */
  private readonly mmioData: readonly Uint8Array[];
  private readonly sbiRetView: BigInt64Array;
  private readonly csrRetView: BigUint64Array;

  constructor(buffer?: SharedArrayBuffer) {
    this.buffer = buffer ?? new SharedArrayBuffer(RUN_PAGE_BYTES);
    if (this.buffer.byteLength < RUN_PAGE_BYTES) {
      throw new RangeError(`A run page needs ${RUN_PAGE_BYTES} bytes`);
    }
    this.bytes = new Uint8Array(this.buffer);
    this.view = new DataView(this.buffer);
    // The exits' payload views, made once: a typed array over a SharedArrayBuffer costs more
    // than the rest of decodeExit (a Linux boot decodes ~5 K SBI console exits).
    this.mmioData = Array.from({ length: 9 }, (_, n) => new Uint8Array(this.buffer, MMIO.data, n));
    this.sbiRetView = new BigInt64Array(this.buffer, SBI.ret, 2);
    this.csrRetView = new BigUint64Array(this.buffer, CSR_EXIT.ret_value, 1);
  }

  /** `immediate_exit`: non-zero makes `run()` return `intr` without entering the guest. */
  get immediateExit(): number {
    return this.bytes[H.immediate_exit.offset] ?? 0;
  }

  set immediateExit(value: number) {
    this.bytes[H.immediate_exit.offset] = value;
  }

  /** `exit_reason` of the last exit (KVM_EXIT_*). */
  get exitReason(): number {
    return this.view.getUint32(H.exit_reason.offset, true);
  }

  /** `kvm_valid_regs`: groups to copy out into the sync area at every return. */
  get validRegs(): bigint {
    return this.view.getBigUint64(H.kvm_valid_regs.offset, true);
  }

  set validRegs(mask: bigint) {
    this.view.setBigUint64(H.kvm_valid_regs.offset, mask, true);
  }

  /** `kvm_dirty_regs`: groups the VMM changed, applied (and cleared) before the next entry. */
  get dirtyRegs(): bigint {
    return this.view.getBigUint64(H.kvm_dirty_regs.offset, true);
  }

  set dirtyRegs(mask: bigint) {
    this.view.setBigUint64(H.kvm_dirty_regs.offset, mask, true);
  }

  /**
   * Kernel side: whether `kvm_valid_regs` or `kvm_dirty_regs` holds a bit outside
   * `KVM_SYNC_RISCV.VALID_FIELDS` (KVM_RUN then fails with EINVAL). Read as 32-bit words: this
   * runs on every entry, and a `bigint` read allocates.
   */
  syncMaskInvalid(): boolean {
    const v = this.view;
    const low =
      v.getUint32(H.kvm_valid_regs.offset, true) | v.getUint32(H.kvm_dirty_regs.offset, true);
    const high =
      v.getUint32(H.kvm_valid_regs.offset + 4, true) |
      v.getUint32(H.kvm_dirty_regs.offset + 4, true);
    return high !== 0 || (low & ~KVM_SYNC_RISCV.VALID_FIELDS) !== 0;
  }

  /** Kernel side: the `KVM_SYNC_RISCV` groups `kvm_valid_regs` names (a number, see above). */
  validGroups(): number {
    return this.view.getUint32(H.kvm_valid_regs.offset, true) & KVM_SYNC_RISCV.VALID_FIELDS;
  }

  /** Kernel side: the `KVM_SYNC_RISCV` groups `kvm_dirty_regs` names. */
  dirtyGroups(): number {
    return this.view.getUint32(H.kvm_dirty_regs.offset, true) & KVM_SYNC_RISCV.VALID_FIELDS;
  }

  /** Sync CORE slot `index` (0 pc, 1..31 x1..x31, 32 mode), as struct kvm_riscv_core. */
  syncCore(index: number): bigint {
    return this.view.getBigUint64(SYNC_CORE_OFFSET + 8 * index, true);
  }

  /** Writes sync CORE slot `index`; set the CORE dirty bit for it to take effect. */
  setSyncCore(index: number, value: bigint): void {
    this.view.setBigUint64(SYNC_CORE_OFFSET + 8 * index, BigInt.asUintN(64, value), true);
  }

  /** Sync CSR slot `index` (struct kvm_riscv_csr order: 0 sstatus … 10 senvcfg). */
  syncCsr(index: number): bigint {
    return this.view.getBigUint64(SYNC_CSR_OFFSET + 8 * index, true);
  }

  /** Writes sync CSR slot `index`; set the CSR dirty bit for it to take effect. */
  setSyncCsr(index: number, value: bigint): void {
    this.view.setBigUint64(SYNC_CSR_OFFSET + 8 * index, BigInt.asUintN(64, value), true);
  }

  /** Kernel side: starts a new exit, clearing the union. */
  private beginExit(reason: number): void {
    this.bytes.fill(0, H.exit.offset, H.exit.offset + UNION_BYTES);
    this.view.setUint32(H.exit_reason.offset, reason, true);
  }

  /** Kernel side: KVM_EXIT_MMIO; `value` is the store data (ignored for loads). */
  writeMmio(gpa: bigint, len: number, isWrite: boolean, value: bigint | undefined): void {
    this.beginExit(KVM_EXIT.MMIO);
    this.view.setBigUint64(MMIO.phys_addr, BigInt.asUintN(64, gpa), true);
    if (isWrite && value !== undefined) {
      for (let i = 0; i < len; i++) {
        this.bytes[MMIO.data + i] = Number((value >> BigInt(8 * i)) & 0xffn);
      }
    }
    this.view.setUint32(MMIO.len, len, true);
    this.bytes[MMIO.is_write] = isWrite ? 1 : 0;
  }

  /** Kernel side: `mmio.is_write` of the pending exit. */
  mmioIsWrite(): boolean {
    return this.bytes[MMIO.is_write] !== 0;
  }

  /** Kernel side: the little-endian value the VMM left in `mmio.data` for a load. */
  mmioLoadValue(): bigint {
    const len = Math.min(8, this.view.getUint32(MMIO.len, true));
    let value = 0n;
    for (let i = len - 1; i >= 0; i--)
      value = (value << 8n) | BigInt(this.bytes[MMIO.data + i] ?? 0);
    return value;
  }

  /** Kernel side: KVM_EXIT_RISCV_SBI with `ret` preset to [SBI_ERR_NOT_SUPPORTED, 0]. */
  writeSbi(extensionId: bigint, functionId: bigint, args: readonly bigint[]): void {
    this.beginExit(KVM_EXIT.RISCV_SBI);
    this.view.setBigUint64(SBI.extension_id, extensionId, true);
    this.view.setBigUint64(SBI.function_id, functionId, true);
    for (let i = 0; i < 6; i++) this.view.setBigUint64(SBI.args + 8 * i, args[i] ?? 0n, true);
    this.view.setBigInt64(SBI.ret, SBI_ERR_NOT_SUPPORTED, true);
    this.view.setBigInt64(SBI.ret + 8, 0n, true);
  }

  /** Kernel side: `riscv_sbi.ret[i]` as the VMM left it (u64). */
  sbiRet(i: 0 | 1): bigint {
    return this.view.getBigUint64(SBI.ret + 8 * i, true);
  }

  /** Kernel side: KVM_EXIT_SYSTEM_EVENT (`kvm_riscv_vcpu_sbi_system_reset`: ndata 1). */
  writeSystemEvent(type: number, data: readonly bigint[]): void {
    this.beginExit(KVM_EXIT.SYSTEM_EVENT);
    this.view.setUint32(SYS.type, type, true);
    this.view.setUint32(SYS.ndata, data.length, true);
    data.forEach((d, i) => {
      this.view.setBigUint64(SYS.data + 8 * i, BigInt.asUintN(64, d), true);
    });
  }

  /** Kernel side: KVM_EXIT_INTERNAL_ERROR, with the reason text beside the struct. */
  writeInternalError(suberror: number, data: readonly bigint[], reason: string): void {
    this.beginExit(KVM_EXIT.INTERNAL_ERROR);
    this.view.setUint32(INTERNAL.suberror, suberror, true);
    this.view.setUint32(INTERNAL.ndata, data.length, true);
    data.forEach((d, i) => {
      this.view.setBigUint64(INTERNAL.data + 8 * i, BigInt.asUintN(64, d), true);
    });
    const text = new TextEncoder().encode(reason).subarray(0, FAULT_TEXT_MAX);
    this.view.setUint16(FAULT_TEXT_OFFSET, text.length, true);
    this.bytes.set(text, FAULT_TEXT_OFFSET + 2);
  }

  /** The reason text of the last internal-error exit (regvisor extension). */
  faultReason(): string {
    const len = Math.min(FAULT_TEXT_MAX, this.view.getUint16(FAULT_TEXT_OFFSET, true));
    return new TextDecoder().decode(
      this.bytes.slice(FAULT_TEXT_OFFSET + 2, FAULT_TEXT_OFFSET + 2 + len),
    );
  }

  /** Guest instructions retired by the hart, as of the last return from `run()`. */
  get instret(): bigint {
    return this.view.getBigUint64(INSTRET_OFFSET, true);
  }

  /** Kernel side: records the hart's retired-instruction count. */
  setInstret(value: bigint): void {
    this.view.setBigUint64(INSTRET_OFFSET, BigInt.asUintN(64, value), true);
  }

  /** Kernel side: KVM_EXIT_DEBUG with the regvisor payload (module header). */
  writeDebug(pc: bigint, cause: DebugCause, watchAddress = 0n): void {
    this.beginExit(KVM_EXIT.DEBUG);
    this.view.setBigUint64(H.exit.offset, BigInt.asUintN(64, pc), true);
    this.view.setUint32(H.exit.offset + 8, DEBUG_CAUSES.indexOf(cause) + 1, true);
    this.view.setBigUint64(H.exit.offset + 16, BigInt.asUintN(64, watchAddress), true);
  }

  /** Kernel side: KVM_EXIT_INTR (run slice or instruction budget used up). */
  writeIntr(): void {
    this.beginExit(KVM_EXIT.INTR);
  }

  /** VMM side: the last exit as a value; payload arrays are live views into this page. */
  decodeExit(): VcpuExit {
    const reason = this.exitReason;
    switch (reason) {
      case KVM_EXIT.MMIO:
        return {
          kind: "mmio",
          address: this.view.getBigUint64(MMIO.phys_addr, true),
          isWrite: this.bytes[MMIO.is_write] !== 0,
          data: this.mmioData[Math.min(8, this.u32(MMIO.len))] ?? new Uint8Array(0),
        };
      case KVM_EXIT.RISCV_SBI:
        return {
          kind: "riscv_sbi",
          extensionId: this.view.getBigUint64(SBI.extension_id, true),
          functionId: this.view.getBigUint64(SBI.function_id, true),
          args: this.u64s(SBI.args, 6),
          ret: this.sbiRetView,
        };
      case KVM_EXIT.SYSTEM_EVENT: {
        const type = this.u32(SYS.type);
        return {
          kind: "system_event",
          type,
          typeName: SYSTEM_EVENT_NAMES.get(type) ?? `TYPE_${type}`,
          data: this.u64s(SYS.data, Math.min(16, this.u32(SYS.ndata))),
        };
      }
      case KVM_EXIT.INTERNAL_ERROR:
        return {
          kind: "internal_error",
          suberror: this.u32(INTERNAL.suberror),
          data: this.u64s(INTERNAL.data, Math.min(16, this.u32(INTERNAL.ndata))),
        };
      case KVM_EXIT.RISCV_CSR:
        return {
          kind: "riscv_csr",
          csrNum: Number(this.view.getBigUint64(CSR_EXIT.csr_num, true)),
          newValue: this.view.getBigUint64(CSR_EXIT.new_value, true),
          writeMask: this.view.getBigUint64(CSR_EXIT.write_mask, true),
          ret: this.csrRetView,
        };
      case KVM_EXIT.INTR:
        return { kind: "intr" };
      case KVM_EXIT.DEBUG: {
        const cause = DEBUG_CAUSES[this.u32(H.exit.offset + 8) - 1];
        const pc = this.view.getBigUint64(H.exit.offset, true);
        if (cause === undefined) return { kind: "debug", pc };
        if (cause !== "watch" && cause !== "rwatch" && cause !== "awatch") {
          return { kind: "debug", pc, cause };
        }
        const watchAddress = this.view.getBigUint64(H.exit.offset + 16, true);
        return { kind: "debug", pc, cause, watchAddress };
      }
      default:
        return {
          kind: "unsupported",
          exitReason: reason,
          reason: `exit reason ${reason} is not produced by the soft backend`,
        };
    }
  }

  private u32(offset: number): number {
    return this.view.getUint32(offset, true);
  }

  private u64s(offset: number, count: number): bigint[] {
    const out: bigint[] = [];
    for (let i = 0; i < count; i++) out.push(this.view.getBigUint64(offset + 8 * i, true));
    return out;
  }
}
