/**
 * Memslot flags in snapshots: MEMORY sections carry `kvm_userspace_memory_region.flags` as given
 * to the backend (KVM_MEM_READONLY, KVM_MEM_LOG_DIRTY_PAGES; include/uapi/linux/kvm.h), so a
 * restored machine gets the same read-only and dirty-logging slots. The one place that maps the
 * `Vm` interface's booleans to those bits and back.
 */
import { KVM_MEM } from "../../abi/kvm/ioctls.js";
import type { GuestMemory, MemoryRegionSpec, Vm } from "../../backends/vcpu.js";

/** The flag bits a snapshot may carry; others are refused on restore. */
export const KNOWN_MEMSLOT_FLAGS = KVM_MEM.READONLY | KVM_MEM.LOG_DIRTY_PAGES;

/** The KVM_MEM_* flags of a guest RAM region. */
export function memslotFlags(m: Pick<GuestMemory, "readOnly" | "logDirty">): number {
  return (m.readOnly ? KVM_MEM.READONLY : 0) | (m.logDirty ? KVM_MEM.LOG_DIRTY_PAGES : 0);
}

/**
 * The `addMemory` options that recreate a region with `flags`.
 * @throws {RangeError} for a flag bit regvisor does not restore (e.g. KVM_MEM_GUEST_MEMFD).
 */
export function memslotOptions(
  flags: number,
): Required<Pick<MemoryRegionSpec, "readOnly" | "logDirty">> {
  const unknown = flags & ~KNOWN_MEMSLOT_FLAGS;
  if (unknown !== 0) {
    throw new RangeError(
      `Cannot restore a memory slot with flags 0x${flags.toString(16)}: bits 0x${unknown.toString(16)} are not KVM_MEM_READONLY or KVM_MEM_LOG_DIRTY_PAGES`,
    );
  }
  return {
    readOnly: (flags & KVM_MEM.READONLY) !== 0,
    logDirty: (flags & KVM_MEM.LOG_DIRTY_PAGES) !== 0,
  };
}

/** A memslot as a machine layout lists it (src/vmm/machine/types.ts `RamSlot`). */
interface LaidOutSlot {
  readonly slot: number;
  readonly gpa: bigint;
  readonly size: number;
  readonly flags: number;
}

/**
 * Adds every slot of a machine layout to `vm` with its flags (a restore or migration
 * destination's RAM), in layout order.
 * @throws {RangeError} from `memslotOptions` for an unknown flag bit; backend errors.
 */
export function addLayoutMemory(vm: Vm, slots: readonly LaidOutSlot[]): GuestMemory[] {
  return slots.map((r) =>
    vm.addMemory({ slot: r.slot, guestPhysAddr: r.gpa, size: r.size, ...memslotOptions(r.flags) }),
  );
}
