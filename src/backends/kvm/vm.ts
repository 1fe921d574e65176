/**
 * `KvmVm`: a VM fd with its guest RAM (anonymous mmap'd memory registered through
 * KVM_SET_USER_MEMORY_REGION and exposed as `Uint8Array`s) and its vCPUs.
 */
import { IOCTLS, KVM_CAP, KVM_CLOCK, KVM_MEM, type KvmCapName } from "../../abi/kvm/ioctls.js";
import {
  KVM_CLOCK_DATA,
  KVM_DIRTY_LOG,
  KVM_IRQ_LEVEL,
  KVM_IRQCHIP,
  KVM_USERSPACE_MEMORY_REGION,
} from "../../abi/kvm/layouts.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmClosedError, kvmFail } from "./errors.js";
import {
  closeFd,
  ioctlMem,
  ioctlValue,
  mapAnonymous,
  mapShared,
  type NativeMemory,
} from "./ffi.js";
import { Scratch } from "./scratch.js";
import type { KvmSystem } from "./system.js";
import { KvmVcpu } from "./vcpu.js";
import {
  IRQCHIP_STATE_BYTES,
  type GuestMemory,
  type MemoryRegionSpec,
  type Vm,
  type VmClock,
  type VmClockSetting,
} from "../vcpu.js";

/** Options for `KvmSystem.createVm()`. */
export interface KvmVmOptions {
  /** Create the in-kernel irqchip (KVM_CREATE_IRQCHIP) before any vCPU; needed for LAPIC. */
  readonly irqchip?: boolean;
}

export type { GuestMemory, MemoryRegionSpec } from "../vcpu.js";

interface Region extends GuestMemory {
  readonly mem: NativeMemory;
  /** KVM_MEM_LOG_DIRTY_PAGES as set now (`setDirtyLogging` changes it). */
  logDirty: boolean;
  /** logDirty slots: pages the VMM wrote (`markDirty`), one byte per page; KVM cannot see them. */
  vmmDirty: Uint8Array | undefined;
}

const PAGE = 4096;
const R = KVM_USERSPACE_MEMORY_REGION.fields;
const D = KVM_DIRTY_LOG.fields;
const L = KVM_IRQ_LEVEL.fields;
const C = KVM_CLOCK_DATA.fields;
const U64_MAX = (1n << 64n) - 1n;
/** Where the bitmap goes in the KVM_GET_DIRTY_LOG scratch, after the 16-byte struct. */
const BITMAP_AT = 64;

/** A KVM virtual machine. */
export class KvmVm implements Vm {
  /** The host architecture's register namespace (this backend drives x86-64 hosts). */
  readonly arch = "x86" as const;
  readonly system: KvmSystem;
  #irqchip: boolean;
  #fd: number;
  #onClose: () => void;
  #scratch = new Scratch();
  #regions: Region[] = [];
  #vcpus = new Map<number, KvmVcpu>();
  #clockFlags: number | undefined;

  /** @internal Use `KvmSystem.createVm()`. */
  constructor(system: KvmSystem, fd: number, options: KvmVmOptions, onClose: () => void) {
    this.system = system;
    this.#fd = fd;
    this.#onClose = onClose;
    this.#irqchip = false;
    if (options.irqchip === true) {
      try {
        this.createIrqchip();
      } catch (error) {
        this.close();
        throw error;
      }
    }
  }

  /** True once the in-kernel irqchip exists (KVM_CREATE_IRQCHIP succeeded). */
  get irqchip(): boolean {
    return this.#irqchip;
  }

  /**
   * KVM_CREATE_IRQCHIP: the in-kernel PIC pair, IOAPIC and a LAPIC per vCPU
   * (arch/x86/kvm/x86.c `kvm_arch_vm_ioctl`); must come before the first vCPU.
   * @throws {KvmError} EEXIST when it already exists, EINVAL after a vCPU was created.
   */
  createIrqchip(): void {
    const fd = this.fd("create the in-kernel irqchip");
    const r = ioctlValue(fd, IOCTLS.KVM_CREATE_IRQCHIP.number, 0);
    if (r < 0) {
      const hint =
        r === -ERRNO.EINVAL
          ? "create it before the first vCPU"
          : r === -ERRNO.EEXIST
            ? "this VM already has one"
            : undefined;
      throw kvmFail("KVM_CREATE_IRQCHIP", r, {
        action: "Cannot create the in-kernel irqchip",
        ...(hint === undefined ? {} : { hint }),
      });
    }
    this.#irqchip = true;
  }

  /**
   * KVM_IRQ_LINE: drives GSI `irq` of the in-kernel irqchip to `level` (x86: GSIs 0-15 reach
   * both the PIC and the IOAPIC, 16-23 the IOAPIC; an ISA device such as the UART on IRQ 4
   * raises then lowers its line, arch/x86/kvm/irq_comm.c).
   * @throws {RangeError} for a GSI that is not a u32; {KvmError} ENXIO without an irqchip.
   */
  setIrqLine(irq: number, level: boolean): void {
    const fd = this.fd("set an interrupt line");
    if (!Number.isInteger(irq) || irq < 0 || irq > 0xffff_ffff) {
      throw new RangeError(`Interrupt line ${irq} is not a u32 GSI`);
    }
    if (typeof level !== "boolean") throw new TypeError("setIrqLine: level must be a boolean");
    const arg = this.#scratch.get(KVM_IRQ_LEVEL.size);
    arg.view.setUint32(L.irq.offset, irq, true);
    arg.view.setUint32(L.level.offset, level ? 1 : 0, true);
    const r = ioctlMem(fd, IOCTLS.KVM_IRQ_LINE.number, arg, 0);
    if (r < 0) {
      throw kvmFail("KVM_IRQ_LINE", r, {
        action: `Cannot set interrupt line ${irq} ${level ? "high" : "low"}`,
        ...(r === -ERRNO.ENXIO
          ? { hint: "create the in-kernel irqchip first (createIrqchip)" }
          : {}),
      });
    }
  }

  /**
   * KVM_GET_IRQCHIP: chip `chipId`'s state (0 PIC master, 1 PIC slave: `kvm_pic_state`; 2:
   * `kvm_ioapic_state`), the 512-byte union as the kernel fills it (arch/x86/kvm/x86.c
   * `kvm_vm_ioctl_get_irqchip`).
   * @throws {RangeError} for another chip id (before the ioctl); {KvmError} ENXIO without an
   *   irqchip.
   */
  getIrqchip(chipId: number): Uint8Array {
    const fd = this.fd("read the in-kernel irqchip");
    checkChipId(chipId);
    const arg = this.#scratch.get(KVM_IRQCHIP.size);
    arg.bytes.fill(0, 0, KVM_IRQCHIP.size);
    arg.view.setUint32(KVM_IRQCHIP.fields.chip_id.offset, chipId, true);
    // FFI: the scratch mapping outlives the call; KVM_IRQCHIP.size is the ioctl's 520 bytes.
    const r = ioctlMem(fd, IOCTLS.KVM_GET_IRQCHIP.number, arg, 0);
    if (r < 0) throw irqchipFail("KVM_GET_IRQCHIP", r, `Cannot read irqchip ${chipId}`);
    const at = KVM_IRQCHIP.fields.chip.offset;
    return arg.bytes.slice(at, at + IRQCHIP_STATE_BYTES);
  }

  /**
   * KVM_SET_IRQCHIP: replaces chip `chipId`'s state with `state` (as `getIrqchip` gave).
   * @throws {RangeError} for another chip id or a state that is not 512 bytes (before the
   *   ioctl); {KvmError} ENXIO without an irqchip.
   */
  setIrqchip(chipId: number, state: Uint8Array): void {
    const fd = this.fd("write the in-kernel irqchip");
    checkChipId(chipId);
    if (!(state instanceof Uint8Array) || state.length !== IRQCHIP_STATE_BYTES) {
      throw new RangeError(`An irqchip state is ${IRQCHIP_STATE_BYTES} bytes`);
    }
    const arg = this.#scratch.get(KVM_IRQCHIP.size);
    arg.bytes.fill(0, 0, KVM_IRQCHIP.size);
    arg.view.setUint32(KVM_IRQCHIP.fields.chip_id.offset, chipId, true);
    arg.bytes.set(state, KVM_IRQCHIP.fields.chip.offset);
    // FFI: as getIrqchip; the kernel only reads the struct.
    const r = ioctlMem(fd, IOCTLS.KVM_SET_IRQCHIP.number, arg, 0);
    if (r < 0) throw irqchipFail("KVM_SET_IRQCHIP", r, `Cannot write irqchip ${chipId}`);
  }

  /**
   * KVM_CHECK_EXTENSION(KVM_CAP_ADJUST_CLOCK): the `KVM_CLOCK_*` flags KVM_GET/SET_CLOCK know
   * (arch/x86/kvm/x86.c `kvm_vm_ioctl_check_extension`: KVM_CLOCK_VALID_FLAGS, without
   * HOST_TSC when the host clocksource is not the TSC); asked once per VM.
   * @throws {KvmError} if the ioctl fails.
   */
  clockFlags(): number {
    this.#clockFlags ??= this.checkExtension("KVM_CAP_ADJUST_CLOCK");
    return this.#clockFlags;
  }

  /**
   * KVM_GET_CLOCK: the kvmclock in ns with, per its flags, the host's CLOCK_REALTIME and TSC
   * read at the same instant (arch/x86/kvm/x86.c `kvm_vm_ioctl_get_clock`).
   * @throws {KvmError} if the kernel refuses.
   */
  getClock(): VmClock {
    const fd = this.fd("read the kvmclock");
    const arg = this.#scratch.get(KVM_CLOCK_DATA.size);
    arg.bytes.fill(0, 0, KVM_CLOCK_DATA.size);
    // FFI: the scratch mapping outlives the call; KVM_CLOCK_DATA.size is the ioctl's 48 bytes.
    const r = ioctlMem(fd, IOCTLS.KVM_GET_CLOCK.number, arg, 0);
    if (r < 0) throw kvmFail("KVM_GET_CLOCK", r, { action: "Cannot read the kvmclock" });
    return {
      clock: arg.view.getBigUint64(C.clock.offset, true),
      flags: arg.view.getUint32(C.flags.offset, true),
      realtime: arg.view.getBigUint64(C.realtime.offset, true),
      hostTsc: arg.view.getBigUint64(C.host_tsc.offset, true),
    };
  }

  /**
   * KVM_SET_CLOCK: sets the kvmclock to `clock` ns; with `realtime`, KVM_CLOCK_REALTIME: the
   * kernel first adds the CLOCK_REALTIME ns elapsed since `realtime`, when positive
   * (arch/x86/kvm/x86.c `kvm_vm_ioctl_set_clock`). Every vCPU's pvclock page is rewritten
   * before its next entry (KVM_REQ_CLOCK_UPDATE).
   * @throws {TypeError} for a setting that is not bigints; {RangeError} for a value outside
   *   u64, or a `realtime` this kernel cannot take (both before the ioctl); {KvmError} if the
   *   kernel refuses.
   */
  setClock(setting: VmClockSetting): void {
    const fd = this.fd("set the kvmclock");
    const { clock, realtime } = setting;
    if (typeof clock !== "bigint" || (realtime !== undefined && typeof realtime !== "bigint")) {
      throw new TypeError("setClock: clock and realtime must be bigints");
    }
    for (const [name, v] of [
      ["clock", clock],
      ["realtime", realtime ?? 0n],
    ] as const) {
      if (v < 0n || v > U64_MAX)
        throw new RangeError(`Cannot set the kvmclock: ${name} ${v} is not a u64`);
    }
    if (realtime !== undefined && (this.clockFlags() & KVM_CLOCK.REALTIME) === 0) {
      throw new RangeError(
        `Cannot set the kvmclock from a realtime: this kernel's KVM_CAP_ADJUST_CLOCK is 0x${this.clockFlags().toString(16)}, without KVM_CLOCK_REALTIME (0x4); set the clock alone`,
      );
    }
    const arg = this.#scratch.get(KVM_CLOCK_DATA.size);
    arg.bytes.fill(0, 0, KVM_CLOCK_DATA.size);
    arg.view.setBigUint64(C.clock.offset, clock, true);
    if (realtime !== undefined) {
      arg.view.setUint32(C.flags.offset, KVM_CLOCK.REALTIME, true);
      arg.view.setBigUint64(C.realtime.offset, realtime, true);
    }
    // FFI: as getClock; the kernel only reads the struct.
    const r = ioctlMem(fd, IOCTLS.KVM_SET_CLOCK.number, arg, 0);
    if (r < 0) throw kvmFail("KVM_SET_CLOCK", r, { action: "Cannot set the kvmclock" });
  }

  /** True once `close()` ran. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** @internal The fd, checked open. */
  fd(action: string): number {
    if (this.#fd < 0) throw new KvmClosedError("the VM", action);
    return this.#fd;
  }

  /** Guest RAM regions, in the order they were added. */
  get memory(): readonly GuestMemory[] {
    return this.#regions;
  }

  /**
   * KVM_CHECK_EXTENSION on the VM fd (answers for this VM, e.g. KVM_CAP_SYNC_REGS).
   * @throws {KvmError} if the ioctl fails.
   */
  checkExtension(cap: KvmCapName | number): number {
    const number = typeof cap === "number" ? cap : KVM_CAP[cap];
    const r = ioctlValue(this.fd("check an extension"), IOCTLS.KVM_CHECK_EXTENSION.number, number);
    if (r < 0) throw kvmFail("KVM_CHECK_EXTENSION", r);
    return r;
  }

  /**
   * Maps anonymous memory and registers it as guest RAM.
   * @throws {RangeError} if the address or size is not page-aligned, or the slot is taken.
   * @throws {KvmError} if mmap or KVM_SET_USER_MEMORY_REGION fails.
   */
  addMemory(spec: MemoryRegionSpec): GuestMemory {
    const fd = this.fd("add guest memory");
    const gpa = BigInt(spec.guestPhysAddr);
    if (gpa < 0n || gpa % BigInt(PAGE) !== 0n)
      throw new RangeError(`guest address 0x${gpa.toString(16)} is not page-aligned`);
    if (!Number.isInteger(spec.size) || spec.size <= 0 || spec.size % PAGE !== 0) {
      throw new RangeError(`memory size ${spec.size} is not a positive multiple of ${PAGE}`);
    }
    const slot = spec.slot ?? this.#nextSlot();
    if (this.#regions.some((r) => r.slot === slot))
      throw new RangeError(`memory slot ${slot} is in use`);
    // Guest RAM is mapped MAP_NORESERVE: only the pages the guest touches cost host memory.
    const mem = mapAnonymous(spec.size, { noReserve: true });
    if (typeof mem === "number") throw kvmFail("mmap", mem, { action: "Cannot map guest memory" });
    const flags =
      (spec.readOnly === true ? KVM_MEM.READONLY : 0) |
      (spec.logDirty === true ? KVM_MEM.LOG_DIRTY_PAGES : 0);
    const r = this.#setRegion(fd, slot, flags, gpa, spec.size, mem);
    if (r < 0) {
      mem.release();
      throw kvmFail("KVM_SET_USER_MEMORY_REGION", r, { action: `Cannot add memory slot ${slot}` });
    }
    const region: Region = {
      slot,
      guestPhysAddr: gpa,
      size: spec.size,
      // A getter: a region above 4 GiB has no single view, and asking for one throws.
      get bytes() {
        return mem.bytes;
      },
      view: (offset, length) => {
        this.fd("view guest memory");
        return mem.window(offset, length);
      },
      readOnly: spec.readOnly === true,
      logDirty: spec.logDirty === true,
      mem,
      vmmDirty: spec.logDirty === true ? new Uint8Array(spec.size / PAGE) : undefined,
    };
    this.#regions.push(region);
    return region;
  }

  /** KVM_SET_USER_MEMORY_REGION; returns the ioctl's result. */
  #setRegion(
    fd: number,
    slot: number,
    flags: number,
    gpa: bigint,
    size: number,
    mem: NativeMemory,
  ): number {
    const arg = this.#scratch.get(KVM_USERSPACE_MEMORY_REGION.size);
    arg.view.setUint32(R.slot.offset, slot, true);
    arg.view.setUint32(R.flags.offset, flags, true);
    arg.view.setBigUint64(R.guest_phys_addr.offset, gpa, true);
    arg.view.setBigUint64(R.memory_size.offset, BigInt(size), true);
    // FFI: `mem` is registered with the kernel until the VM closes; `close()` closes the VM fd
    // before releasing it (the kernel's mmu notifier copes with an unmap either way).
    arg.view.setBigUint64(R.userspace_addr.offset, mem.addressOf(0), true);
    return ioctlMem(fd, IOCTLS.KVM_SET_USER_MEMORY_REGION.number, arg, 0);
  }

  /**
   * Turns dirty logging of `slot` on (a fresh, clear log) or off: KVM_SET_USER_MEMORY_REGION on
   * the same slot, address, size and memory with only KVM_MEM_LOG_DIRTY_PAGES changed
   * (virt/kvm/kvm_main.c `__kvm_set_memory_region`: a flags-only change, KVM_MR_FLAGS_ONLY,
   * allowed while vCPUs run; the kernel allocates or frees the slot's bitmap).
   * @throws {KvmError} EINVAL if the slot does not exist; the kernel's errno if it refuses.
   */
  setDirtyLogging(slot: number, enabled: boolean): void {
    const fd = this.fd(`${enabled ? "start" : "stop"} dirty logging`);
    const region = this.#regions.find((r) => r.slot === slot);
    const action = `Cannot ${enabled ? "start" : "stop"} dirty logging of memory slot ${slot}`;
    if (region === undefined) {
      throw new KvmError({
        action,
        ioctl: "KVM_SET_USER_MEMORY_REGION",
        errno: ERRNO.EINVAL,
        hint: "no such slot",
      });
    }
    if (region.logDirty === enabled) return;
    const flags =
      (region.readOnly ? KVM_MEM.READONLY : 0) | (enabled ? KVM_MEM.LOG_DIRTY_PAGES : 0);
    const r = this.#setRegion(fd, slot, flags, region.guestPhysAddr, region.size, region.mem);
    if (r < 0) throw kvmFail("KVM_SET_USER_MEMORY_REGION", r, { action });
    region.logDirty = enabled;
    region.vmmDirty = enabled ? new Uint8Array(region.size / PAGE) : undefined;
  }

  /**
   * KVM_GET_DIRTY_LOG for a slot added with `logDirty`: one bit per 4 KiB page (bit i of byte
   * i/8 = page i; the length rounded up to 8 bytes as the kernel's bitmap is), the pages the
   * guest wrote since the last call (read and cleared by the kernel) plus those reported
   * through `markDirty`.
   * @throws {KvmError} ENOENT for a slot that does not exist or does not log.
   */
  getDirtyLog(slot: number): Uint8Array {
    const fd = this.fd("read a dirty log");
    const region = this.#regions.find((r) => r.slot === slot);
    if (region?.vmmDirty === undefined) {
      throw new KvmError({
        action: `Cannot read the dirty log of memory slot ${slot}`,
        ioctl: "KVM_GET_DIRTY_LOG",
        errno: ERRNO.ENOENT,
        hint: "add the slot with logDirty: true",
      });
    }
    const pages = region.size / PAGE;
    const bytes = Math.ceil(pages / 64) * 8;
    const arg = this.#scratch.get(BITMAP_AT + bytes);
    arg.bytes.fill(0, 0, BITMAP_AT + bytes);
    arg.view.setUint32(D.slot.offset, slot, true);
    // FFI: the bitmap lives in the same scratch mapping right after the struct, `bytes` long
    // (the kernel writes ALIGN(npages, 64) / 8 bytes: kvm_dirty_bitmap_bytes), for this call.
    arg.view.setBigUint64(D.dirty_bitmap.offset, arg.addressOf(BITMAP_AT), true);
    const r = ioctlMem(fd, IOCTLS.KVM_GET_DIRTY_LOG.number, arg, 0);
    if (r < 0) {
      throw kvmFail("KVM_GET_DIRTY_LOG", r, {
        action: `Cannot read the dirty log of memory slot ${slot}`,
      });
    }
    const bitmap = arg.bytes.slice(BITMAP_AT, BITMAP_AT + bytes);
    const vmm = region.vmmDirty;
    for (let page = 0; page < pages; page++) {
      if (vmm[page] === 0) continue;
      vmm[page] = 0;
      bitmap[page >> 3] = (bitmap[page >> 3] ?? 0) | (1 << (page & 7));
    }
    return bitmap;
  }

  /**
   * The VMM wrote guest RAM (device DMA): logs the pages for `getDirtyLog` in a logging slot
   * (KVM only logs guest writes). Hardware keeps instruction fetch coherent, so there is no
   * translated code to drop.
   * @throws {RangeError} if the range is empty or not inside one region (nothing changes).
   */
  markDirty(guestPhysAddr: bigint, length: number): void {
    if (!Number.isInteger(length) || length <= 0) {
      throw new RangeError(`markDirty: length ${length} is not a positive integer`);
    }
    const { region, offset } = this.#locate(guestPhysAddr, length);
    const dirty = region.vmmDirty;
    if (dirty === undefined) return;
    const last = Math.floor((offset + length - 1) / PAGE);
    for (let page = Math.floor(offset / PAGE); page <= last; page++) dirty[page] = 1;
  }

  #nextSlot(): number {
    let slot = 0;
    while (this.#regions.some((r) => r.slot === slot)) slot++;
    return slot;
  }

  /**
   * Copies `data` into guest RAM at `gpa`.
   * @throws {RangeError} if the range is not inside one region.
   */
  writeGuest(gpa: bigint | number, data: Uint8Array): void {
    const { region, offset } = this.#locate(BigInt(gpa), data.length);
    region.view(offset, data.length).set(data);
  }

  /**
   * Copies `length` bytes of guest RAM from `gpa`.
   * @throws {RangeError} if the range is not inside one region.
   */
  readGuest(gpa: bigint | number, length: number): Uint8Array {
    const { region, offset } = this.#locate(BigInt(gpa), length);
    return region.view(offset, length).slice();
  }

  #locate(gpa: bigint, length: number): { region: Region; offset: number } {
    this.fd("access guest memory");
    for (const region of this.#regions) {
      const offset = gpa - region.guestPhysAddr;
      if (offset >= 0n && offset + BigInt(length) <= BigInt(region.size)) {
        return { region, offset: Number(offset) };
      }
    }
    throw new RangeError(
      `guest range 0x${gpa.toString(16)}+${length} is not inside one memory region`,
    );
  }

  /**
   * KVM_CREATE_VCPU plus the mmap of its kvm_run pages.
   * @throws {RangeError} if the index is already used.
   * @throws {KvmError} if the kernel refuses.
   */
  createVcpu(index = this.#vcpus.size): KvmVcpu {
    const fd = this.fd("create a vCPU");
    if (this.#vcpus.has(index)) throw new RangeError(`vCPU ${index} already exists`);
    const mmapSize = this.system.vcpuMmapSize();
    const r = ioctlValue(fd, IOCTLS.KVM_CREATE_VCPU.number, index);
    if (r < 0) throw kvmFail("KVM_CREATE_VCPU", r, { action: `Cannot create vCPU ${index}` });
    const run = mapShared(r, mmapSize);
    if (typeof run === "number") {
      closeFd(r);
      throw kvmFail("mmap", run, { action: `Cannot map the kvm_run page of vCPU ${index}` });
    }
    const vcpu = new KvmVcpu(this, index, r, run, () => this.#vcpus.delete(index));
    this.#vcpus.set(index, vcpu);
    return vcpu;
  }

  /**
   * Closes every vCPU, the VM fd, then unmaps guest RAM at once (views of it then have length
   * 0; see `NativeMemory.release()`); a second call is a no-op.
   */
  close(): void {
    if (this.#fd < 0) return;
    for (const vcpu of [...this.#vcpus.values()]) vcpu.close();
    closeFd(this.#fd);
    this.#fd = -1;
    for (const region of this.#regions) region.mem.release();
    this.#scratch.release();
    this.#onClose();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE and _IOAPIC are the x86 chips (uapi asm/kvm.h). */
function checkChipId(chipId: number): void {
  if (!Number.isInteger(chipId) || chipId < 0 || chipId > 2) {
    throw new RangeError(
      `Irqchip ${chipId} does not exist: x86 has 0 (PIC master), 1 (PIC slave), 2 (IOAPIC)`,
    );
  }
}

function irqchipFail(ioctl: string, r: number, action: string): KvmError {
  return kvmFail(ioctl, r, {
    action,
    ...(r === -ERRNO.ENXIO ? { hint: "create the in-kernel irqchip first (createIrqchip)" } : {}),
  });
}
