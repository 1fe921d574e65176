/**
 * Test helper: builds small ELF files byte by byte (System V gABI layouts, see
 * src/vmm/elf.ts), with overrides for every field the loader checks so tests can make them
 * wrong one at a time.
 */

/** One program header. Omitted fields get consistent values. */
export interface SegSpec {
  readonly type?: number;
  readonly paddr: bigint;
  readonly vaddr?: bigint;
  readonly data?: Uint8Array;
  readonly memsz?: bigint;
  readonly flags?: number;
  /** Override p_offset (default: where the data is placed). */
  readonly offset?: bigint;
  /** Override p_filesz (default: data.length). */
  readonly filesz?: bigint;
}

/** A whole file. */
export interface ElfSpec {
  readonly bits: 32 | 64;
  readonly machine: number;
  readonly entry: bigint;
  readonly segments: readonly SegSpec[];
  readonly bigEndian?: boolean;
  readonly type?: number;
  readonly phentsize?: number;
  readonly phnum?: number;
  readonly phoff?: bigint;
}

/** e_machine numbers used in tests (include/uapi/linux/elf-em.h). */
export const EM_TEST = { I386: 3, ARM: 40, X86_64: 62, AARCH64: 183, RISCV: 243 } as const;

export const PT = { LOAD: 1, DYNAMIC: 2, INTERP: 3, NOTE: 4 } as const;
export const PF = { X: 1, W: 2, R: 4 } as const;

/** Serialises `spec`: header, program headers right after it, segment data 16-aligned. */
export function buildElf(spec: ElfSpec): Uint8Array {
  const w64 = spec.bits === 64;
  const ehsize = w64 ? 64 : 52;
  const phent = w64 ? 56 : 32;
  const phoff = ehsize;
  let cursor = phoff + phent * spec.segments.length;
  const placed = spec.segments.map((s) => {
    cursor = (cursor + 15) & ~15;
    const at = cursor;
    cursor += s.data?.length ?? 0;
    return at;
  });
  const out = new Uint8Array(cursor);
  const view = new DataView(out.buffer);
  const le = spec.bigEndian !== true;
  const word = (at: number, v: bigint): void => {
    if (w64) view.setBigUint64(at, v, le);
    else view.setUint32(at, Number(v & 0xffff_ffffn), le);
  };
  out.set([0x7f, 0x45, 0x4c, 0x46, w64 ? 2 : 1, le ? 1 : 2, 1], 0);
  view.setUint16(16, spec.type ?? 2, le);
  view.setUint16(18, spec.machine, le);
  view.setUint32(20, 1, le);
  word(24, spec.entry);
  word(w64 ? 32 : 28, spec.phoff ?? BigInt(phoff));
  view.setUint16(w64 ? 52 : 40, ehsize, le);
  view.setUint16(w64 ? 54 : 42, spec.phentsize ?? phent, le);
  view.setUint16(w64 ? 56 : 44, spec.phnum ?? spec.segments.length, le);
  spec.segments.forEach((s, i) => {
    const at = phoff + i * phent;
    const data = s.data ?? new Uint8Array(0);
    const filesz = s.filesz ?? BigInt(data.length);
    const fields = {
      offset: s.offset ?? BigInt(placed[i] ?? 0),
      vaddr: s.vaddr ?? s.paddr,
      paddr: s.paddr,
      filesz,
      memsz: s.memsz ?? filesz,
    };
    view.setUint32(at, s.type ?? PT.LOAD, le);
    const flags = s.flags ?? PF.R | PF.X;
    if (w64) {
      view.setUint32(at + 4, flags, le);
      word(at + 8, fields.offset);
      word(at + 16, fields.vaddr);
      word(at + 24, fields.paddr);
      word(at + 32, fields.filesz);
      word(at + 40, fields.memsz);
      word(at + 48, 0x1000n);
    } else {
      word(at + 4, fields.offset);
      word(at + 8, fields.vaddr);
      word(at + 12, fields.paddr);
      word(at + 16, fields.filesz);
      word(at + 20, fields.memsz);
      view.setUint32(at + 24, flags, le);
      word(at + 28, 0x1000n);
    }
    out.set(data, placed[i] ?? 0);
  });
  return out;
}

/** `n` bytes 1, 2, 3, … (mod 256, never 0 so zero-fill is visible). */
export function pattern(n: number, seed = 1): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => ((i + seed) % 255) + 1);
}
