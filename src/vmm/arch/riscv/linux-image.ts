/**
 * The RISC-V Linux kernel `Image`, recognised by its 64-byte header (Documentation/arch/riscv/
 * boot.rst, "RISC-V Linux Kernel Image header"; arch/riscv/include/asm/image.h):
 *
 * ```
 * 0x00 u32 code0        0x04 u32 code1        0x08 u64 text_offset   0x10 u64 image_size
 * 0x18 u64 flags        0x20 u32 version      0x24 u32 res1          0x28 u64 res2
 * 0x30 u64 magic "RISCV\0\0\0" (deprecated)   0x38 u32 magic2 "RSC\x05"
 * 0x3c u32 res3 = the PE/COFF header offset when the kernel has the EFI stub ("MZ" at 0)
 * ```
 *
 * It is loaded as QEMU (`riscv_load_kernel`) and kvmtool (riscv/kvm.c) do: 2 MiB above the RAM
 * base on RV64, where `image_size` bytes (text, data and bss) must fit; execution starts at its
 * first byte in S-mode with a0 = hart id and a1 = the device tree. arm64 Images share the layout
 * with magic "ARM\x64" at 0x38 and are refused by name.
 */
import { ImageError, headOf, hex, type GuestFile, type GuestImage } from "../../image.js";

/** Offset and value of `magic2` ("RSC\x05", little-endian). */
const MAGIC2_OFFSET = 0x38;
const RISCV_MAGIC2 = 0x0543_5352;
/** arm64's magic at the same offset ("ARM\x64", Documentation/arch/arm64/booting.rst). */
const ARM64_MAGIC = 0x644d_5241;
const HEADER_BYTES = 0x40;
/** RV64 kernels are loaded 2 MiB above the RAM base (boot.rst; QEMU, kvmtool). */
export const RISCV_IMAGE_OFFSET = 2n << 20n;
/** A PE section header is 40 bytes; the section table follows the optional header. */
const PE_SECTION_BYTES = 40;

function u32(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at, true);
}

function u64(bytes: Uint8Array, at: number): bigint {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getBigUint64(at, true);
}

/** The Image header's magic2 word, or undefined when `file` is too short to hold one. */
function magic2(file: Uint8Array | GuestFile): number | undefined {
  const head = headOf(file);
  return head.length < MAGIC2_OFFSET + 4 ? undefined : u32(head, MAGIC2_OFFSET);
}

/** Whether `file` carries a Linux Image header (RISC-V or another arch's). */
export function isLinuxImage(file: Uint8Array | GuestFile): boolean {
  const magic = magic2(file);
  return magic === RISCV_MAGIC2 || magic === ARM64_MAGIC;
}

/** Whether `file` carries a RISC-V Linux Image header (magic2 "RSC\x05"). */
export function isRiscvLinuxImage(file: Uint8Array | GuestFile): boolean {
  return magic2(file) === RISCV_MAGIC2;
}

/** Bytes the EFI stub's PE sections say the file holds, or undefined without a PE header. */
function peFileEnd(file: Uint8Array): number | undefined {
  if (file[0] !== 0x4d || file[1] !== 0x5a) return undefined;
  const pe = u32(file, 0x3c);
  if (pe === 0 || pe + 24 > file.length || u32(file, pe) !== 0x0000_4550) return undefined;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const sections = view.getUint16(pe + 6, true);
  const table = pe + 24 + view.getUint16(pe + 20, true);
  let end = table + sections * PE_SECTION_BYTES;
  if (end > file.length) return end;
  for (let i = 0; i < sections; i++) {
    const at = table + i * PE_SECTION_BYTES;
    end = Math.max(end, u32(file, at + 20) + u32(file, at + 16));
  }
  return end;
}

/** Where the PE section table ends (0 without "MZ"): the header bytes `peFileEnd` reads. */
function peHeadersEnd(head: Uint8Array): number {
  if (head[0] !== 0x4d || head[1] !== 0x5a || head.length < HEADER_BYTES) return 0;
  const pe = u32(head, 0x3c);
  if (pe + 24 > head.length) return pe + 24;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  return pe + 24 + view.getUint16(pe + 20, true) + view.getUint16(pe + 6, true) * PE_SECTION_BYTES;
}

/**
 * A RISC-V Linux `Image` placed 2 MiB above `ramBase`; from a `GuestFile`, only its head is
 * read (unless its PE headers lie beyond it) and the segment is the file, read into RAM later.
 * @throws ImageError IMAGE_WRONG_ARCH for another arch's Image, IMAGE_TRUNCATED when the file
 *   ends before its header or its EFI sections, IMAGE_BAD_HEADER for an impossible image_size.
 */
export function loadLinuxImage(source: Uint8Array | GuestFile, ramBase: bigint): GuestImage {
  const size = source.length;
  // The PE headers follow the 64-byte header; in the rare file where they pass the head, read it all.
  const head = headOf(source);
  const file =
    source instanceof Uint8Array || peHeadersEnd(head) <= head.length ? head : source.readAll();
  if (file.length >= MAGIC2_OFFSET + 4 && u32(file, MAGIC2_OFFSET) === ARM64_MAGIC) {
    throw new ImageError(
      "IMAGE_WRONG_ARCH",
      "Cannot boot this Linux Image: it is an arm64 kernel (magic ARM\\x64), regvisor boots RISC-V Images",
    );
  }
  if (size < HEADER_BYTES) {
    throw new ImageError(
      "IMAGE_TRUNCATED",
      `Cannot boot this Linux Image: the file ends at ${size} bytes, inside the ${HEADER_BYTES}-byte header`,
    );
  }
  const imageSize = u64(file, 0x10);
  if (imageSize < BigInt(size) || imageSize >= 1n << 40n) {
    throw new ImageError(
      "IMAGE_BAD_HEADER",
      `Cannot boot this Linux Image: its header's image_size ${hex(imageSize)} is smaller than the file (${size} bytes) or absurd`,
    );
  }
  const peEnd = peFileEnd(file);
  if (peEnd !== undefined && peEnd > size) {
    throw new ImageError(
      "IMAGE_TRUNCATED",
      `Cannot boot this Linux Image: it is truncated (its EFI sections end at ${peEnd} bytes, the file at ${size})`,
    );
  }
  const addr = ramBase + RISCV_IMAGE_OFFSET;
  return {
    format: "linux",
    arch: "riscv",
    bits: 64,
    entry: addr,
    segments: [{ label: "the Linux Image", addr, data: source, memSize: imageSize }],
  };
}
