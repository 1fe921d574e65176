/**
 * The soft backend's ONE_REG handlers: Linux 6.18 `kvm_riscv_vcpu_get_reg` /
 * `kvm_riscv_vcpu_set_reg` (arch/riscv/kvm/vcpu_onereg.c, vcpu_timer.c, vcpu_fp.c, aia.c),
 * check for check and errno for errno (docs/kvm-register-abi.md §8, §10.3):
 *
 * - the arch byte is never looked at; dispatch is on the type byte, unknown types → ENOENT;
 * - the number is everything below the type (bits 51..32 included), so stray bits are "out of
 *   range"; classes without subtypes see a non-zero subtype byte the same way;
 * - each class checks the size first (EINVAL), then the number (ENOENT), except FP_F/FP_D which
 *   check that the vCPU has F/D first (ENOENT) and FP_D which checks the number before the size.
 *
 * Faithful oddities worth knowing:
 * - CSR AIA numbers 0..6 read 0 and ignore writes (host without AIA), although they are not
 *   listed; SMSTATEEN is EINVAL (host without Smstateen) — both as in 6.18.
 * - TIMER `state` SET 1 arms the timer with the written value (1) as its deadline, so it fires at
 *   once and `compare` reads 1 afterwards; SET 0 on a disarmed timer is EINVAL
 *   (`kvm_riscv_vcpu_timer_cancel`). Restore `compare` and skip `state` unless it was 1.
 * - FP_F registers of a vCPU with D alias the D register file, because KVM keeps one
 *   `union __riscv_fp_state` and saves it with the D layout: FP_F word n is half n%2 of f[n/2]
 *   (fcsr, word 32, is the low half of f16). With F but not D they are the single-precision
 *   values (writes NaN-box, like `flw`).
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import { RISCV_REG_TYPE as T } from "../../abi/arch/riscv/index.js";
import { GENERAL_CSRS } from "./riscv/contract.js";
import {
  HOST_BASE_LETTERS,
  SATP_MODE_SV39,
  TIMEBASE_HZ,
  isaDisableAllowed,
  isaEnableAllowed,
  isaExtId,
  letterToIsaExt,
  ISA_EXT_MAX,
} from "./host.js";
import { Errno, type KernelState } from "./kstate.js";
import { getExtReg, setExtReg } from "./regs-ext.js";

/** A number no class accepts: used when bits 51..32 of an id are set. */
const OUT = -1;
const ULONG = 8;
const ISA_LETTER_MASK = (1 << 26) - 1;
const SIP_MASK = 0x222n; // VSIP_VALID_MASK: SSIP | STIP | SEIP
const HALF_MASK = 0xffffffffn;
const F_ID = isaExtId("f");
const D_ID = isaExtId("d");

/** The fields of a riscv id after the arch byte (see the header comment). */
export interface IdParts {
  readonly size: number;
  readonly type: number;
  readonly subtype: number;
  /** Number for classes with subtypes (bits 15..0), or OUT. */
  readonly index: number;
  /** Number for classes without subtypes (bits 23..0), or OUT. */
  readonly flat: number;
}

// Scratch for splitting a u64 into its 32-bit halves without BigInt arithmetic (hot path of
// every register access); typed arrays use the host byte order, little-endian on every host
// Node runs regvisor on.
const scratch = new BigUint64Array(1);
const halves = new Uint32Array(scratch.buffer);

/** Splits `id` the way the kernel masks it. */
export function splitId(id: bigint): IdParts {
  scratch[0] = id;
  return splitHalves(halves[0] ?? 0, halves[1] ?? 0);
}

/** `splitId` for an id given as its low and high 32-bit halves (ids read from a byte stream). */
export function splitHalves(lo: number, hi: number): IdParts {
  const high = hi & 0xfffff;
  return {
    size: 2 ** ((hi >>> 20) & 0xf),
    type: lo >>> 24,
    subtype: (lo >>> 16) & 0xff,
    index: high !== 0 ? OUT : lo & 0xffff,
    flat: high !== 0 ? OUT : lo & 0xffffff,
  };
}

function fail(errno: number): never {
  throw new Errno(errno);
}

/**
 * KVM_GET_ONE_REG: the value of `id` (fits the id's size).
 * @throws {Errno} with the errno the kernel would return.
 */
export function getReg(st: KernelState, id: bigint): bigint {
  return getRegParts(st, splitId(id));
}

/** `getReg` for an id already split by `splitId`. @throws {Errno} */
export function getRegParts(st: KernelState, p: IdParts): bigint {
  switch (p.type) {
    case T.CONFIG:
      return getConfig(st, p);
    case T.CORE:
      return getCore(st, p);
    case T.CSR:
      return getCsr(st, p);
    case T.TIMER:
      return getTimer(st, p);
    case T.FP_F:
      return getFpF(st, p);
    case T.FP_D:
      return getFpD(st, p);
    case T.ISA_EXT:
    case T.SBI_EXT:
      return getExtReg(st, p);
    case T.VECTOR:
      return fail(ERRNO.ENOENT); // the vCPU has no V
    case T.SBI_STATE:
      return fail(ERRNO.EINVAL); // STA and FWFT are unavailable, so never enabled
    default:
      return fail(ERRNO.ENOENT);
  }
}

/**
 * KVM_SET_ONE_REG: writes `value` (already decoded from exactly `size(id)` bytes).
 * @throws {Errno} with the errno the kernel would return.
 */
export function setReg(st: KernelState, id: bigint, value: bigint): void {
  setRegParts(st, splitId(id), value);
}

/** `setReg` for an id already split by `splitId`. @throws {Errno} */
export function setRegParts(st: KernelState, p: IdParts, value: bigint): void {
  switch (p.type) {
    case T.CONFIG: {
      setConfig(st, p, value);
      return;
    }
    case T.CORE: {
      setCore(st, p, value);
      return;
    }
    case T.CSR: {
      setCsr(st, p, value);
      return;
    }
    case T.TIMER: {
      setTimer(st, p, value);
      return;
    }
    case T.FP_F: {
      setFpF(st, p, value);
      return;
    }
    case T.FP_D: {
      setFpD(st, p, value);
      return;
    }
    case T.ISA_EXT:
    case T.SBI_EXT: {
      setExtReg(st, p, value);
      return;
    }
    case T.VECTOR:
      return fail(ERRNO.ENOENT);
    case T.SBI_STATE:
      return fail(ERRNO.EINVAL);
    default:
      return fail(ERRNO.ENOENT);
  }
}

// CONFIG (struct kvm_riscv_config): isa 0, zicbom 1, mvendorid 2, marchid 3, mimpid 4,
// zicboz 5, satp_mode 6, zicbop 7. The host lacks Zicbo*, so 1, 5 and 7 are ENOENT.

/** The CONFIG `isa` value: enabled single-letter extensions, bit = letter. */
export function isaLetters(st: KernelState): bigint {
  let bits = 0;
  for (let letter = 0; letter < 26; letter++) {
    const ext = letterToIsaExt(letter);
    if (ext < ISA_EXT_MAX && st.isa[ext] === 1) bits |= 1 << letter;
  }
  return BigInt(bits);
}

function getConfig(st: KernelState, p: IdParts): bigint {
  if (p.size !== ULONG) fail(ERRNO.EINVAL);
  switch (p.flat) {
    case 0:
      return isaLetters(st);
    case 2:
      return st.ids.mvendorid;
    case 3:
      return st.ids.marchid;
    case 4:
      return st.ids.mimpid;
    case 6:
      return SATP_MODE_SV39;
    default:
      return fail(ERRNO.ENOENT);
  }
}

function setConfig(st: KernelState, p: IdParts, value: bigint): void {
  if (p.size !== ULONG) fail(ERRNO.EINVAL);
  switch (p.flat) {
    case 0: {
      setIsaConfig(st, value);
      return;
    }
    case 2:
    case 3:
    case 4: {
      const key = p.flat === 2 ? "mvendorid" : p.flat === 3 ? "marchid" : "mimpid";
      if (value === st.ids[key]) return;
      if (st.ranOnce) fail(ERRNO.EBUSY);
      st.ids[key] = value;
      return;
    }
    case 6:
      if (value !== SATP_MODE_SV39) fail(ERRNO.EINVAL);
      return;
    default:
      fail(ERRNO.ENOENT);
  }
}

function setIsaConfig(st: KernelState, value: bigint): void {
  // "fls(reg_val) >= RISCV_ISA_EXT_BASE": only bits 0..24 may be set.
  if (value >= 1n << 25n) fail(ERRNO.EINVAL);
  if (value === isaLetters(st)) return;
  if (st.ranOnce) fail(ERRNO.EBUSY);
  let bits = Number(value);
  for (let letter = 0; letter < 26; letter++) {
    const ext = letterToIsaExt(letter);
    const bit = 1 << letter;
    if (ext >= ISA_EXT_MAX) {
      bits &= ~bit;
      continue;
    }
    if (!isaEnableAllowed(ext) && (bits & bit) !== 0) bits &= ~bit;
    if (!isaDisableAllowed(ext) && (bits & bit) === 0) bits |= bit;
  }
  bits &= HOST_BASE_LETTERS & ISA_LETTER_MASK;
  for (let letter = 0; letter < 26; letter++) {
    const ext = letterToIsaExt(letter);
    if (ext < ISA_EXT_MAX) st.isa[ext] = (bits >> letter) & 1;
  }
  st.isaChanged();
}

// CORE (struct kvm_riscv_core): 0 pc (the resume address), 1..31 x1..x31, 32 mode.

function getCore(st: KernelState, p: IdParts): bigint {
  if (p.size !== ULONG) fail(ERRNO.EINVAL);
  const n = p.flat;
  if (n === 0) return st.hart.getPc();
  if (n >= 1 && n <= 31) return st.hart.getX(n);
  if (n === 32) return BigInt(st.hart.getMode());
  return fail(ERRNO.ENOENT);
}

function setCore(st: KernelState, p: IdParts, value: bigint): void {
  if (p.size !== ULONG) fail(ERRNO.EINVAL);
  const n = p.flat;
  if (n === 0) st.hart.setPc(value);
  else if (n >= 1 && n <= 31) st.hart.setX(n, value);
  else if (n === 32) st.hart.setMode(value === 1n ? 1 : 0);
  else fail(ERRNO.ENOENT);
}

// CSR: GENERAL (struct kvm_riscv_csr), AIA (7 regs, zeros on a host without AIA), SMSTATEEN.

const CSR_SUB = { GENERAL: 0, AIA: 1, SMSTATEEN: 2 } as const;
const AIA_REGS = 7;

function getCsr(st: KernelState, p: IdParts): bigint {
  if (p.size !== ULONG) fail(ERRNO.EINVAL);
  switch (p.subtype) {
    case CSR_SUB.GENERAL: {
      const name = GENERAL_CSRS[p.index];
      if (p.index < 0 || name === undefined) return fail(ERRNO.ENOENT);
      // KVM's hrtimer raises STIP even while the vCPU is out of KVM_RUN.
      if (name === "sip") st.timer.poll(st.hart, st.shared);
      const value = st.hart.getCsr(name);
      return name === "sip" ? value & SIP_MASK : value;
    }
    case CSR_SUB.AIA:
      if (p.index < 0 || p.index >= AIA_REGS) fail(ERRNO.ENOENT);
      return 0n;
    case CSR_SUB.SMSTATEEN:
      return fail(ERRNO.EINVAL);
    default:
      return fail(ERRNO.ENOENT);
  }
}

function setCsr(st: KernelState, p: IdParts, value: bigint): void {
  if (p.size !== ULONG) fail(ERRNO.EINVAL);
  switch (p.subtype) {
    case CSR_SUB.GENERAL: {
      const name = GENERAL_CSRS[p.index];
      if (p.index < 0 || name === undefined) return fail(ERRNO.ENOENT);
      st.hart.setCsr(name, name === "sip" ? value & SIP_MASK : value);
      return;
    }
    case CSR_SUB.AIA:
      if (p.index < 0 || p.index >= AIA_REGS) fail(ERRNO.ENOENT);
      return;
    case CSR_SUB.SMSTATEEN:
      return fail(ERRNO.EINVAL);
    default:
      return fail(ERRNO.ENOENT);
  }
}

// TIMER (struct kvm_riscv_timer, u64 even on RV32): frequency, time, compare, state.

function getTimer(st: KernelState, p: IdParts): bigint {
  if (p.size !== 8) fail(ERRNO.EINVAL);
  switch (p.flat) {
    case 0:
      return BigInt(TIMEBASE_HZ);
    case 1:
      return st.shared.guestTime();
    case 2:
      return st.timer.compare;
    case 3:
      st.timer.poll(st.hart, st.shared); // a due timer has already fired in KVM
      return st.timer.armed ? 1n : 0n;
    default:
      return fail(ERRNO.ENOENT);
  }
}

function setTimer(st: KernelState, p: IdParts, value: bigint): void {
  if (p.size !== 8) fail(ERRNO.EINVAL);
  switch (p.flat) {
    case 0:
      if (value !== BigInt(TIMEBASE_HZ)) fail(ERRNO.EINVAL);
      return;
    case 1:
      st.shared.setGuestTime(value);
      return;
    case 2:
      st.timer.compare = value;
      return;
    case 3:
      // vcpu_timer.c passes the written value itself to timer_next_event.
      if (value === 1n) st.timer.nextEvent(st.hart, value);
      else if (!st.timer.cancel()) fail(ERRNO.EINVAL);
      return;
    default:
      fail(ERRNO.ENOENT);
  }
}

// FP_F (u32 words of union __riscv_fp_state) and FP_D (f[0..31] u64, fcsr u32 at 32).

function getFpF(st: KernelState, p: IdParts): bigint {
  if (st.isa[F_ID] !== 1) fail(ERRNO.ENOENT);
  if (p.size !== 4) fail(ERRNO.EINVAL);
  if (p.flat < 0 || p.flat > 32) fail(ERRNO.ENOENT);
  if (st.isa[D_ID] === 1) {
    const word = p.flat;
    return (st.hart.getF(word >> 1) >> BigInt(32 * (word & 1))) & HALF_MASK;
  }
  return p.flat === 32 ? BigInt(st.hart.getFcsr()) : st.hart.getF(p.flat) & HALF_MASK;
}

function setFpF(st: KernelState, p: IdParts, value: bigint): void {
  if (st.isa[F_ID] !== 1) fail(ERRNO.ENOENT);
  if (p.size !== 4) fail(ERRNO.EINVAL);
  if (p.flat < 0 || p.flat > 32) fail(ERRNO.ENOENT);
  if (st.isa[D_ID] === 1) {
    const reg = p.flat >> 1;
    const shift = BigInt(32 * (p.flat & 1));
    const old = st.hart.getF(reg) & ~(HALF_MASK << shift);
    st.hart.setF(reg, BigInt.asUintN(64, old | (value << shift)));
  } else if (p.flat === 32) {
    st.hart.setFcsr(Number(value));
  } else {
    st.hart.setF(p.flat, (HALF_MASK << 32n) | value);
  }
}

function getFpD(st: KernelState, p: IdParts): bigint {
  if (st.isa[D_ID] !== 1) fail(ERRNO.ENOENT);
  if (p.flat === 32) {
    if (p.size !== 4) fail(ERRNO.EINVAL);
    return BigInt(st.hart.getFcsr());
  }
  if (p.flat < 0 || p.flat > 31) fail(ERRNO.ENOENT);
  if (p.size !== 8) fail(ERRNO.EINVAL);
  return st.hart.getF(p.flat);
}

function setFpD(st: KernelState, p: IdParts, value: bigint): void {
  if (st.isa[D_ID] !== 1) fail(ERRNO.ENOENT);
  if (p.flat === 32) {
    if (p.size !== 4) fail(ERRNO.EINVAL);
    st.hart.setFcsr(Number(value));
    return;
  }
  if (p.flat < 0 || p.flat > 31) fail(ERRNO.ENOENT);
  if (p.size !== 8) fail(ERRNO.EINVAL);
  st.hart.setF(p.flat, value);
}
