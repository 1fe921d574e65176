/**
 * When two `kvm_xsave` images hold the same guest state: XSTATE_BV may differ between them for
 * a component that is in its initial configuration.
 *
 * KVM_GET_XSAVE copies the XSAVE header's XSTATE_BV from the guest's in-kernel fpstate as the
 * last XSAVES/XSAVEOPT wrote it (arch/x86/kernel/fpu/xstate.c `copy_xstate_to_uabi_buf`:
 * `header.xfeatures = xsave->header.xfeatures & fpstate->user_xfeatures`), and fills the bytes of
 * every component whose bit is clear from the kernel's init_fpstate (`copy_feature`). Those
 * instructions write XSTATE_BV[i] = XINUSE[i], and the processor may keep XINUSE[i] = 1 for a
 * component that is in its initial configuration (SDM vol. 1 §13.6 "Processor Tracking of
 * XSAVE-Managed State": XINUSE[i] = 0 implies the initial configuration, not the converse). So
 * the same guest, untouched SSE registers and all, reads back with XSTATE_BV bit 1 set or clear
 * from one run to the next (measured on kvm_pvm: 14 of 100 runs of the x86 demo, either side).
 * `canonicalXsave()` clears the bits of components 0–2 whose bytes are the initial
 * configuration, so equal states compare equal; the kernel restores either form to the same
 * registers (XRSTOR of a clear bit loads the initial configuration, SDM vol. 1 §13.8.1).
 */
import { XSAVE_AVX_OFFSET, XSAVE_HEADER, XSAVE_LEGACY_AREA } from "./layouts-x86.js";

const F = XSAVE_LEGACY_AREA.fields;
/** Where XSTATE_BV sits in a `kvm_xsave` (the header follows the 512-byte legacy region). */
const XSTATE_BV_AT = XSAVE_LEGACY_AREA.size + XSAVE_HEADER.fields.xstate_bv.offset;
/** Initial FCW and MXCSR (SDM vol. 1 §13.6: x87 FCW 037FH; SSE MXCSR 1F80H). */
const FCW_INIT = 0x037f;
const MXCSR_INIT = 0x1f80;
/** YMM0_H..YMM15_H: 16 × 16 bytes (SDM vol. 1 §13.5.3). */
const AVX_BYTES = 256;

function allZero(bytes: Uint8Array, from: number, length: number): boolean {
  for (let i = from; i < from + length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * The x87 component's initial configuration (SDM vol. 1 §13.6): FCW 037FH, FSW 0, all tags
 * empty (abridged FTW 0), FOP, FIP, FDP 0, ST0–ST7 0.
 */
function x87Initial(view: DataView, bytes: Uint8Array): boolean {
  return (
    view.getUint16(F.fcw.offset, true) === FCW_INIT &&
    allZero(bytes, F.fsw.offset, F.mxcsr.offset - F.fsw.offset) &&
    allZero(bytes, F.fpr.offset, F.fpr.size)
  );
}

/** The SSE component's: XMM0–XMM15 zero, MXCSR 1F80H. */
function sseInitial(view: DataView, bytes: Uint8Array): boolean {
  return (
    view.getUint32(F.mxcsr.offset, true) === MXCSR_INIT && allZero(bytes, F.xmm.offset, F.xmm.size)
  );
}

/**
 * A copy of a `kvm_xsave` image (standard format, at least 832 bytes: legacy region, header,
 * AVX) with XSTATE_BV bits 0 (x87), 1 (SSE) and 2 (AVX) cleared where that component holds its
 * initial configuration; every other byte unchanged.
 * @throws {RangeError} for an image shorter than 832 bytes.
 */
export function canonicalXsave(image: Uint8Array): Uint8Array {
  const need = XSAVE_AVX_OFFSET + AVX_BYTES;
  if (image.length < need) {
    throw new RangeError(`An XSAVE image is at least ${need} bytes; this one is ${image.length}`);
  }
  const out = image.slice();
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let bv = view.getBigUint64(XSTATE_BV_AT, true);
  if (x87Initial(view, out)) bv &= ~1n;
  if (sseInitial(view, out)) bv &= ~2n;
  if (allZero(out, XSAVE_AVX_OFFSET, AVX_BYTES)) bv &= ~4n;
  view.setBigUint64(XSTATE_BV_AT, bv, true);
  return out;
}
