/**
 * Typed little-endian codecs for the x86 structs carried by KVM_GET/SET_REGS, _SREGS,
 * _VCPU_EVENTS and by the kvm_run sync area (arch/x86/include/uapi/asm/kvm.h;
 * docs/kvm-register-abi.md §5). Field names are the kernel's. Padding and reserved bytes are
 * decoded too, so `encode(decode(bytes))` reproduces `bytes` exactly.
 */
import type { StructValue } from "./struct-codec.js";
import { decodeLayout, encodeLayout } from "./struct-codec.js";
import type { Layout } from "./layout.js";
import { KVM_REGS, KVM_SREGS, KVM_SYNC_REGS_X86, KVM_VCPU_EVENTS } from "./layouts-x86.js";
import { SYNC_AREA } from "./layouts.js";

/** `struct kvm_regs`. */
export interface KvmRegs {
  rax: bigint;
  rbx: bigint;
  rcx: bigint;
  rdx: bigint;
  rsi: bigint;
  rdi: bigint;
  rsp: bigint;
  rbp: bigint;
  r8: bigint;
  r9: bigint;
  r10: bigint;
  r11: bigint;
  r12: bigint;
  r13: bigint;
  r14: bigint;
  r15: bigint;
  rip: bigint;
  rflags: bigint;
}

/** `struct kvm_segment`; the one-byte flags are 0/1 except `type` (4 bits) and `dpl` (2). */
export interface KvmSegment {
  base: bigint;
  limit: number;
  selector: number;
  type: number;
  present: number;
  dpl: number;
  db: number;
  s: number;
  l: number;
  g: number;
  avl: number;
  unusable: number;
  padding: number;
}

/** `struct kvm_dtable`. */
export interface KvmDtable {
  base: bigint;
  limit: number;
  /** Three u16 of padding. */
  padding: number[];
}

/** `struct kvm_sregs`. */
export interface KvmSregs {
  cs: KvmSegment;
  ds: KvmSegment;
  es: KvmSegment;
  fs: KvmSegment;
  gs: KvmSegment;
  ss: KvmSegment;
  tr: KvmSegment;
  ldt: KvmSegment;
  gdt: KvmDtable;
  idt: KvmDtable;
  cr0: bigint;
  cr2: bigint;
  cr3: bigint;
  cr4: bigint;
  cr8: bigint;
  efer: bigint;
  apic_base: bigint;
  /** Four u64, one bit per vector 0..255. */
  interrupt_bitmap: bigint[];
}

/** `struct kvm_vcpu_events`. */
export interface KvmVcpuEvents {
  exception: {
    injected: number;
    nr: number;
    has_error_code: number;
    pending: number;
    error_code: number;
  };
  interrupt: { injected: number; nr: number; soft: number; shadow: number };
  nmi: { injected: number; pending: number; masked: number; pad: number };
  sipi_vector: number;
  /** KVM_VCPUEVENT_VALID_* bits. */
  flags: number;
  smi: { smm: number; pending: number; smm_inside_nmi: number; latched_init: number };
  triple_fault: { pending: number };
  /** 26 reserved bytes. */
  reserved: Uint8Array;
  exception_has_payload: number;
  exception_payload: bigint;
}

/** x86 `struct kvm_sync_regs`, the three groups inside `kvm_run.s`. */
export interface KvmSyncRegs {
  regs: KvmRegs;
  sregs: KvmSregs;
  events: KvmVcpuEvents;
}

// The typed interfaces above mirror the layouts field for field; decodeLayout() produces
// exactly those fields with those JS types, which is what the `as unknown as` casts assert.

function encodeFrom(layout: Layout, value: object, out?: Uint8Array, offset = 0): Uint8Array {
  return encodeLayout(layout, value as StructValue, out ?? new Uint8Array(layout.size), offset);
}

/**
 * Decodes a 144-byte `kvm_regs` at `offset`.
 * @throws {RangeError} if fewer than 144 bytes are available.
 */
export function decodeKvmRegs(bytes: Uint8Array, offset = 0): KvmRegs {
  return decodeLayout(KVM_REGS, bytes, offset) as unknown as KvmRegs;
}

/**
 * Encodes `kvm_regs` into `out` at `offset` (default: a new 144-byte buffer).
 * @throws {TypeError} on a missing field or a non-bigint value.
 * @throws {RangeError} if a value exceeds u64 or `out` is too short.
 */
export function encodeKvmRegs(regs: KvmRegs, out?: Uint8Array, offset = 0): Uint8Array {
  return encodeFrom(KVM_REGS, regs, out, offset);
}

/**
 * Decodes a 312-byte `kvm_sregs` at `offset`.
 * @throws {RangeError} if fewer than 312 bytes are available.
 */
export function decodeKvmSregs(bytes: Uint8Array, offset = 0): KvmSregs {
  return decodeLayout(KVM_SREGS, bytes, offset) as unknown as KvmSregs;
}

/**
 * Encodes `kvm_sregs` into `out` at `offset` (default: a new 312-byte buffer).
 * @throws {TypeError} on a missing field or a value of the wrong JS type.
 * @throws {RangeError} if a value does not fit its field, an array has the wrong length, or
 *   `out` is too short.
 */
export function encodeKvmSregs(sregs: KvmSregs, out?: Uint8Array, offset = 0): Uint8Array {
  return encodeFrom(KVM_SREGS, sregs, out, offset);
}

/**
 * Decodes a 64-byte `kvm_vcpu_events` at `offset`.
 * @throws {RangeError} if fewer than 64 bytes are available.
 */
export function decodeKvmVcpuEvents(bytes: Uint8Array, offset = 0): KvmVcpuEvents {
  return decodeLayout(KVM_VCPU_EVENTS, bytes, offset) as unknown as KvmVcpuEvents;
}

/**
 * Encodes `kvm_vcpu_events` into `out` at `offset` (default: a new 64-byte buffer).
 * @throws {TypeError} on a missing field or a value of the wrong JS type.
 * @throws {RangeError} if a value does not fit its field or `out` is too short.
 */
export function encodeKvmVcpuEvents(
  events: KvmVcpuEvents,
  out?: Uint8Array,
  offset = 0,
): Uint8Array {
  return encodeFrom(KVM_VCPU_EVENTS, events, out, offset);
}

/**
 * Decodes the x86 sync area from a kvm_run mapping (`run` starts at kvm_run offset 0).
 * @throws {RangeError} if `run` is shorter than the sync area's end (824 bytes).
 */
export function decodeKvmSyncRegs(run: Uint8Array): KvmSyncRegs {
  return decodeLayout(KVM_SYNC_REGS_X86, run, SYNC_AREA.x86.s) as unknown as KvmSyncRegs;
}

/** All-zero `kvm_regs` (a starting point for building a value). */
export function zeroKvmRegs(): KvmRegs {
  return decodeKvmRegs(new Uint8Array(KVM_REGS.size));
}

/** All-zero `kvm_sregs`. */
export function zeroKvmSregs(): KvmSregs {
  return decodeKvmSregs(new Uint8Array(KVM_SREGS.size));
}

/** All-zero `kvm_vcpu_events`. */
export function zeroKvmVcpuEvents(): KvmVcpuEvents {
  return decodeKvmVcpuEvents(new Uint8Array(KVM_VCPU_EVENTS.size));
}
