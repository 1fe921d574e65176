/**
 * The x86 pseudo-registers by field: which named values sit where in each state struct, so that
 * people (`--dump-regs`, `inspect --values`, `diff`, `regs decode`) and the gdbstub see `rip`,
 * `cr3`, `xmm0` instead of struct bytes.
 *
 * The tables are derived from the struct layouts (../../kvm/layouts-x86.ts, by the C name each
 * pseudo-register carries), then refined: kernel byte arrays split into registers (`fpr` into
 * st0–st7, `xmm` into xmm0–xmm15), GDB's names attached, bit fields added where GDB splits a
 * kernel field (`last_ip` into fioff/fiseg). Every byte of a value belongs to exactly one
 * storage field: bytes no member names (APIC page holes, the zero padding after the struct)
 * become `reserved@0x…` fields, so a diff can always name what changed.
 *
 * GDB names: org.gnu.gdb.i386.core/sse/segments/avx (gdb/features/i386/64bit-*.xml, as
 * `maint print registers` lists them for i386:x86-64); cr0…efer as QEMU's x86 gdbstub names the
 * system registers. GDB's size can differ from the kernel's (eflags and the selectors are 32
 * bits in GDB, 64/16 in KVM); `ftwx` is the abridged tag (one bit per register, FXSAVE form),
 * not GDB's 16-bit `ftag`, so it carries no GDB name.
 */
import { KVM_MP_STATE } from "../../kvm/constants.js";
import type { Layout } from "../../kvm/layout.js";
import { LAYOUTS } from "../../kvm/layouts.js";
import {
  KVM_CPUID2,
  KVM_CPUID_ENTRY2,
  KVM_XSAVE,
  LAPIC_REGISTER_OFFSETS,
  XSAVE_AVX_OFFSET,
  XSAVE_HEADER,
  XSAVE_LEGACY_AREA,
} from "../../kvm/layouts-x86.js";
import { decodeLE } from "../../value.js";
import { lazy } from "../table.js";
import { PSEUDO_CPUID_CAPACITY, X86_PSEUDO_LIST, type X86PseudoReg } from "./pseudo.js";

/** How a field's bytes read: an unsigned little-endian integer, an x87 80-bit real, or raw bytes. */
export type X86FieldFormat = "uint" | "float80" | "bytes";

/** Where one named value sits in a pseudo-register value. */
export interface X86FieldSpec {
  /** Name within the pseudo-register, e.g. `rip`, `cs.selector`, `st0`, `entries[3].eax`. */
  readonly name: string;
  /** GDB's register name, where GDB has one for this value. */
  readonly gdbName?: string;
  /** Byte offset of the storage in the value. */
  readonly offset: number;
  /** Byte size of the storage. */
  readonly size: number;
  /** Width in bits: `8 × size`, or less for a bit field of the storage. */
  readonly bits: number;
  /** Lowest bit of a bit field within its storage (absent for whole-storage fields). */
  readonly lsb?: number;
  readonly format: X86FieldFormat;
  /** Padding, reserved bytes, and table entries past the valid count. */
  readonly reserved: boolean;
  /**
   * Set on a value computed from other fields rather than stored (`ftag`, GDB's full x87 tag
   * word, from the abridged `ftwx`, `fsw` and st0–st7); `offset`/`size` name the stored field
   * a write changes.
   */
  readonly derived?: true;
  /** Names of the values an enumerated field can hold (`mp_state`: `KVM_MP_STATE_*`). */
  readonly symbols?: Readonly<Record<number, string>>;
}

/** A field with its value: `bigint` for uint/float80, a byte copy for `bytes`. */
export interface X86Field extends X86FieldSpec {
  readonly value: bigint | Uint8Array;
}

type Spec = X86FieldSpec;

const RESERVED_NAME = /(^|\.)(pad\w*|padding|reserved)(\[\d+\])?$/;

function leaf(name: string, offset: number, size: number, format: X86FieldFormat): Spec {
  return { name, offset, size, bits: 8 * size, format, reserved: RESERVED_NAME.test(name) };
}

/** Every scalar or byte-array member of `layout`, nested structs and arrays expanded. */
function flatten(layout: Layout, prefix: string, base: number, out: Spec[]): Spec[] {
  for (const [name, field] of Object.entries(layout.fields)) {
    const at = base + field.offset;
    if (field.type === "bytes") {
      out.push(leaf(prefix + name, at, field.size, "bytes"));
      continue;
    }
    const count = field.count ?? 1;
    const stride = count === 0 ? 0 : field.size / count;
    for (let i = 0; i < count; i++) {
      const path = prefix + name + (field.count === undefined ? "" : `[${i}]`);
      if (field.layout === undefined) out.push(leaf(path, at + i * stride, stride, "uint"));
      else flatten(field.layout, path + ".", at + i * stride, out);
    }
  }
  return out;
}

/** Replaces the byte array `name` by `count` registers of `size` bytes each (plus their pads). */
function split(
  specs: Spec[],
  name: string,
  count: number,
  stride: number,
  make: (i: number, at: number) => Spec[],
): Spec[] {
  return specs.flatMap((s) =>
    s.name === name
      ? Array.from({ length: count }, (_, i) => make(i, s.offset + i * stride)).flat()
      : [s],
  );
}

function withGdb(specs: Spec[], names: Readonly<Record<string, string>>): Spec[] {
  return specs.map((s) => {
    const gdb = names[s.name];
    return gdb === undefined ? s : { ...s, gdbName: gdb };
  });
}

/** Adds bit fields right after their storage field. */
function withBits(
  specs: Spec[],
  fields: readonly (readonly [of: string, name: string, lsb: number, bits: number, gdb: string])[],
): Spec[] {
  return specs.flatMap((s) => [
    s,
    ...fields
      .filter(([of]) => of === s.name)
      .map(([, name, lsb, bits, gdbName]) => ({ ...s, name, lsb, bits, gdbName, reserved: false })),
  ]);
}

const MP_STATE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(KVM_MP_STATE).map(([name, value]) => [value, name]),
);

const SEGMENTS = ["cs", "ss", "ds", "es", "fs", "gs"] as const;
const SREGS_GDB: Readonly<Record<string, string>> = {
  ...Object.fromEntries(SEGMENTS.map((seg) => [`${seg}.selector`, seg])),
  "fs.base": "fs_base",
  "gs.base": "gs_base",
  ...Object.fromEntries(["cr0", "cr2", "cr3", "cr4", "cr8", "efer"].map((r) => [r, r])),
};

const REGS_GDB: Readonly<Record<string, string>> = {
  ...Object.fromEntries(
    ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp", "rip"].map((r) => [r, r]),
  ),
  ...Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`r${i + 8}`, `r${i + 8}`])),
  rflags: "eflags",
};

/** x87/SSE names shared by kvm_fpu and the XSAVE legacy area (same member names in both). */
const X87_GDB: Readonly<Record<string, string>> = {
  fcw: "fctrl",
  fsw: "fstat",
  last_opcode: "fop",
  mxcsr: "mxcsr",
};

// GDB splits the x87 instruction and operand pointers as the 32-bit FXSAVE image lays them out:
// offset in bytes 0..3, selector in bytes 4..5 (gdb/i387-tdep.c fxsave_offset); with a 64-bit
// FXSAVE those bytes are bits 0..31 and 32..47 of KVM's last_ip / last_dp.
const X87_POINTERS = [
  ["last_ip", "fioff", 0, 32, "fioff"],
  ["last_ip", "fiseg", 32, 16, "fiseg"],
  ["last_dp", "fooff", 0, 32, "fooff"],
  ["last_dp", "foseg", 32, 16, "foseg"],
] as const;

/** `fpr` (8 × 16 bytes, 80-bit registers) and `xmm` (16 × 16 bytes) split into registers. */
function x87Registers(specs: Spec[]): Spec[] {
  const st = split(specs, "fpr", 8, 16, (i, at) => [
    { ...leaf(`st${i}`, at, 10, "float80"), gdbName: `st${i}` },
    { ...leaf(`st${i}_pad`, at + 10, 6, "bytes"), reserved: true },
  ]);
  const xmm = split(st, "xmm", 16, 16, (i, at) => [
    { ...leaf(`xmm${i}`, at, 16, "uint"), gdbName: `xmm${i}` },
  ]);
  const full = withBits(withGdb(xmm, X87_GDB), X87_POINTERS);
  return full.flatMap((f) =>
    f.name === "ftwx"
      ? [f, { ...f, name: "ftag", gdbName: "ftag", bits: 16, derived: true as const }]
      : [f],
  );
}

function xsaveSpecs(): Spec[] {
  const legacy = x87Registers(flatten(XSAVE_LEGACY_AREA, "", 0, []));
  const header = flatten(XSAVE_HEADER, "", XSAVE_LEGACY_AREA.size, []);
  const ymmh = Array.from({ length: 16 }, (_, i) => ({
    ...leaf(`ymm${i}h`, XSAVE_AVX_OFFSET + 16 * i, 16, "uint"),
    gdbName: `ymm${i}h`,
  }));
  // Components past AVX (MPX, AVX-512, PKRU, …) sit at CPU-specific offsets (CPUID leaf 0xD).
  const end = XSAVE_AVX_OFFSET + 16 * 16;
  const extended = leaf("extended", end, KVM_XSAVE.size - end, "bytes");
  return [...legacy, ...header, ...ymmh, extended];
}

function lapicSpecs(): Spec[] {
  return Object.entries(LAPIC_REGISTER_OFFSETS).flatMap(([name, at]) =>
    // ISR, TMR and IRR are 256-bit registers spread over eight 32-bit registers.
    ["isr", "tmr", "irr"].includes(name)
      ? Array.from({ length: 8 }, (_, i) => leaf(`${name}${i}`, at + 16 * i, 4, "uint"))
      : [leaf(name, at, 4, "uint")],
  );
}

function cpuidSpecs(): Spec[] {
  // kvm_cpuid2 ends in a flexible array; the pseudo-register holds PSEUDO_CPUID_CAPACITY entries.
  const header = flatten(KVM_CPUID2, "", 0, []);
  const entries: Spec[] = [];
  for (let i = 0; i < PSEUDO_CPUID_CAPACITY; i++) {
    const at = KVM_CPUID2.fields.entries.offset + KVM_CPUID_ENTRY2.size * i;
    flatten(KVM_CPUID_ENTRY2, `entries[${i}].`, at, entries);
  }
  return [...header, ...entries];
}

function structSpecs(reg: X86PseudoReg): Spec[] {
  switch (reg.name) {
    case "REGS":
      return withGdb(flatten(layoutOf(reg), "", 0, []), REGS_GDB);
    case "SREGS":
      return withGdb(flatten(layoutOf(reg), "", 0, []), SREGS_GDB);
    case "FPU":
      return x87Registers(flatten(layoutOf(reg), "", 0, []));
    case "XSAVE":
      return xsaveSpecs();
    case "DEBUGREGS":
      // The kernel's db[4] are DR0..DR3.
      return flatten(layoutOf(reg), "", 0, []).map((s) =>
        /^db\[\d\]$/.test(s.name) ? { ...s, name: s.name.replace(/\[(\d)\]/, "$1") } : s,
      );
    case "LAPIC":
      return lapicSpecs();
    case "CPUID":
      return cpuidSpecs();
    case "MP_STATE":
      return flatten(layoutOf(reg), "", 0, []).map((s) => ({ ...s, symbols: MP_STATE_NAMES }));
    case "TSC_KHZ":
      return [leaf("tsc_khz", 0, 8, "uint")];
    default:
      return flatten(layoutOf(reg), "", 0, []);
  }
}

function layoutOf(reg: X86PseudoReg): Layout {
  const layout = LAYOUTS[reg.struct];
  if (layout?.size !== reg.structSize) {
    throw new Error(`pseudo-register ${reg.name}: no ${reg.structSize}-byte layout ${reg.struct}`);
  }
  return layout;
}

/** Fills every byte no storage field covers with a reserved field, up to the value size. */
function fillGaps(specs: Spec[], size: number): Spec[] {
  const out: Spec[] = [];
  let cursor = 0;
  const gap = (end: number): void => {
    if (end <= cursor) return;
    const name = `reserved@0x${cursor.toString(16)}`;
    out.push({ ...leaf(name, cursor, end - cursor, "bytes"), reserved: true });
  };
  for (const s of specs) {
    if (s.lsb === undefined && s.derived !== true) {
      if (s.offset < cursor) throw new Error(`field ${s.name} overlaps the one before it`);
      gap(s.offset);
      cursor = s.offset + s.size;
    }
    out.push(s);
  }
  gap(size);
  return out;
}

// Built on first use: only a process that shows x86 state by field needs them.
const pseudoSpecs = lazy(
  (): ReadonlyMap<bigint, readonly Spec[]> =>
    new Map(
      X86_PSEUDO_LIST.map((reg) => [reg.id, Object.freeze(fillGaps(structSpecs(reg), reg.size))]),
    ),
);

/**
 * The fields of the pseudo-register `id` as laid out in a value (arrays at full capacity; which
 * CPUID/XCRS entries are valid depends on the value), or undefined for any other id.
 */
export function x86PseudoFieldSpecs(id: bigint): readonly X86FieldSpec[] | undefined {
  return pseudoSpecs().get(id);
}

function fieldValue(spec: Spec, bytes: Uint8Array): bigint | Uint8Array {
  if (spec.format === "bytes") return bytes.slice(spec.offset, spec.offset + spec.size);
  const storage = decodeLE(bytes, spec.offset, spec.size);
  if (spec.lsb === undefined) return storage;
  return (storage >> BigInt(spec.lsb)) & ((1n << BigInt(spec.bits)) - 1n);
}

const ENTRY = /^(entries|xcrs)\[(\d+)\]\.(\w+)$/;

/**
 * CPUID and XCRS hold a count and a fixed array: entries past the count are unused (reserved),
 * and a valid XCRS entry's value is named after its register (`xcr0`; arch/x86/kvm/x86.c
 * kvm_vcpu_ioctl_x86_get_xcrs() fills entry 0 with XCR0).
 */
function refine(reg: X86PseudoReg, spec: Spec, bytes: Uint8Array): Spec {
  if (reg.name !== "CPUID" && reg.name !== "XCRS") return spec;
  const match = ENTRY.exec(spec.name);
  if (match === null) return spec;
  const index = Number(match[2]);
  const count = Number(decodeLE(bytes, 0, 4));
  if (index >= count) return { ...spec, reserved: true };
  if (reg.name === "XCRS" && match[3] === "value") {
    return { ...spec, name: `xcr${decodeLE(bytes, spec.offset - 8, 4).toString()}` };
  }
  return spec;
}

/**
 * Decodes an x86 pseudo-register value into its fields, in offset order: `value` is the
 * register value (`regSize(id)` bytes) or just the struct (`structSize` bytes). Undefined when
 * `id` is not a known pseudo-register.
 * @throws {RangeError} if `value` has neither length.
 */
export function decodeX86PseudoFields(id: bigint, value: Uint8Array): X86Field[] | undefined {
  const reg = X86_PSEUDO_LIST.find((r) => r.id === id);
  const specs = pseudoSpecs().get(id);
  if (reg === undefined || specs === undefined) return undefined;
  if (value.length !== reg.size && value.length !== reg.structSize) {
    throw new RangeError(
      `Cannot decode ${reg.name}: the value must be ${reg.size} bytes (or the ${reg.structSize}-byte struct), got ${value.length}`,
    );
  }
  const fields = specs
    .filter((s) => s.offset + s.size <= value.length)
    .map((s): X86Field => {
      const spec = refine(reg, s, value);
      return { ...spec, value: fieldValue(spec, value) };
    });
  return fields.map((f) => (f.derived === true ? { ...f, value: fullTagWord(fields) } : f));
}

/** The x87 tag of one register's contents (Intel SDM vol. 1 §8.1.7, figure 8-7). */
function x87Tag(raw: bigint): bigint {
  const exponent = (raw >> 64n) & 0x7fffn;
  const integer = (raw >> 63n) & 1n;
  const fraction = raw & 0x7fff_ffff_ffff_ffffn;
  if (exponent === 0x7fffn) return 2n; // infinity, NaN: special
  if (exponent === 0n) return integer === 0n && fraction === 0n ? 1n : 2n; // zero, denormal
  return integer === 1n ? 0n : 2n; // valid, unnormal (special)
}

/**
 * GDB's `ftag` (the 16-bit tag word, two bits per physical register) from the abridged tag
 * FXSAVE/KVM keep (one bit per physical register: 1 = not empty): a non-empty register's tag
 * comes from its contents. The st fields are in stack order, so physical register p is
 * ST((p − TOP) mod 8), TOP = FSW bits 11..13 (SDM vol. 1 §10.5.1.1; gdb/i387-tdep.c does the
 * same when it reads an FXSAVE image).
 */
function fullTagWord(fields: readonly X86Field[]): bigint {
  const get = (name: string): bigint => {
    const v = fields.find((f) => f.name === name)?.value;
    return typeof v === "bigint" ? v : 0n;
  };
  const abridged = get("ftwx");
  const top = (get("fsw") >> 11n) & 7n;
  let tags = 0n;
  for (let p = 0n; p < 8n; p++) {
    const tag = ((abridged >> p) & 1n) === 0n ? 3n : x87Tag(get(`st${(p - top + 8n) % 8n}`));
    tags |= tag << (2n * p);
  }
  return tags;
}

/**
 * A copy of `value` with field `name` set to `to` (what a debugger's register write needs).
 * @throws {RangeError} if the id is no pseudo-register, the name no field of it, the value the
 *   wrong length, or `to` does not fit the field.
 */
export function withX86PseudoField(
  id: bigint,
  value: Uint8Array,
  name: string,
  to: bigint | Uint8Array,
): Uint8Array {
  const field = decodeX86PseudoFields(id, value)?.find((f) => f.name === name);
  if (field === undefined) {
    throw new RangeError(`Cannot set field "${name}": the register has no such field`);
  }
  const out = value.slice();
  if (to instanceof Uint8Array) {
    if (field.format !== "bytes" || to.length !== field.size) {
      throw new RangeError(`Cannot set ${name}: expected ${field.size} bytes, got ${to.length}`);
    }
    out.set(to, field.offset);
    return out;
  }
  if (field.derived === true) {
    if (to < 0n || to > 0xffffn) throw new RangeError(`Cannot set ${name}: ${to} is not 16 bits`);
    // Writing GDB's full tag word keeps only what FXSAVE holds: empty (3) or not.
    let abridged = 0n;
    for (let p = 0n; p < 8n; p++) if (((to >> (2n * p)) & 3n) !== 3n) abridged |= 1n << p;
    return withX86PseudoField(id, value, "ftwx", abridged);
  }
  if (field.format === "bytes" || to < 0n || to >= 1n << BigInt(field.bits)) {
    throw new RangeError(`Cannot set ${name}: ${to} does not fit in ${field.bits} bits`);
  }
  const lsb = BigInt(field.lsb ?? 0);
  const mask = ((1n << BigInt(field.bits)) - 1n) << lsb;
  let storage = (decodeLE(out, field.offset, field.size) & ~mask) | (to << lsb);
  for (let i = 0; i < field.size; i++, storage >>= 8n) {
    out[field.offset + i] = Number(storage & 0xffn);
  }
  return out;
}

/**
 * GDB registers that KVM keeps in an MSR rather than in a state struct, by x86 catalog name:
 * `k_gs_base` (QEMU's x86 gdbstub name) is IA32_KERNEL_GS_BASE, MSR 0xc0000102, the value
 * SWAPGS exchanges with gs_base.
 */
export const X86_GDB_MSRS: Readonly<Record<string, string>> = Object.freeze({
  k_gs_base: "KERNEL_GS_BASE",
});
