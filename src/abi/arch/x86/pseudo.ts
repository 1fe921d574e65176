/**
 * regvisor's x86 pseudo-registers (docs/DESIGN.md §3): each state struct that KVM moves with its
 * own ioctl (REGS, SREGS, FPU, XSAVE, …) is presented as one register, so that snapshot,
 * migration, MANY_REGS and the gdbstub can "list, then move bytes" on x86 as on other arches.
 *
 * Id layout: the x86 arch byte, a size code, bits 51..40 zero, type 0xff (bits 39..32) and the
 * struct number as index. 6.18's kvm_get_set_one_reg() rejects every type other than 2 (MSR)
 * and 3 (KVM) with EINVAL, so a pseudo id can never alias a kernel register — and regvisor
 * never sends one to the kernel: the KVM backend routes `isPseudoRegId()` ids to the struct
 * ioctl instead. The size code is the smallest power of two ≥ the struct size; the value is
 * the struct's bytes (x86-64 layout, little-endian) followed by zero padding.
 *
 * CPUID holds a `struct kvm_cpuid2` with room for KVM_MAX_CPUID_ENTRIES (256, the most
 * KVM_SET_CPUID2 accepts): 8 + 40 × 256 = 10248 bytes, padded to 16384; `nent` says how many
 * entries are valid. TSC_KHZ is the u64 that KVM_GET_TSC_KHZ returns / KVM_SET_TSC_KHZ takes.
 */
import type { IoctlName } from "../../kvm/ioctls.js";
import type { RegId } from "../../regid.js";
import { makeRegId } from "../../regid.js";
import { X86_REG_TYPE, isX86Id, x86IdParts } from "./ids.js";

/** `KVM_MAX_CPUID_ENTRIES`: capacity of the CPUID pseudo-register's kvm_cpuid2. */
export const PSEUDO_CPUID_CAPACITY = 256;

/** What one pseudo-register stands for. */
export interface PseudoSpec {
  /** Index field of the id (stable: part of the snapshot format). */
  readonly index: number;
  /** C struct carried (`"u64"` for TSC_KHZ). */
  readonly struct: string;
  /** Meaningful bytes at the start of the value; the rest is zero padding. */
  readonly structSize: number;
  /** The ioctl that reads it. */
  readonly get: IoctlName;
  /** The ioctl that writes it. */
  readonly set: IoctlName;
}

// Sizes are the x86-64 sizeof() values pinned in test/abi/kvm/layouts.test.ts.
const SPECS = {
  REGS: { index: 0, struct: "kvm_regs", structSize: 144, get: "KVM_GET_REGS", set: "KVM_SET_REGS" },
  SREGS: {
    index: 1,
    struct: "kvm_sregs",
    structSize: 312,
    get: "KVM_GET_SREGS",
    set: "KVM_SET_SREGS",
  },
  FPU: { index: 2, struct: "kvm_fpu", structSize: 416, get: "KVM_GET_FPU", set: "KVM_SET_FPU" },
  XSAVE: {
    index: 3,
    struct: "kvm_xsave",
    structSize: 4096,
    get: "KVM_GET_XSAVE",
    set: "KVM_SET_XSAVE",
  },
  XCRS: { index: 4, struct: "kvm_xcrs", structSize: 392, get: "KVM_GET_XCRS", set: "KVM_SET_XCRS" },
  VCPU_EVENTS: {
    index: 5,
    struct: "kvm_vcpu_events",
    structSize: 64,
    get: "KVM_GET_VCPU_EVENTS",
    set: "KVM_SET_VCPU_EVENTS",
  },
  MP_STATE: {
    index: 6,
    struct: "kvm_mp_state",
    structSize: 4,
    get: "KVM_GET_MP_STATE",
    set: "KVM_SET_MP_STATE",
  },
  DEBUGREGS: {
    index: 7,
    struct: "kvm_debugregs",
    structSize: 128,
    get: "KVM_GET_DEBUGREGS",
    set: "KVM_SET_DEBUGREGS",
  },
  LAPIC: {
    index: 8,
    struct: "kvm_lapic_state",
    structSize: 1024,
    get: "KVM_GET_LAPIC",
    set: "KVM_SET_LAPIC",
  },
  CPUID: {
    index: 9,
    struct: "kvm_cpuid2",
    structSize: 8 + 40 * PSEUDO_CPUID_CAPACITY,
    get: "KVM_GET_CPUID2",
    set: "KVM_SET_CPUID2",
  },
  TSC_KHZ: {
    index: 10,
    struct: "u64",
    structSize: 8,
    get: "KVM_GET_TSC_KHZ",
    set: "KVM_SET_TSC_KHZ",
  },
} as const satisfies Record<string, PseudoSpec>;

/** Name of an x86 pseudo-register, e.g. `"SREGS"`. */
export type X86PseudoName = keyof typeof SPECS;

/** A pseudo-register: its spec plus its id. */
export interface X86PseudoReg extends PseudoSpec {
  readonly name: X86PseudoName;
  readonly id: RegId;
  /** Value size in bytes (the id's size): a power of two ≥ `structSize`. */
  readonly size: number;
}

function pow2AtLeast(n: number): number {
  let size = 1;
  while (size < n) size *= 2;
  return size;
}

/** Builds the id of pseudo-register `index` whose value is `size` bytes. */
export function pseudoRegId(index: number, size: number): RegId {
  return makeRegId("x86", size, (BigInt(X86_REG_TYPE.PSEUDO) << 32n) | BigInt(index));
}

/** Every x86 pseudo-register by name. */
export const X86_PSEUDO: Readonly<Record<X86PseudoName, X86PseudoReg>> = Object.freeze(
  Object.fromEntries(
    (Object.keys(SPECS) as X86PseudoName[]).map((name) => {
      const spec = SPECS[name];
      const size = pow2AtLeast(spec.structSize);
      return [name, Object.freeze({ name, ...spec, size, id: pseudoRegId(spec.index, size) })];
    }),
  ) as Record<X86PseudoName, X86PseudoReg>,
);

/** Pseudo-registers in index order. */
export const X86_PSEUDO_LIST: readonly X86PseudoReg[] = Object.values(X86_PSEUDO).sort(
  (a, b) => a.index - b.index,
);

/**
 * True for any id in regvisor's x86 pseudo range (x86 arch byte, type 0xff), known or not.
 * The KVM backend must never pass such an id to KVM_GET/SET_ONE_REG.
 */
export function isPseudoRegId(id: RegId): boolean {
  return isX86Id(id) && x86IdParts(id).type === X86_REG_TYPE.PSEUDO;
}

/** The pseudo-register with exactly this id, or undefined. */
export function pseudoRegById(id: RegId): X86PseudoReg | undefined {
  return X86_PSEUDO_LIST.find((reg) => reg.id === id);
}

/**
 * Pads struct bytes to the pseudo-register's value size.
 * @throws {RangeError} unless `structBytes` is exactly `reg.structSize` long.
 */
export function pseudoValueFromStruct(reg: X86PseudoReg, structBytes: Uint8Array): Uint8Array {
  if (structBytes.length !== reg.structSize) {
    throw new RangeError(
      `${reg.name} needs ${reg.structSize} struct bytes, got ${structBytes.length}`,
    );
  }
  const value = new Uint8Array(reg.size);
  value.set(structBytes);
  return value;
}

/**
 * True when every byte is 0. A word loop where the view is 4-byte aligned: the CPUID
 * pseudo-register carries ~14 KiB of padding, and a per-byte callback (`some`) dominated a
 * whole-vCPU restore.
 */
function allZero(bytes: Uint8Array): boolean {
  let i = 0;
  if (bytes.byteOffset % 4 === 0) {
    const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
    const n = words.length;
    // Four words per test: one branch per 16 bytes (CPUID's padding is ~6 KiB per restore).
    for (; i + 4 <= n; i += 4) {
      if (((words[i] ?? 0) | (words[i + 1] ?? 0) | (words[i + 2] ?? 0) | (words[i + 3] ?? 0)) !== 0)
        return false;
    }
    for (; i < n; i++) if (words[i] !== 0) return false;
    i *= 4;
  }
  for (; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

/**
 * The struct bytes inside a pseudo-register value (a copy).
 * @throws {RangeError} unless `value` is exactly `reg.size` long and its padding is zero.
 */
export function structFromPseudoValue(reg: X86PseudoReg, value: Uint8Array): Uint8Array {
  return pseudoStructView(reg, value).slice();
}

/**
 * The struct bytes inside a pseudo-register value, as a view (no copy): for callers that
 * hand them straight to the kernel.
 * @throws {RangeError} unless `value` is exactly `reg.size` long and its padding is zero.
 */
export function pseudoStructView(reg: X86PseudoReg, value: Uint8Array): Uint8Array {
  if (value.length !== reg.size) {
    throw new RangeError(`${reg.name} value must be ${reg.size} bytes, got ${value.length}`);
  }
  if (!allZero(value.subarray(reg.structSize))) {
    throw new RangeError(`${reg.name} value has non-zero padding after byte ${reg.structSize}`);
  }
  return value.subarray(0, reg.structSize);
}
