/**
 * `SoftVm`: a soft-backend VM — guest-physical memory as memslots over the VMM's own buffers
 * (KVM_SET_USER_MEMORY_REGION semantics) and its vCPUs (KVM_CREATE_VCPU), inline or threaded.
 *
 * Memslot rules, from virt/kvm/kvm_main.c `__kvm_set_memory_region` (riscv: one address space,
 * KVM_USER_MEM_SLOTS = 512, 4 KiB pages): slot id ≥ 512 or a non-zero address-space id, a gpa,
 * size or buffer offset that is not page aligned → EINVAL; deleting (empty memory) a slot that
 * does not exist → EINVAL; a new or moved slot overlapping another → EEXIST; an existing slot may
 * move or change only its flags — a different buffer, a different size, or toggling READONLY →
 * EINVAL; toggling LOG_DIRTY_PAGES on an existing slot is allowed (a fresh, clear log). The VMM
 * keeps ownership of the bytes and sees guest writes immediately (threaded mode
 * needs SharedArrayBuffer-backed memory; see `allocGuestMemory`).
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import type { HartApi, Memslot } from "./riscv/contract.js";
import { VcpuKernel, type RunBudget } from "./kernel.js";
import { RunArea } from "./runarea.js";
import { INVALIDATE_RING, VmShared } from "./shared.js";
import { slotFor } from "./guestmem.js";
import { createThreadedPort } from "./threaded.js";
import { WASM_RAM_MAX, allocWasmRam } from "./riscv/wasm-memory.js";
import { SoftClosedError, SoftVcpu, type KernelPort, type SoftMode } from "./vcpu.js";
import {
  MAX_GUEST_VIEW_BYTES,
  VcpuBusyError,
  type GuestMemory,
  type MemoryRegionSpec,
  type Vm,
} from "../vcpu.js";

/** Builds the hart of vCPU `hartId` (inline mode). */
export type HartFactory = (hartId: number) => HartApi;

/** Options of a soft VM. */
export interface SoftVmOptions {
  /** Where vCPUs run (default "inline"). */
  readonly mode?: SoftMode;
  /** Per-`run()` limits (default: 100 ms, unlimited instructions). */
  readonly budget?: RunBudget;
  /** Inline mode: makes each vCPU's hart. Required for inline VMs built with `new SoftVm`. */
  readonly hartFactory?: HartFactory;
  /**
   * Threaded mode: URL of an ES module exporting `Hart` (`new Hart({ hartId })`); each worker
   * imports it. Defaults to the built-in RV64 hart.
   */
  readonly hartModule?: string;
  /**
   * Threaded mode: microseconds the caller and the worker poll the mailbox before sleeping in
   * `Atomics.wait` (default 0). Polling cuts a crossing from a futex wake-up (~10-20 µs) to ~1-3
   * µs but keeps a core busy per vCPU; worth it for call-heavy VMMs on idle machines only.
   */
  readonly spinUs?: number;
}

/** One KVM_SET_USER_MEMORY_REGION request. */
export interface UserMemoryRegion {
  /** Slot id (`as_id << 16 | id`; riscv has one address space). */
  readonly slot: number;
  readonly guestPhysAddr: bigint;
  /** Backing bytes, a multiple of 4 KiB; an empty array deletes the slot. */
  readonly memory: Uint8Array;
  /** KVM_MEM_READONLY: guest writes become MMIO exits. */
  readonly readonly?: boolean;
  /** KVM_MEM_LOG_DIRTY_PAGES: log guest writes per 4 KiB page for `getDirtyLog`. */
  readonly logDirty?: boolean;
}

const PAGE = 4096;
/** `KVM_USER_MEM_SLOTS` on riscv (arch/riscv/include/asm/kvm_host.h). */
export const USER_MEM_SLOTS = 512;
const SET_MEM = "KVM_SET_USER_MEMORY_REGION";

/**
 * The most guest RAM one soft memslot holds: 4 GiB. The hart reaches a slot through one
 * Uint8Array (and DataView and Atomics views over it), and Node 20 caps a typed array at
 * 2^32 bytes (`MAX_GUEST_VIEW_BYTES`).
 */
export const SOFT_MAX_SLOT_BYTES = MAX_GUEST_VIEW_BYTES;

/**
 * Guest RAM the soft backend can share with vCPU workers: zeroed, SharedArrayBuffer-backed.
 * Up to `WASM_RAM_MAX` (4 GiB minus the 4 MiB of hart areas) it lives in a shared
 * WebAssembly.Memory with the harts' registers, soft TLBs and dispatch caches, where the wasm
 * tier's compiled code reaches it directly (riscv/wasm-memory.ts); above that, up to
 * `SOFT_MAX_SLOT_BYTES`, in a plain SharedArrayBuffer, which every tier still runs on, the
 * wasm tier through its JS slow path for every load and store.
 * @throws {RangeError} above `SOFT_MAX_SLOT_BYTES`, or when the host cannot allocate it.
 */
export function allocGuestMemory(bytes: number): Uint8Array {
  if (bytes > SOFT_MAX_SLOT_BYTES) {
    throw new RangeError(
      `Cannot allocate ${bytes} bytes of soft guest RAM: the soft backend holds a memory slot in one typed array, at most ${SOFT_MAX_SLOT_BYTES} bytes (4 GiB) in Node 20`,
    );
  }
  if (bytes <= WASM_RAM_MAX) return allocWasmRam(bytes);
  return new Uint8Array(new SharedArrayBuffer(bytes));
}

/** A soft-backend VM. */
export class SoftVm implements Vm {
  /** The register namespace of its vCPUs. */
  readonly arch = "riscv" as const;
  readonly mode: SoftMode;
  /** VM-wide shared state (guest time, per-vCPU interrupt lines and power state). */
  readonly shared = new VmShared();
  private readonly options: SoftVmOptions;
  private readonly defaultHartModule: string | undefined;
  private slots: Memslot[] = [];
  private readonly vcpus = new Set<SoftVcpu>();
  private closed = false;

  /** Prefer `createSoftVm()`, which supplies the built-in hart. */
  constructor(options: SoftVmOptions = {}, defaultHartModule?: string) {
    const mode: unknown = options.mode ?? "inline";
    if (mode !== "inline" && mode !== "threaded") {
      throw new TypeError(`Unknown soft VM mode ${String(mode)}`);
    }
    this.mode = mode;
    this.options = options;
    this.defaultHartModule = defaultHartModule;
  }

  /** The current memslots, in slot order. */
  memslots(): readonly Memslot[] {
    return this.slots;
  }

  /**
   * KVM_SET_USER_MEMORY_REGION.
   * @throws {KvmError} EINVAL / EEXIST as the kernel would.
   * @throws {TypeError} in threaded mode when the memory is not SharedArrayBuffer-backed.
   */
  setUserMemoryRegion(region: UserMemoryRegion): void {
    this.check("set a memory region");
    const { slot, guestPhysAddr: gpa, memory } = region;
    const readonly = region.readonly ?? false;
    if (!(memory instanceof Uint8Array)) throw new TypeError("memory must be a Uint8Array");
    if (this.mode === "threaded" && memory.length > 0 && !isShared(memory)) {
      throw new TypeError("A threaded soft VM needs SharedArrayBuffer-backed guest memory");
    }
    const fail = (errno: number, hint: string): KvmError =>
      new KvmError({ action: `Cannot set memory slot ${slot}`, ioctl: SET_MEM, errno, hint });
    if (!Number.isInteger(slot) || slot < 0 || slot >= USER_MEM_SLOTS) {
      throw fail(ERRNO.EINVAL, `slot ids are 0..${USER_MEM_SLOTS - 1}`);
    }
    if (gpa < 0n || gpa % BigInt(PAGE) !== 0n || memory.length % PAGE !== 0) {
      throw fail(ERRNO.EINVAL, "address and size must be multiples of 4096");
    }
    if (memory.byteOffset % PAGE !== 0) {
      throw fail(ERRNO.EINVAL, "the buffer view must start on a 4096-byte boundary");
    }
    if (gpa + BigInt(memory.length) > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RangeError("The soft backend maps guest-physical addresses below 2^53");
    }
    const old = this.slots.find((s) => s.slot === slot);
    if (memory.length === 0) {
      if (old === undefined) throw fail(ERRNO.EINVAL, "no such slot to delete");
      this.apply(this.slots.filter((s) => s !== old));
      return;
    }
    if (old !== undefined) {
      const sameBuffer =
        old.bytes.buffer === memory.buffer && old.bytes.byteOffset === memory.byteOffset;
      if (!sameBuffer || old.bytes.length !== memory.length || old.readonly !== readonly) {
        throw fail(ERRNO.EINVAL, "an existing slot may only move or change its flags");
      }
    }
    const start = Number(gpa);
    const end = start + memory.length;
    const clash = this.slots.find(
      (s) => s !== old && start < s.gpa + s.bytes.length && s.gpa < end,
    );
    if (clash !== undefined) throw fail(ERRNO.EEXIST, `overlaps slot ${clash.slot}`);
    const logDirty = region.logDirty ?? false;
    // An existing slot that keeps logging keeps its log (KVM keeps dirty_bitmap across a move).
    const dirty = !logDirty
      ? undefined
      : (old?.dirty ?? new Uint8Array(new SharedArrayBuffer(memory.length / PAGE)));
    const next: Memslot = {
      slot,
      gpa: start,
      bytes: memory,
      readonly,
      ...(dirty === undefined ? {} : { dirty }),
    };
    this.apply([...this.slots.filter((s) => s !== old), next].sort((a, b) => a.slot - b.slot));
  }

  /** The guest RAM regions, in slot order (the `Vm` view of `memslots()`). */
  get memory(): readonly GuestMemory[] {
    return this.slots.map((s) => ({
      slot: s.slot,
      guestPhysAddr: BigInt(s.gpa),
      size: s.bytes.length,
      bytes: s.bytes,
      view: (offset: number, length: number) => guestView(s.bytes, offset, length),
      readOnly: s.readonly,
      logDirty: s.dirty !== undefined,
    }));
  }

  /**
   * Allocates zeroed guest RAM (SharedArrayBuffer-backed, so threaded vCPUs share it) and maps
   * it with KVM_SET_USER_MEMORY_REGION semantics; the slot defaults to the lowest free one.
   * @throws {RangeError} if the size is not a positive multiple of 4 KiB.
   * @throws {KvmError} EINVAL / EEXIST as the kernel would (bad slot, overlap).
   */
  addMemory(spec: MemoryRegionSpec): GuestMemory {
    this.check("add guest memory");
    if (!Number.isInteger(spec.size) || spec.size <= 0 || spec.size % PAGE !== 0) {
      throw new RangeError(`Guest memory size ${spec.size} is not a positive multiple of 4096`);
    }
    const used = new Set(this.slots.map((s) => s.slot));
    let slot = spec.slot ?? 0;
    if (spec.slot === undefined) while (used.has(slot)) slot++;
    const guestPhysAddr = BigInt(spec.guestPhysAddr);
    const bytes = allocGuestMemory(spec.size);
    this.setUserMemoryRegion({
      slot,
      guestPhysAddr,
      memory: bytes,
      ...(spec.readOnly === undefined ? {} : { readonly: spec.readOnly }),
      ...(spec.logDirty === undefined ? {} : { logDirty: spec.logDirty }),
    });
    return {
      slot,
      guestPhysAddr,
      size: spec.size,
      bytes,
      view: (offset, length) => guestView(bytes, offset, length),
      readOnly: spec.readOnly === true,
      logDirty: spec.logDirty === true,
    };
  }

  /**
   * Turns dirty logging of `slot` on (a fresh, clear log) or off: KVM_SET_USER_MEMORY_REGION on
   * the same slot with only KVM_MEM_LOG_DIRTY_PAGES changed (the kernel's KVM_MR_FLAGS_ONLY).
   * The harts drop their write-TLB entries with the new slot set, so every later first store to
   * a page is logged.
   * @throws {KvmError} EINVAL if the slot does not exist.
   * @throws {VcpuBusyError} while a vCPU runs (a soft memslot change needs them parked).
   */
  setDirtyLogging(slot: number, enabled: boolean): void {
    const old = this.slots.find((s) => s.slot === slot);
    if (old === undefined) {
      throw new KvmError({
        action: `Cannot ${enabled ? "start" : "stop"} dirty logging of memory slot ${slot}`,
        ioctl: SET_MEM,
        errno: ERRNO.EINVAL,
        hint: "no such slot",
      });
    }
    if ((old.dirty !== undefined) === enabled) return;
    this.setUserMemoryRegion({
      slot,
      guestPhysAddr: BigInt(old.gpa),
      memory: old.bytes,
      readonly: old.readonly,
      logDirty: enabled,
    });
  }

  /**
   * KVM_GET_DIRTY_LOG (virt/kvm/kvm_main.c `kvm_get_dirty_log_protect`): the pages of `slot`
   * written since the last call, one bit per 4 KiB page (bit i of byte i/8 = page i), read and
   * cleared. As in the kernel, the log is taken first and the vCPUs' write mappings are dropped
   * after (each running vCPU acknowledges within about one block): a store racing with the call
   * either lands in a page this call returns — the caller copies it after the call — or marks
   * the page for the next call.
   * @throws {KvmError} ENOENT if the slot does not exist or does not log dirty pages.
   */
  getDirtyLog(slot: number): Uint8Array {
    this.check("read a dirty log");
    const dirty = this.slots.find((s) => s.slot === slot)?.dirty;
    if (dirty === undefined) {
      throw new KvmError({
        action: `Cannot read the dirty log of memory slot ${slot}`,
        ioctl: "KVM_GET_DIRTY_LOG",
        errno: ERRNO.ENOENT,
        hint: "add the slot with logDirty: true",
      });
    }
    const bitmap = new Uint8Array(Math.ceil(dirty.length / 64) * 8);
    // Four pages' bytes at a time (the log's buffer is its own, from offset 0): a zero word
    // needs no exchange. Skipping it is the same as exchanging it a moment earlier — a store
    // that marks one of its pages meanwhile is in the next call — and a clean 256 MiB log then
    // takes 16384 plain loads instead of 65536 atomic exchanges (~5 ms here).
    const words = new Int32Array(dirty.buffer, 0, dirty.length >> 2);
    for (let page = 0; page < dirty.length; page++) {
      if ((page & 3) === 0 && page + 4 <= dirty.length && words[page >> 2] === 0) {
        page += 3;
        continue;
      }
      if (Atomics.exchange(dirty, page, 0) !== 0) {
        bitmap[page >> 3] = (bitmap[page >> 3] ?? 0) | (1 << (page & 7));
      }
    }
    const requests = [...this.vcpus].map((v) => ({
      index: v.index,
      req: this.shared.requestWriteTlbFlush(v.index),
    }));
    for (const { index, req } of requests) this.shared.awaitWriteTlbFlush(index, req);
    return bitmap;
  }

  /**
   * The VMM (a device's DMA) wrote `length` bytes of guest RAM at `guestPhysAddr`: logs the
   * pages in a logging slot and makes every vCPU drop translated code of those pages before it
   * runs guest code again (a running vCPU within about one block). Call it from the thread that
   * owns the VM.
   * @throws {RangeError} if the range is empty or not inside one memory slot (nothing changes).
   */
  markDirty(guestPhysAddr: bigint, length: number): void {
    this.check("mark guest memory dirty");
    if (typeof guestPhysAddr !== "bigint")
      throw new TypeError("markDirty: the address must be a bigint");
    if (!Number.isInteger(length) || length <= 0) {
      throw new RangeError(`markDirty: length ${length} is not a positive integer`);
    }
    const slot = slotFor(this.slots, guestPhysAddr, length);
    if (slot === undefined) {
      throw new RangeError(
        `Cannot mark 0x${guestPhysAddr.toString(16)}+${length} dirty: the range is not inside one memory slot`,
      );
    }
    const first = Math.floor((Number(guestPhysAddr) - slot.gpa) / PAGE);
    const last = Math.floor((Number(guestPhysAddr) - slot.gpa + length - 1) / PAGE);
    for (let page = first; page <= last; page++) {
      if (slot.dirty !== undefined) Atomics.store(slot.dirty, page, 1);
    }
    const base = slot.gpa / PAGE;
    const many = last - first >= INVALIDATE_RING;
    for (const vcpu of this.vcpus) {
      if (many) this.shared.queueCodeInvalidation(vcpu.index, -1);
      else
        for (let page = first; page <= last; page++) {
          this.shared.queueCodeInvalidation(vcpu.index, base + page);
        }
      this.shared.wake(vcpu.index);
    }
  }

  /**
   * KVM_CREATE_VCPU: vCPU ids are handed out in order from 0; vCPU 0 starts runnable, the
   * others stopped until SBI HSM hart_start (like KVM).
   */
  createVcpu(): SoftVcpu {
    this.check("create a vCPU");
    const index = this.shared.addVcpu();
    const runArea = new RunArea();
    const port = this.makePort(index, runArea);
    const vcpu: SoftVcpu = new SoftVcpu({
      port,
      index,
      mode: this.mode,
      runArea,
      shared: this.shared,
      onClose: () => this.vcpus.delete(vcpu),
    });
    this.vcpus.add(vcpu);
    return vcpu;
  }

  /**
   * Closes every vCPU, then the VM, and drops the VM's hold on guest RAM (the memory is freed
   * once the caller holds no view of it either); a second close is a no-op.
   */
  close(): void {
    if (this.closed) return;
    for (const vcpu of [...this.vcpus]) vcpu.close();
    this.slots = [];
    this.closed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private makePort(index: number, runArea: RunArea): KernelPort {
    const budget = this.options.budget;
    if (this.mode === "threaded") {
      const hartModule = this.options.hartModule ?? this.defaultHartModule;
      if (hartModule === undefined) throw new TypeError("A threaded soft VM needs a hart module");
      return createThreadedPort({
        hartModule,
        hartId: index,
        shared: this.shared,
        runArea,
        memslots: this.slots,
        ...(budget === undefined ? {} : { budget }),
        ...(this.options.spinUs === undefined ? {} : { spinUs: this.options.spinUs }),
      });
    }
    const factory = this.options.hartFactory;
    if (factory === undefined) throw new TypeError("An inline soft VM needs a hart factory");
    return new VcpuKernel({
      hart: factory(index),
      hartId: index,
      shared: this.shared,
      page: runArea,
      memslots: this.slots,
      ...(budget === undefined ? {} : { budget }),
    });
  }

  private apply(slots: Memslot[]): void {
    // Checked before anything changes: a running vCPU cannot take a new slot set.
    const busy = [...this.vcpus].find((v) => v.isRunning);
    if (busy !== undefined) throw new VcpuBusyError(busy.index, "change the memory slots");
    this.slots = slots;
    for (const vcpu of this.vcpus) vcpu.updateMemslots(slots);
  }

  private check(action: string): void {
    if (this.closed) throw new SoftClosedError("the soft VM", action);
  }
}

/** `GuestMemory.view()` over one Uint8Array: a subarray, bounds-checked. */
function guestView(bytes: Uint8Array, offset: number, length: number): Uint8Array {
  if (
    !Number.isInteger(offset) ||
    !Number.isInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > bytes.length
  ) {
    throw new RangeError(`bytes ${offset}+${length} are outside a ${bytes.length}-byte region`);
  }
  return bytes.subarray(offset, offset + length);
}

function isShared(bytes: Uint8Array): boolean {
  return typeof SharedArrayBuffer !== "undefined" && bytes.buffer instanceof SharedArrayBuffer;
}
