/**
 * `struct kvm_guest_debug` (x86, 72 bytes) from the backend-neutral `GuestDebug`: `control`
 * (KVM_GUESTDBG_*), then `arch.debugreg[8]` = DR0–DR3, two unused slots, DR6 (unused by the
 * kernel on input), DR7 (arch/x86/kvm/x86.c kvm_arch_vcpu_ioctl_set_guest_debug copies
 * debugreg[0..3] into `eff_db` and debugreg[7] into `guest_debug_dr7` when USE_HW_BP is set).
 *
 * Control bits outside the x86 set (KVM_GUESTDBG_* in include/uapi/linux/kvm.h and
 * arch/x86/include/uapi/asm/kvm.h) are refused here: kvm_pvm 6.18 accepts and ignores them
 * (measured), so a typo would otherwise pass silently.
 */
import { KVM_GUEST_DEBUG_X86 } from "../../abi/kvm/layouts-x86.js";
import { KVM_GUESTDBG } from "../../abi/kvm/constants.js";
import type { GuestDebug } from "../vcpu.js";

/** `arch.debugreg` has 8 slots: DR0–DR3, DR4/DR5 (aliases, unused), DR6, DR7. */
export const GUEST_DEBUG_REGS = 8;

const CONTROL = KVM_GUEST_DEBUG_X86.fields.control.offset;
const DEBUGREG = KVM_GUEST_DEBUG_X86.fields.debugreg.offset;
const U64_MAX = (1n << 64n) - 1n;
const KNOWN = Object.values(KVM_GUESTDBG).reduce((all, bit) => all | bit, 0);

/**
 * Writes `debug` as a `struct kvm_guest_debug` into `out` (at least 72 bytes, zeroed here).
 * @throws {TypeError} for a non-integer control, non-bigint debug registers, or `hwBreakpoints`
 *   without `debugreg` (a soft-backend extension: KVM takes addresses in DR0–DR3).
 * @throws {RangeError} for a control with bits outside KVM_GUESTDBG, more than 8 debug registers, or one outside u64.
 */
export function encodeGuestDebug(debug: GuestDebug, out: Uint8Array): void {
  const { control, debugreg } = debug;
  if (typeof control !== "number" || !Number.isInteger(control)) {
    throw new TypeError(
      "Cannot set guest debug: control must be an integer of KVM_GUESTDBG_* bits",
    );
  }
  if (control < 0 || control > 0xffff_ffff || (control & ~KNOWN) !== 0) {
    throw new RangeError(
      `Cannot set guest debug: control ${control} has bits outside KVM_GUESTDBG_* (known: 0x${KNOWN.toString(16)})`,
    );
  }
  // `hwBreakpoints` is the soft backend's extension; KVM reads DR0–DR3 and DR7 only. A caller
  // that passes both (one argument for either backend) is served by `debugreg`; addresses given
  // only as hwBreakpoints would be dropped silently, so that is refused.
  if (
    debug.hwBreakpoints !== undefined &&
    debug.hwBreakpoints.length > 0 &&
    debugreg === undefined
  ) {
    throw new TypeError(
      "Cannot set guest debug: hwBreakpoints is a soft-backend extension; on KVM put the addresses in debugreg[0..3] and enable them in debugreg[7] (DR7)",
    );
  }
  // `watchpoints` likewise (soft only): on KVM x86 they are DR slots with R/W bits in DR7.
  if (debug.watchpoints !== undefined && debug.watchpoints.length > 0) {
    throw new TypeError(
      "Cannot set guest debug: watchpoints is a soft-backend extension; on KVM put the addresses in debugreg[0..3] with R/W and LEN bits in debugreg[7] (DR7)",
    );
  }
  if (debugreg !== undefined && debugreg.length > GUEST_DEBUG_REGS) {
    throw new RangeError(
      `Cannot set guest debug: ${debugreg.length} debug registers given, kvm_guest_debug has ${GUEST_DEBUG_REGS} (DR0-DR7)`,
    );
  }
  const view = new DataView(out.buffer, out.byteOffset, KVM_GUEST_DEBUG_X86.size);
  out.fill(0, 0, KVM_GUEST_DEBUG_X86.size);
  view.setUint32(CONTROL, control, true);
  debugreg?.forEach((value, i) => {
    if (typeof value !== "bigint") {
      throw new TypeError(`Cannot set guest debug: debugreg[${i}] must be a bigint`);
    }
    if (value < 0n || value > U64_MAX) {
      throw new RangeError(`Cannot set guest debug: debugreg[${i}] = ${value} is not a u64`);
    }
    view.setBigUint64(DEBUGREG + 8 * i, value, true);
  });
}
