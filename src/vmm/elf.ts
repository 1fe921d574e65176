/**
 * ELF loader for guest images, written for untrusted files.
 *
 * Format (System V gABI, "ELF Header" and "Program Header"; field offsets as in Linux
 * include/uapi/linux/elf.h):
 *
 *   e_ident[16]  magic 7f 'E' 'L' 'F', EI_CLASS @4 (1 = 32-bit, 2 = 64-bit),
 *                EI_DATA @5 (1 = little-endian, 2 = big-endian), EI_VERSION @6 (= 1)
 *   e_type u16 @16, e_machine u16 @18, e_version u32 @20, then
 *     ELF32: e_entry u32 @24, e_phoff u32 @28, e_flags @36, e_ehsize u16 @40,
 *            e_phentsize @42, e_phnum @44                                  (header 52 bytes)
 *     ELF64: e_entry u64 @24, e_phoff u64 @32, e_flags @48, e_ehsize u16 @52,
 *            e_phentsize @54, e_phnum @56                                  (header 64 bytes)
 *   Program header, ELF32 (32 bytes): p_type @0, p_offset @4, p_vaddr @8, p_paddr @12,
 *     p_filesz @16, p_memsz @20, p_flags @24, p_align @28 (all u32)
 *   Program header, ELF64 (56 bytes): p_type u32 @0, p_flags u32 @4, p_offset @8,
 *     p_vaddr @16, p_paddr @24, p_filesz @32, p_memsz @40, p_align @48 (u64)
 *
 * Only PT_LOAD segments are loaded, at their *physical* addresses (p_paddr), as bare-metal
 * loaders do; `[p_filesz, p_memsz)` is zero-filled (.bss). Every length and offset is checked
 * against the file size before it is used, so only `ImageError` (or `RangeError` from a caller
 * mistake) escapes, whatever the bytes.
 */
import { ImageError, hex, type GuestImage, type ImageArch, type ImageSegment } from "./image.js";

/** e_machine values regvisor runs (include/uapi/linux/elf-em.h). */
export const EM = { I386: 3, X86_64: 62, RISCV: 243 } as const;

/** Names of other common machines, so a wrong-arch error says what the file is. */
const MACHINE_NAMES: Readonly<Record<number, string>> = {
  2: "SPARC",
  3: "Intel 80386",
  8: "MIPS",
  20: "PowerPC",
  21: "PowerPC64",
  22: "IBM S/390",
  40: "ARM",
  43: "SPARC V9",
  50: "IA-64",
  62: "x86-64",
  183: "AArch64",
  243: "RISC-V",
  247: "BPF",
  258: "LoongArch",
};

/** Human-readable name of an e_machine value, e.g. `"AArch64 (EM 183)"`. */
export function machineName(machine: number): string {
  return `${MACHINE_NAMES[machine] ?? "unknown machine"} (EM ${machine})`;
}

/** Program headers beyond this count are refused rather than walked (real images have < 20). */
export const MAX_PROGRAM_HEADERS = 1024;

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const;
const ELFCLASS32 = 1;
const ELFCLASS64 = 2;
const ELFDATA2LSB = 1;
const ELFDATA2MSB = 2;
const EV_CURRENT = 1;
const ET_REL = 1;
const ET_EXEC = 2;
const ET_DYN = 3;
const ET_CORE = 4;
const PT_LOAD = 1;
const PT_INTERP = 3;
const PF_X = 1;
/** e_phnum value meaning "the real count is in section header 0" (gABI, PN_XNUM). */
const PN_XNUM = 0xffff;

/** An ELF image: a `GuestImage` plus the header facts a VMM may want to print. */
export interface ElfImage extends GuestImage {
  readonly format: "elf";
  readonly arch: ImageArch;
  readonly bits: 32 | 64;
  /** e_machine. */
  readonly machine: number;
  /** e_flags (RISC-V: float ABI, RVC; see the psABI). */
  readonly flags: number;
  /** e_entry as written; `entry` is its physical translation (see `loadElf`). */
  readonly entryVirtual: bigint;
}

interface Header {
  readonly bits: 32 | 64;
  readonly machine: number;
  readonly entry: bigint;
  readonly phoff: bigint;
  readonly flags: number;
  readonly phentsize: number;
  readonly phnum: number;
}

interface LoadSegment extends ImageSegment {
  readonly vaddr: bigint;
  readonly executable: boolean;
}

/**
 * Parses an ELF file into a guest image (PT_LOAD segments by physical address, entry point).
 * When e_entry lies in an executable segment whose p_vaddr differs from p_paddr, the entry is
 * translated to the physical address (as QEMU's ELF loader does), since the guest starts with
 * paging off or identity-mapped.
 * @throws ImageError for any malformed, unsupported or foreign-architecture file.
 */
export function loadElf(bytes: Uint8Array): ElfImage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = readHeader(bytes, view);
  const arch = archFor(header);
  const segments = readSegments(bytes, view, header);
  if (segments.length === 0) {
    throw new ImageError("IMAGE_EMPTY", "Cannot load ELF image: it has no PT_LOAD segment");
  }
  const holder = segments.find(
    (s) =>
      s.executable &&
      s.vaddr !== s.addr &&
      header.entry >= s.vaddr &&
      header.entry < s.vaddr + BigInt(s.data.length),
  );
  const entry = holder === undefined ? header.entry : header.entry - holder.vaddr + holder.addr;
  return {
    format: "elf",
    arch,
    bits: header.bits,
    entry,
    entryVirtual: header.entry,
    machine: header.machine,
    flags: header.flags,
    segments: segments.map(({ label, addr, data, memSize }) => ({ label, addr, data, memSize })),
  };
}

/** True when the bytes start with the ELF magic (cheap format sniffing for the CLI). */
export function isElf(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && ELF_MAGIC.every((b, i) => bytes[i] === b);
}

/** e_machine of an ELF header's first 20 bytes, or undefined when `bytes` hold none. */
export function elfMachine(bytes: Uint8Array): number | undefined {
  if (!isElf(bytes) || bytes.length < 20) return undefined;
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(18, true);
}

function readHeader(bytes: Uint8Array, view: DataView): Header {
  const prefix = Math.min(bytes.length, ELF_MAGIC.length);
  for (let i = 0; i < prefix; i++) {
    if (bytes[i] !== ELF_MAGIC[i]) {
      throw new ImageError("IMAGE_BAD_MAGIC", "Cannot load image: not an ELF file (bad magic)");
    }
  }
  if (bytes.length < 16) truncated("the ELF identification", 16, bytes.length);
  const cls = view.getUint8(4);
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) bad(`unknown ELF class ${cls}`);
  const data = view.getUint8(5);
  if (data === ELFDATA2MSB) {
    throw new ImageError(
      "IMAGE_UNSUPPORTED",
      "Cannot load ELF image: it is big-endian; regvisor runs little-endian guests only",
    );
  }
  if (data !== ELFDATA2LSB) bad(`unknown ELF data encoding ${data}`);
  if (view.getUint8(6) !== EV_CURRENT) bad(`unknown ELF version ${view.getUint8(6)}`);
  const bits = cls === ELFCLASS64 ? 64 : 32;
  const ehsize = bits === 64 ? 64 : 52;
  if (bytes.length < ehsize) truncated("the ELF header", ehsize, bytes.length);
  checkType(view.getUint16(16, true));
  if (view.getUint32(20, true) !== EV_CURRENT) bad(`unknown e_version ${view.getUint32(20, true)}`);
  const word = (off: number): bigint =>
    bits === 64 ? view.getBigUint64(off, true) : BigInt(view.getUint32(off, true));
  const at = bits === 64 ? { phoff: 32, flags: 48, eh: 52 } : { phoff: 28, flags: 36, eh: 40 };
  const header: Header = {
    bits,
    machine: view.getUint16(18, true),
    entry: word(24),
    phoff: word(at.phoff),
    flags: view.getUint32(at.flags, true),
    phentsize: view.getUint16(at.eh + 2, true),
    phnum: view.getUint16(at.eh + 4, true),
  };
  const declaredEhsize = view.getUint16(at.eh, true);
  if (declaredEhsize < ehsize) bad(`e_ehsize is ${declaredEhsize}, expected at least ${ehsize}`);
  return header;
}

function checkType(type: number): void {
  if (type === ET_EXEC || type === ET_DYN) return;
  if (type === ET_REL) {
    throw new ImageError(
      "IMAGE_UNSUPPORTED",
      "Cannot load ELF image: it is a relocatable object (ET_REL); link it into an executable first",
    );
  }
  if (type === ET_CORE) {
    throw new ImageError("IMAGE_UNSUPPORTED", "Cannot load ELF image: it is a core dump (ET_CORE)");
  }
  bad(`unknown e_type ${type}`);
}

function archFor(header: Header): ImageArch {
  const { machine, bits } = header;
  if (machine === EM.X86_64 && bits === 64) return "x86";
  if (machine === EM.I386 && bits === 32) return "x86";
  if (machine === EM.RISCV && bits === 64) return "riscv";
  if (machine === EM.RISCV) {
    throw new ImageError(
      "IMAGE_WRONG_ARCH",
      "Cannot load ELF image: it is 32-bit RISC-V (RV32); the soft backend runs RV64 guests only",
    );
  }
  if (machine === EM.X86_64 || machine === EM.I386) {
    bad(`${machineName(machine)} with ${bits}-bit ELF class`);
  }
  throw new ImageError(
    "IMAGE_WRONG_ARCH",
    `Cannot load ELF image: it is for ${machineName(machine)}; regvisor runs x86 (EM 62, EM 3) and 64-bit RISC-V (EM 243) guests`,
  );
}

function readSegments(bytes: Uint8Array, view: DataView, header: Header): LoadSegment[] {
  const { bits, phnum, phentsize, phoff } = header;
  if (phnum === 0) {
    throw new ImageError("IMAGE_EMPTY", "Cannot load ELF image: it has no program headers");
  }
  if (phnum === PN_XNUM || phnum > MAX_PROGRAM_HEADERS) {
    bad(`e_phnum is ${phnum}, more than the ${MAX_PROGRAM_HEADERS} program headers accepted`);
  }
  const expected = bits === 64 ? 56 : 32;
  if (phentsize !== expected) bad(`e_phentsize is ${phentsize}, expected ${expected}`);
  const tableEnd = phoff + BigInt(phnum * phentsize);
  if (tableEnd > BigInt(bytes.length)) {
    truncated(`the program header table (${hex(phoff)}..${hex(tableEnd)})`, tableEnd, bytes.length);
  }
  const segments: LoadSegment[] = [];
  for (let i = 0; i < phnum; i++) {
    const segment = readSegment(bytes, view, bits, Number(phoff) + i * phentsize, i);
    if (segment !== undefined) segments.push(segment);
  }
  return segments;
}

function readSegment(
  bytes: Uint8Array,
  view: DataView,
  bits: 32 | 64,
  at: number,
  index: number,
): LoadSegment | undefined {
  const type = view.getUint32(at, true);
  if (type === PT_INTERP) {
    throw new ImageError(
      "IMAGE_UNSUPPORTED",
      "Cannot load ELF image: it is a dynamically linked program (PT_INTERP); regvisor runs bare-metal guests, link with -nostdlib -static",
    );
  }
  if (type !== PT_LOAD) return undefined;
  const w64 = bits === 64;
  const word = (off: number): bigint =>
    w64 ? view.getBigUint64(at + off, true) : BigInt(view.getUint32(at + off, true));
  const offset = word(w64 ? 8 : 4);
  const vaddr = word(w64 ? 16 : 8);
  const paddr = word(w64 ? 24 : 12);
  const filesz = word(w64 ? 32 : 16);
  const memsz = word(w64 ? 40 : 20);
  const flags = view.getUint32(at + (w64 ? 4 : 24), true);
  const label = `ELF segment ${index}`;
  if (filesz > memsz) {
    throw new ImageError(
      "IMAGE_BAD_SEGMENT",
      `Cannot load ELF image: ${label} has p_filesz ${hex(filesz)} larger than p_memsz ${hex(memsz)}`,
    );
  }
  if (memsz === 0n) return undefined;
  const limit = 1n << BigInt(bits);
  if (paddr + memsz > limit || vaddr + memsz > limit) {
    throw new ImageError(
      "IMAGE_BAD_SEGMENT",
      `Cannot load ELF image: ${label} (${hex(memsz)} bytes at ${hex(paddr)}) runs past the end of the ${bits}-bit address space`,
    );
  }
  if (offset + filesz > BigInt(bytes.length)) {
    truncated(
      `${label} (file bytes ${hex(offset)}..${hex(offset + filesz)})`,
      offset + filesz,
      bytes.length,
    );
  }
  const start = Number(offset);
  const data = bytes.subarray(start, start + Number(filesz));
  return { label, addr: paddr, data, memSize: memsz, vaddr, executable: (flags & PF_X) !== 0 };
}

function bad(detail: string): never {
  throw new ImageError("IMAGE_BAD_HEADER", `Cannot load ELF image: ${detail}`);
}

function truncated(what: string, needed: bigint | number, length: number): never {
  throw new ImageError(
    "IMAGE_TRUNCATED",
    `Cannot load ELF image: the file ends before ${what} (needs ${needed} bytes, has ${length})`,
  );
}
