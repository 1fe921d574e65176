/**
 * The backend-agnostic vCPU interface. The KVM backend (src/backends/kvm) and the soft
 * backend (src/backends/soft) both implement it; one conformance suite runs against each.
 *
 * Register values are `Uint8Array`s of exactly `regSize(id)` bytes in little-endian order
 * (the host byte order of every KVM arch regvisor drives). MANY_REGS is regvisor's own
 * contract (docs/DESIGN.md §1): values packed in list order, no padding, total = Σ size(id).
 */
import type { ArchName, RegId } from "../abi/regid.js";
import { RegvisorError } from "../errors.js";

/** A vCPU call was made while its `runAsync()` is still pending (only kick and interrupt lines may be). */
export class VcpuBusyError extends RegvisorError {
  constructor(index: number, action: string) {
    super(
      "VCPU_BUSY",
      `Cannot ${action}: vCPU ${index} is running (runAsync pending); await it or kick() it first`,
    );
  }
}

/** Why `run()` returned to the VMM. Guest events are values, never thrown. */
export type VcpuExit =
  | {
      readonly kind: "io";
      readonly direction: "in" | "out";
      readonly port: number;
      /** Bytes per element: 1, 2 or 4. */
      readonly size: number;
      readonly count: number;
      /** OUT: the guest's bytes. IN: write the reply here before the next `run()`. */
      readonly data: Uint8Array;
    }
  | {
      readonly kind: "mmio";
      readonly address: bigint;
      readonly isWrite: boolean;
      /** 1..8 bytes. Write: the guest's bytes. Read: fill before the next `run()`. */
      readonly data: Uint8Array;
    }
  | { readonly kind: "hlt" }
  | { readonly kind: "shutdown" }
  | {
      readonly kind: "system_event";
      /** KVM_SYSTEM_EVENT_* type: 1 SHUTDOWN, 2 RESET, 3 CRASH, ... */
      readonly type: number;
      readonly typeName: string;
      readonly data: readonly bigint[];
    }
  | { readonly kind: "fail_entry"; readonly reason: bigint; readonly cpu: number }
  | {
      readonly kind: "internal_error";
      readonly suberror: number;
      readonly data: readonly bigint[];
    }
  | { readonly kind: "intr" }
  | {
      /**
       * KVM_EXIT_DEBUG: a guest-debug event (see `Vcpu.setGuestDebug`). `pc` is the guest
       * address it happened at; x86 adds `exception` (1 #DB: single-step or a debug register
       * hit, 3 #BP: int3), `dr6` and `dr7` (kvm_debug_exit_arch). RISC-V KVM's payload is
       * empty; the soft backend adds `cause` (regvisor extension), and the KVM x86 backend
       * derives it from `exception` and `dr6`.
       */
      readonly kind: "debug";
      readonly pc: bigint;
      readonly exception?: number;
      readonly dr6?: bigint;
      readonly dr7?: bigint;
      /**
       * "swbreak" (ebreak, int3), "step", "hwbreak" (a `hwBreakpoints` address; x86: DR6 B0–B3);
       * soft backend: "watch"/"rwatch"/"awatch" after an access a `watchpoints` entry covers.
       */
      readonly cause?: "swbreak" | "step" | "hwbreak" | "watch" | "rwatch" | "awatch";
      /** The hit watchpoint's address (soft backend, with a watch cause). */
      readonly watchAddress?: bigint;
    }
  | {
      readonly kind: "riscv_sbi";
      readonly extensionId: bigint;
      readonly functionId: bigint;
      readonly args: readonly bigint[];
      /** Set `ret[0]` (a0) and `ret[1]` (a1) before the next `run()`; preset to [-2, 0]. */
      readonly ret: BigInt64Array;
    }
  | {
      readonly kind: "riscv_csr";
      readonly csrNum: number;
      readonly newValue: bigint;
      readonly writeMask: bigint;
      /** Set `ret[0]` before the next `run()`. */
      readonly ret: BigUint64Array;
    }
  | { readonly kind: "unsupported"; readonly exitReason: number; readonly reason: string };

/** A vCPU of either backend. Methods throw `KvmError` with the errno the kernel would give. */
export interface Vcpu extends Disposable {
  readonly arch: ArchName;
  /** vCPU index within its VM. */
  readonly index: number;
  /** Every register id this vCPU exposes now (the REG_LIST protocol, wrapped). */
  regList(): RegId[];
  /** Reads one register: exactly `regSize(id)` bytes. */
  getOneReg(id: RegId): Uint8Array;
  /** Writes one register; a bigint is encoded little-endian at the id's size (≤ 8 bytes). */
  setOneReg(id: RegId, value: Uint8Array | bigint): void;
  /** Reads many registers into one packed byte stream (Σ sizes, list order, no padding). */
  getManyRegs(ids: readonly RegId[]): Uint8Array;
  /** Writes a packed stream; all-or-nothing: on failure the vCPU is left as it was. */
  setManyRegs(ids: readonly RegId[], bytes: Uint8Array): void;
  /** Runs the guest until the next exit to the VMM. */
  run(): VcpuExit;
  /**
   * Optional capability: runs the guest until the next exit *on the vCPU's own thread* (soft:
   * the vCPU's Worker; KVM: a thread doing KVM_RUN), so the caller's event loop stays free.
   * At most one `run()`/`runAsync()` at a time; other methods may be called only while no run
   * is in progress (the vCPU is parked between exits).
   */
  runAsync?(): Promise<VcpuExit>;
  /**
   * Optional capability: makes a run in progress return soon as `{ kind: "intr" }` (or the
   * next run return at once if none is in progress), as KVM's `immediate_exit` plus a signal
   * to the vCPU's thread does. Callable while `runAsync()` is pending; kicks not yet seen
   * coalesce into one `intr`; a no-op on a closed vCPU.
   */
  kick?(): void;
  /**
   * Optional capability, RISC-V: the `KVM_INTERRUPT` contract (arch/riscv/kvm/vcpu.c):
   * `true` = KVM_INTERRUPT_SET, `false` = KVM_INTERRUPT_UNSET of the vCPU's supervisor
   * external interrupt line (what a PLIC context drives). Callable while a run is pending.
   */
  setExternalInterrupt?(level: boolean): void;
  /**
   * Optional capability: KVM_SET_GUEST_DEBUG. `control` is `KVM_GUESTDBG_*` bits
   * (src/abi/kvm/constants.ts); with `ENABLE` clear, guest debug is off. Events exit as
   * `{ kind: "debug" }`. Bits the backend does not implement are refused before anything
   * changes: `KvmError` EINVAL on the soft backend; a `RangeError` on KVM x86, whose kernel
   * would accept them silently (docs/kvm-guest-debug.md).
   */
  setGuestDebug?(debug: GuestDebug): void;
  /**
   * Optional capability: KVM_GET_MP_STATE, the vCPU's power state as a `KVM_MP_STATE_*` value
   * (src/abi/kvm/constants.ts). RISC-V: RUNNABLE or STOPPED (SBI HSM started/stopped,
   * arch/riscv/kvm/vcpu.c); the register list has no such register, so machine snapshots carry
   * it beside the registers. x86: the same value is also the MP_STATE pseudo register in
   * `regList()` (one ioctl behind both); snapshots carry it there, once.
   */
  getMpState?(): number;
  /**
   * Optional capability: KVM_SET_MP_STATE. Throws `KvmError` EINVAL for a state the arch does
   * not take (RISC-V: anything but RUNNABLE and STOPPED).
   */
  setMpState?(state: number): void;
  /** Releases the vCPU; a second close is a no-op, any other use afterwards throws. */
  close(): void;
}

/** The argument of `Vcpu.setGuestDebug` (struct kvm_guest_debug, plus regvisor extensions). */
export interface GuestDebug {
  /** `KVM_GUESTDBG_*` bits. */
  readonly control: number;
  /** x86: `arch.debugreg[0..7]` (DR0–DR3 addresses, DR6, DR7) with `USE_HW_BP`. */
  readonly debugreg?: readonly bigint[];
  /**
   * Soft backend (regvisor extension, with `USE_HW_BP`): guest-virtual addresses that exit as
   * `debug`/"hwbreak" before the instruction there executes, whether or not paging is on.
   */
  readonly hwBreakpoints?: readonly bigint[];
  /**
   * Soft backend (regvisor extension, with `USE_HW_BP`): data watchpoints by guest-virtual
   * address; the access completes, then the vCPU exits as `debug` with cause "watch" (a store
   * to the range), "rwatch" (a load) or "awatch" (either), pc past the instruction.
   */
  readonly watchpoints?: readonly {
    readonly kind: "watch" | "rwatch" | "awatch";
    readonly address: bigint;
    readonly length: number;
  }[];
}

/** Bytes of one chip's state in `Vm.getIrqchip` (the `kvm_irqchip.chip` union, x86). */
export const IRQCHIP_STATE_BYTES = 512;

/**
 * The VM-wide kvmclock as KVM_GET_CLOCK returns it (`struct kvm_clock_data`,
 * include/uapi/linux/kvm.h; Documentation/virt/kvm/api.rst 4.59 "KVM_SET_CLOCK", 4.60
 * "KVM_GET_CLOCK").
 */
export interface VmClock {
  /** The kvmclock, ns (what the guest's pvclock pages count from). */
  readonly clock: bigint;
  /** `KVM_CLOCK_*` bits: which of the fields below hold values, and TSC_STABLE. */
  readonly flags: number;
  /** CLOCK_REALTIME of the host at the same instant, ns (with `KVM_CLOCK.REALTIME`). */
  readonly realtime: bigint;
  /** The host TSC at the same instant (with `KVM_CLOCK.HOST_TSC`). */
  readonly hostTsc: bigint;
}

/** The argument of `Vm.setClock` (KVM_SET_CLOCK). */
export interface VmClockSetting {
  /** The kvmclock, ns. */
  readonly clock: bigint;
  /**
   * CLOCK_REALTIME ns at which `clock` was read: the kernel then adds the real time elapsed
   * since (never a negative amount) before setting it (needs `KVM_CLOCK.REALTIME` support).
   */
  readonly realtime?: bigint;
}

/** Where a guest RAM region goes in guest-physical space (KVM_SET_USER_MEMORY_REGION). */
export interface MemoryRegionSpec {
  readonly guestPhysAddr: bigint | number;
  /** Bytes; a multiple of 4096. */
  readonly size: number;
  /** Memory slot; the next free one by default. */
  readonly slot?: number;
  /** KVM_MEM_READONLY: guest writes exit as MMIO. */
  readonly readOnly?: boolean;
  /** KVM_MEM_LOG_DIRTY_PAGES: record guest writes for `Vm.getDirtyLog` (dirty-log capability). */
  readonly logDirty?: boolean;
}

/**
 * Largest typed array Node 20 makes (V8 11.3; `buffer.constants.MAX_LENGTH`): 4 GiB. One
 * view of guest RAM is never longer.
 */
export const MAX_GUEST_VIEW_BYTES = 2 ** 32;
/** The longest `GuestMemory.view()` any region serves at every offset: 2 GiB. */
export const MAX_GUEST_WINDOW_BYTES = 2 ** 31;

/** One guest RAM region, owned by its VM. */
export interface GuestMemory {
  readonly slot: number;
  readonly guestPhysAddr: bigint;
  readonly size: number;
  /**
   * The guest's RAM, zero-copy: what the VMM writes here the guest sees. A region above
   * `MAX_GUEST_VIEW_BYTES` (4 GiB) has no single view: reading this throws a `RangeError`, and
   * `view()` reaches every byte. After the VM closes, a view has length 0 (or reads zeros).
   */
  readonly bytes: Uint8Array;
  /**
   * A zero-copy view of the region's bytes `[offset, offset + length)` (offset 0 is
   * `guestPhysAddr`): any range up to `MAX_GUEST_WINDOW_BYTES` long, or the whole region when it
   * is at most `MAX_GUEST_VIEW_BYTES`.
   * @throws {RangeError} if the range is outside the region or longer than one view can be.
   */
  view(offset: number, length: number): Uint8Array;
  /** KVM_MEM_READONLY is set. */
  readonly readOnly: boolean;
  /** KVM_MEM_LOG_DIRTY_PAGES is set. */
  readonly logDirty: boolean;
}

/** A VM of either backend: guest RAM plus vCPUs. A VMM written against it runs on both. */
export interface Vm extends Disposable {
  /** The register namespace of its vCPUs. */
  readonly arch: ArchName;
  /** The guest RAM regions added so far, in slot order. */
  readonly memory: readonly GuestMemory[];
  /** Allocates zeroed guest RAM and maps it at `guestPhysAddr`. */
  addMemory(spec: MemoryRegionSpec): GuestMemory;
  /** Creates the next vCPU (ids from 0). */
  createVcpu(): Vcpu;
  /**
   * Optional capability: the `KVM_GET_DIRTY_LOG` contract for a slot added with `logDirty`:
   * one bit per 4 KiB page (bit i of byte i/8 = page i of the slot; the length rounded up to a
   * multiple of 8 bytes, as the kernel's bitmap), set when the guest (or a DMA write reported
   * through `markDirty`) wrote the page since the last call; returns the bitmap and clears it.
   * A store racing with the call is in this bitmap or the next one. Throws `KvmError` ENOENT
   * for a slot that does not exist or does not log.
   */
  getDirtyLog?(slot: number): Uint8Array;
  /**
   * Optional capability: turns `KVM_MEM_LOG_DIRTY_PAGES` of an existing slot on (a fresh, clear
   * log) or off, changing nothing else (KVM_SET_USER_MEMORY_REGION again on the same slot with
   * only that flag changed: Documentation/virt/kvm/api.rst 4.35). The soft backend, like any
   * memslot change there, refuses while a vCPU runs (`VcpuBusyError`): park them first.
   * Throws `KvmError` EINVAL for a slot that does not exist.
   */
  setDirtyLogging?(slot: number, enabled: boolean): void;
  /**
   * Optional capability: the VMM wrote guest RAM (device DMA): log the pages and drop
   * translated code in them. Call it from the thread that owns the VM; `RangeError` if the
   * range is not inside one slot.
   */
  markDirty?(guestPhysAddr: bigint, length: number): void;
  /**
   * Optional capability, x86: `KVM_CREATE_IRQCHIP` (in-kernel PIC + IOAPIC + LAPICs); must be
   * called before the first vCPU is created.
   */
  createIrqchip?(): void;
  /** Optional capability, x86 with an irqchip: `KVM_IRQ_LINE` (GSI `irq` to `level`). */
  setIrqLine?(irq: number, level: boolean): void;
  /**
   * Optional capability, x86 with an irqchip: KVM_GET_IRQCHIP, the state of one in-kernel chip
   * (`KVM_IRQCHIP_ID`: 0 PIC master, 1 PIC slave, 2 IOAPIC) as its `IRQCHIP_STATE_BYTES`-byte
   * `kvm_irqchip.chip` union. Throws `RangeError` for another chip id.
   */
  getIrqchip?(chipId: number): Uint8Array;
  /** Optional capability, x86 with an irqchip: KVM_SET_IRQCHIP (bytes as `getIrqchip` gave). */
  setIrqchip?(chipId: number, state: Uint8Array): void;
  /**
   * Optional capability, x86: KVM_CHECK_EXTENSION(KVM_CAP_ADJUST_CLOCK), the `KVM_CLOCK_*`
   * flags the kernel's KVM_GET/SET_CLOCK know; 0 when it has neither ioctl.
   */
  clockFlags?(): number;
  /** Optional capability, x86: KVM_GET_CLOCK, the VM's kvmclock now. */
  getClock?(): VmClock;
  /** Optional capability, x86: KVM_SET_CLOCK; every vCPU's pvclock page follows on its next entry. */
  setClock?(setting: VmClockSetting): void;
  /** Closes every vCPU, then the VM; a second close is a no-op. */
  close(): void;
}
