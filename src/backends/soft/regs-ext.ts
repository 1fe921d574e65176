/**
 * ISA_EXT and SBI_EXT registers (types 7 and 8): one 0/1 register per extension (SINGLE) and
 * 64-extension bitmaps (MULTI_EN, MULTI_DIS; accepted but never listed). Rules of Linux 6.18
 * arch/riscv/kvm/vcpu_onereg.c (`riscv_vcpu_{get,set}_isa_ext_*`) and vcpu_sbi.c
 * (`riscv_vcpu_{get,set}_sbi_ext_*`), docs/kvm-register-abi.md §8.9, §8.10:
 *
 * ISA_EXT: size ≠ 8 → EINVAL; SINGLE of an id the host lacks (or ≥ MAX) → ENOENT; writing the
 * current value is always fine; a change after the first run → EBUSY; a change KVM does not
 * allow → EINVAL. MULTI word > LAST → ENOENT; MULTI SET applies each set bit through SINGLE and
 * ignores every per-extension failure (even EBUSY); MULTI_DIS GET is the complement of MULTI_EN.
 *
 * SBI_EXT: size ≠ 8 → EINVAL; any SET after the first run → EBUSY (before the subtype is even
 * looked at); SINGLE SET value not 0/1 → EINVAL (checked before the id); unknown or unavailable
 * extension → ENOENT.
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import {
  RISCV_EXT_SUBTYPE as SUB,
  RISCV_ISA_MULTI_REG_LAST,
  RISCV_REG_TYPE as T,
  RISCV_SBI_MULTI_REG_LAST,
} from "../../abi/arch/riscv/index.js";
import {
  ISA_EXT_MAX,
  SBI_EXT_MAX,
  hostHasIsaExt,
  isaDisableAllowed,
  isaEnableAllowed,
} from "./host.js";
import { Errno, type KernelState } from "./kstate.js";
import type { IdParts } from "./regs.js";

const U64_MASK = (1n << 64n) - 1n;

function fail(errno: number): never {
  throw new Errno(errno);
}

/** GET of an ISA_EXT or SBI_EXT register. */
export function getExtReg(st: KernelState, p: IdParts): bigint {
  if (p.size !== 8) fail(ERRNO.EINVAL);
  const isa = p.type === T.ISA_EXT;
  switch (p.subtype) {
    case SUB.SINGLE:
      return BigInt(isa ? getIsaSingle(st, p.index) : getSbiSingle(st, p.index));
    case SUB.MULTI_EN:
    case SUB.MULTI_DIS: {
      const bits = multiGet(st, p.index, isa);
      return p.subtype === SUB.MULTI_DIS ? ~bits & U64_MASK : bits;
    }
    default:
      return fail(ERRNO.ENOENT);
  }
}

/** SET of an ISA_EXT or SBI_EXT register. */
export function setExtReg(st: KernelState, p: IdParts, value: bigint): void {
  if (p.size !== 8) fail(ERRNO.EINVAL);
  const isa = p.type === T.ISA_EXT;
  if (!isa && st.ranOnce) fail(ERRNO.EBUSY);
  switch (p.subtype) {
    case SUB.SINGLE:
      if (isa) setIsaSingle(st, p.index, value);
      else setSbiSingle(st, p.index, value);
      return;
    case SUB.MULTI_EN:
    case SUB.MULTI_DIS:
      multiSet(st, p.index, value, p.subtype === SUB.MULTI_EN ? 1n : 0n, isa);
      return;
    default:
      fail(ERRNO.ENOENT);
  }
}

function getIsaSingle(st: KernelState, ext: number): number {
  if (ext < 0 || ext >= ISA_EXT_MAX || !hostHasIsaExt(ext)) fail(ERRNO.ENOENT);
  return st.isa[ext] === 1 ? 1 : 0;
}

function setIsaSingle(st: KernelState, ext: number, value: bigint): void {
  if (ext < 0 || ext >= ISA_EXT_MAX || !hostHasIsaExt(ext)) fail(ERRNO.ENOENT);
  if (value === BigInt(st.isa[ext] ?? 0)) return;
  if (st.ranOnce) fail(ERRNO.EBUSY);
  if (value === 1n && isaEnableAllowed(ext)) st.isa[ext] = 1;
  else if (value === 0n && isaDisableAllowed(ext)) st.isa[ext] = 0;
  else fail(ERRNO.EINVAL);
  st.isaChanged();
}

function sbiAvailable(st: KernelState, ext: number): boolean {
  return ext >= 0 && ext < SBI_EXT_MAX && st.sbi[ext] !== "unavailable";
}

function getSbiSingle(st: KernelState, ext: number): number {
  if (!sbiAvailable(st, ext)) fail(ERRNO.ENOENT);
  return st.sbi[ext] === "enabled" ? 1 : 0;
}

function setSbiSingle(st: KernelState, ext: number, value: bigint): void {
  if (value !== 0n && value !== 1n) fail(ERRNO.EINVAL);
  if (!sbiAvailable(st, ext)) fail(ERRNO.ENOENT);
  st.sbi[ext] = value === 1n ? "enabled" : "disabled";
}

function multiGet(st: KernelState, word: number, isa: boolean): bigint {
  const last = isa ? RISCV_ISA_MULTI_REG_LAST : RISCV_SBI_MULTI_REG_LAST;
  if (word < 0 || word > last) fail(ERRNO.ENOENT);
  const max = isa ? ISA_EXT_MAX : SBI_EXT_MAX;
  let bits = 0n;
  for (let i = 0; i < 64; i++) {
    const ext = word * 64 + i;
    if (ext >= max) break;
    const on = isa
      ? hostHasIsaExt(ext) && st.isa[ext] === 1
      : sbiAvailable(st, ext) && st.sbi[ext] === "enabled";
    if (on) bits |= 1n << BigInt(i);
  }
  return bits;
}

function multiSet(st: KernelState, word: number, mask: bigint, value: bigint, isa: boolean): void {
  const last = isa ? RISCV_ISA_MULTI_REG_LAST : RISCV_SBI_MULTI_REG_LAST;
  if (word < 0 || word > last) fail(ERRNO.ENOENT);
  const max = isa ? ISA_EXT_MAX : SBI_EXT_MAX;
  for (let i = 0; i < 64; i++) {
    if (((mask >> BigInt(i)) & 1n) === 0n) continue;
    const ext = word * 64 + i;
    if (ext >= max) break;
    try {
      if (isa) setIsaSingle(st, ext, value);
      else setSbiSingle(st, ext, value);
    } catch (error) {
      // The kernel ignores per-extension failures inside MULTI writes.
      if (!(error instanceof Errno)) throw error;
    }
  }
}
