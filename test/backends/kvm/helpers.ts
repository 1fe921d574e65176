/**
 * Shared setup for the KVM tests: the skip reason when /dev/kvm is unusable, a booted
 * exit-loop guest, register lookups by catalog name, and an ioctl recorder.
 */
import { lookupReg } from "../../../src/abi/catalog.js";
import { ioctlName } from "../../../src/abi/kvm/ioctls.js";
import type { RegId } from "../../../src/abi/regid.js";
import { setIoctlHook } from "../../../src/backends/kvm/ffi.js";
import {
  KvmSystem,
  kvmUnavailableReason,
  type KvmVcpu,
  type KvmVmOptions,
} from "../../../src/backends/kvm/index.js";
import {
  bootFlatGuest,
  bundledGuest,
  type FlatGuest,
} from "../../../src/backends/kvm/flat-guest.js";

/** Why the KVM tests skip here, or `false` when /dev/kvm works. */
export const KVM_SKIP: string | false = (() => {
  const reason = kvmUnavailableReason();
  return reason === undefined ? false : `needs a usable /dev/kvm: ${reason}`;
})();

/** The x86 id of a catalog name (e.g. "LSTAR", "REGS", "MSR(0xdeadbeef)"). */
export function x86(name: string): RegId {
  return lookupReg("x86", name).id;
}

/** A system plus a VM running guests/x86/exit-loop.bin; dispose closes both. */
export function exitLoop(options: KvmVmOptions = {}): FlatGuest & { readonly system: KvmSystem } {
  const system = KvmSystem.open();
  const guest = bootFlatGuest(system, bundledGuest("exit-loop"), options);
  return {
    system,
    vm: guest.vm,
    vcpu: guest.vcpu,
    [Symbol.dispose]: () => {
      system.close();
    },
  };
}

/** Runs `fn` and returns the names of the ioctls it issued, in order. */
export function recordIoctls(fn: () => void): string[] {
  const seen: string[] = [];
  setIoctlHook((_fd, request) => seen.push(ioctlName(request)));
  try {
    fn();
  } finally {
    setIoctlHook(undefined);
  }
  return seen;
}

/**
 * Points `vcpu` at 16-bit real-mode code at guest-physical `rip`: CS base and selector 0, RFLAGS
 * with only bit 1 (reserved, always 1) set.
 */
export function startRealMode(vcpu: KvmVcpu, rip: number | bigint): void {
  const sregs = vcpu.getSregs();
  sregs.cs.base = 0n;
  sregs.cs.selector = 0;
  vcpu.setSregs(sregs);
  vcpu.setRegs({ ...vcpu.getRegs(), rip: BigInt(rip), rflags: 2n });
}
