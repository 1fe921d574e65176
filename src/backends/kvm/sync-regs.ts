/**
 * Typed views over the x86 sync-register area of a vCPU's kvm_run page (ABI doc §4.2, §5.6,
 * §12.1). On x86, `kvm_valid_regs` is an input — the groups KVM copies *out* into `s.regs` on
 * every return from KVM_RUN — and `kvm_dirty_regs` names the groups KVM loads *from* `s.regs`
 * before the next entry (clearing each bit once applied). Bits outside KVM_CAP_SYNC_REGS make
 * KVM_RUN fail with EINVAL.
 *
 * The views are zero-copy: `gprs[0]` is `s.regs.regs.rax` in the shared page. Edits only take
 * effect when the matching dirty bit is set (`markDirty()` or the `write*()` helpers).
 */
import { KVM_SYNC_X86 } from "../../abi/kvm/ioctls.js";
import { SYNC_AREA, KVM_SYNC_REGS_X86, KVM_REGS } from "../../abi/kvm/layouts.js";
import {
  decodeKvmRegs,
  decodeKvmSregs,
  decodeKvmVcpuEvents,
  encodeKvmRegs,
  encodeKvmSregs,
  encodeKvmVcpuEvents,
  type KvmRegs,
  type KvmSregs,
  type KvmVcpuEvents,
} from "../../abi/kvm/x86-structs.js";
import type { NativeMemory } from "./ffi.js";

const AREA = SYNC_AREA.x86;
const F = KVM_SYNC_REGS_X86.fields;

/** The sync-register area of one vCPU. */
export class SyncRegs {
  /** KVM_CHECK_EXTENSION(KVM_CAP_SYNC_REGS): the groups this VM supports (0x7, or 0). */
  readonly supported: number;
  /** `s.regs.regs` as eighteen u64 in kvm_regs order (rax … r15, rip, rflags), zero-copy. */
  readonly gprs: BigUint64Array;
  /** Raw bytes of each group inside the shared page, zero-copy. */
  readonly regsBytes: Uint8Array;
  readonly sregsBytes: Uint8Array;
  readonly eventsBytes: Uint8Array;
  // kvm_valid_regs and kvm_dirty_regs as u32 halves (little-endian: low word first); the masks
  // only use the low bits, and u32 stores avoid a BigInt per access on the hot path.
  readonly #masks: Uint32Array;
  readonly #live: () => void;

  /** @internal Built by `KvmVcpu`; `live` throws when the vCPU is closed. */
  constructor(run: NativeMemory, supported: number, live: () => void) {
    this.supported = supported;
    this.#masks = new Uint32Array(run.bytes.buffer, AREA.validRegs, 4);
    this.#live = live;
    const at = (offset: number, size: number): Uint8Array =>
      run.bytes.subarray(AREA.s + offset, AREA.s + offset + size);
    this.regsBytes = at(F.regs.offset, F.regs.size);
    this.sregsBytes = at(F.sregs.offset, F.sregs.size);
    this.eventsBytes = at(F.events.offset, F.events.size);
    // FFI-free: a typed view into the same mapping; AREA.s (304) is 8-byte aligned.
    this.gprs = new BigUint64Array(run.bytes.buffer, AREA.s + F.regs.offset, KVM_REGS.size / 8);
  }

  /** `kvm_valid_regs`: the groups KVM fills on every exit (x86: an input). */
  get valid(): number {
    this.#live();
    return this.#masks[0] ?? 0;
  }

  set valid(bits: number) {
    this.#live();
    this.#masks[0] = bits;
    this.#masks[1] = 0;
  }

  /** `kvm_dirty_regs`: the groups KVM loads before the next entry (cleared as applied). */
  get dirty(): number {
    this.#live();
    return this.#masks[2] ?? 0;
  }

  set dirty(bits: number) {
    this.#live();
    this.#masks[2] = bits;
    this.#masks[3] = 0;
  }

  /** Adds groups to `kvm_dirty_regs`. */
  markDirty(bits: number): void {
    this.dirty = this.dirty | bits;
  }

  /** Asks KVM to fill every supported group at each exit (`valid = supported`). */
  enableAll(): void {
    this.valid = this.supported & KVM_SYNC_X86.VALID_FIELDS;
  }

  /** Decodes `s.regs.regs` (meaningful when REGS is in `valid` and the vCPU has run). */
  readRegs(): KvmRegs {
    this.#live();
    return decodeKvmRegs(this.regsBytes);
  }

  /** Encodes `regs` into `s.regs.regs` and marks REGS dirty. */
  writeRegs(regs: KvmRegs): void {
    this.#live();
    encodeKvmRegs(regs, this.regsBytes);
    this.markDirty(KVM_SYNC_X86.REGS);
  }

  /** Decodes `s.regs.sregs`. */
  readSregs(): KvmSregs {
    this.#live();
    return decodeKvmSregs(this.sregsBytes);
  }

  /** Encodes `sregs` into `s.regs.sregs` and marks SREGS dirty. */
  writeSregs(sregs: KvmSregs): void {
    this.#live();
    encodeKvmSregs(sregs, this.sregsBytes);
    this.markDirty(KVM_SYNC_X86.SREGS);
  }

  /** Decodes `s.regs.events`. */
  readEvents(): KvmVcpuEvents {
    this.#live();
    return decodeKvmVcpuEvents(this.eventsBytes);
  }

  /** Encodes `events` into `s.regs.events` and marks EVENTS dirty. */
  writeEvents(events: KvmVcpuEvents): void {
    this.#live();
    encodeKvmVcpuEvents(events, this.eventsBytes);
    this.markDirty(KVM_SYNC_X86.EVENTS);
  }
}
