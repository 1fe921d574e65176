/**
 * Placing guest images into guest RAM.
 *
 * Guest RAM is one contiguous range `[base, base + size)`: base 0 on x86 (PC convention), base
 * 0x8000_0000 on RISC-V (QEMU `virt` and kvmtool; Linux `Image` is loaded 2 MiB above it, at
 * 0x8020_0000, leaving the first 2 MiB where firmware would live). `writeImage()` validates
 * *everything* first — every segment, boot structure and blob inside RAM, no two overlapping,
 * the entry inside RAM — and only then copies, so a refused image leaves RAM untouched. A segment
 * that is an unread `GuestFile` is read from the file straight into the RAM view.
 */
import { MAX_GUEST_WINDOW_BYTES } from "../backends/vcpu.js";
import { ImageError, hex, type GuestFile, type GuestImage, type ImageArch } from "./image.js";
import { formatSize } from "./size.js";

/** Guest RAM as one guest-physical range. */
export interface GuestRam {
  /** Guest-physical address of the first RAM byte. */
  readonly base: bigint;
  /** Bytes of RAM. */
  readonly size: bigint;
}

/** A named guest-physical range that must lie in RAM and overlap no other. */
export interface Region {
  /** Name for error messages, e.g. `"ELF segment 2"`, `"x86 page tables"`. */
  readonly label: string;
  readonly start: bigint;
  readonly size: bigint;
}

/** Bytes the VMM itself writes into RAM (device tree, GDT, page tables). */
export interface GuestBlob {
  readonly label: string;
  readonly addr: bigint;
  readonly bytes: Uint8Array;
}

/** RISC-V RAM base (QEMU virt `VIRT_DRAM`, kvmtool `RISCV_RAM`). */
export const RISCV_RAM_BASE = 0x8000_0000n;
/** Where a RISC-V kernel `Image` goes: 2 MiB above RAM base (Documentation/arch/riscv/boot.rst). */
export const RISCV_KERNEL_ADDR = 0x8020_0000n;
/** x86 RAM starts at guest-physical 0. */
export const X86_RAM_BASE = 0n;

/** The RAM base regvisor uses for an architecture. */
export function ramBaseFor(arch: ImageArch): bigint {
  return arch === "riscv" ? RISCV_RAM_BASE : X86_RAM_BASE;
}

/** The regions an image occupies (segment address and memory size). */
export function imageRegions(image: GuestImage): Region[] {
  return image.segments.map((s) => ({ label: s.label, start: s.addr, size: s.memSize }));
}

/**
 * Checks that every non-empty region lies inside RAM and that no two overlap.
 * @throws ImageError IMAGE_TOO_BIG, IMAGE_OUTSIDE_RAM or IMAGE_OVERLAP naming the regions.
 */
export function checkRegions(ram: GuestRam, regions: readonly Region[]): void {
  const end = ram.base + ram.size;
  const nonEmpty = regions.filter((r) => r.size > 0n);
  for (const r of nonEmpty) {
    if (r.size > ram.size) {
      throw new ImageError(
        "IMAGE_TOO_BIG",
        `Cannot place ${r.label}: ${formatSize(r.size)} does not fit in ${formatSize(ram.size)} of guest RAM (use --mem)`,
      );
    }
    if (r.start < ram.base || r.start + r.size > end) {
      throw new ImageError(
        "IMAGE_OUTSIDE_RAM",
        `Cannot place ${r.label} at ${span(r)}: guest RAM is ${span({ start: ram.base, size: ram.size })}`,
      );
    }
  }
  const sorted = [...nonEmpty].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1];
    const cur = sorted[i];
    if (prev !== undefined && cur !== undefined && cur.start < prev.start + prev.size) {
      throw new ImageError(
        "IMAGE_OVERLAP",
        `Cannot place ${cur.label} at ${span(cur)}: it overlaps ${prev.label} at ${span(prev)}`,
      );
    }
  }
}

/**
 * Validates an image, extra reserved regions and VMM blobs against RAM, then writes them:
 * segment bytes copied (or read from an unread file), the rest of each segment zeroed, blobs
 * copied. `memory` is the RAM backing store: byte `i` is guest-physical `ram.base + i` (a
 * `GuestMemory` for RAM above 4 GiB).
 * @throws ImageError (before writing anything) when a region is outside RAM, too big or
 *   overlaps another, or the entry point is outside RAM.
 * @throws RangeError when `memory` is not exactly `ram.size` bytes.
 * @throws the file's error (InputFileError) when an unread file can no longer be read whole.
 */
export function writeImage(
  ram: GuestRam,
  memory: Uint8Array | RamViews,
  image: GuestImage,
  extra: { readonly reserved?: readonly Region[]; readonly blobs?: readonly GuestBlob[] } = {},
): void {
  const ramViews = memory instanceof Uint8Array ? viewsOf(memory) : memory;
  if (BigInt(ramViews.size) !== ram.size) {
    throw new RangeError(`guest memory is ${ramViews.size} bytes, expected ${ram.size}`);
  }
  const blobs = extra.blobs ?? [];
  checkRegions(ram, [
    ...imageRegions(image),
    ...(extra.reserved ?? []),
    ...blobs.map((b) => ({ label: b.label, start: b.addr, size: BigInt(b.bytes.length) })),
  ]);
  checkEntry(ram, image.entry);
  for (const s of image.segments) {
    const at = Number(s.addr - ram.base);
    copyInto(ramViews, at, s.data);
    zeroFill(ramViews, at + s.data.length, Number(s.memSize) - s.data.length);
  }
  for (const b of blobs) copyInto(ramViews, Number(b.addr - ram.base), b.bytes);
}

/**
 * Guest RAM reached through views, for RAM larger than one typed array (`GuestMemory` is one):
 * `view(offset, length)` is a zero-copy view of bytes `[offset, offset + length)`, at least
 * `MAX_GUEST_WINDOW_BYTES` long anywhere.
 */
export interface RamViews {
  readonly size: number;
  view(offset: number, length: number): Uint8Array;
}

function viewsOf(bytes: Uint8Array): RamViews {
  return { size: bytes.length, view: (offset, length) => bytes.subarray(offset, offset + length) };
}

/** Copies `data` (or reads the file) to RAM offset `at`, one window at a time. */
function copyInto(ram: RamViews, at: number, data: Uint8Array | GuestFile): void {
  for (let done = 0; done < data.length; done += MAX_GUEST_WINDOW_BYTES) {
    const length = Math.min(MAX_GUEST_WINDOW_BYTES, data.length - done);
    const target = ram.view(at + done, length);
    if (data instanceof Uint8Array) target.set(data.subarray(done, done + length));
    else data.readInto(target, done);
  }
}

/** Zeroes `length` bytes of RAM from offset `at`, one window at a time. */
function zeroFill(ram: RamViews, at: number, length: number): void {
  for (let done = 0; done < length; done += MAX_GUEST_WINDOW_BYTES) {
    ram.view(at + done, Math.min(MAX_GUEST_WINDOW_BYTES, length - done)).fill(0);
  }
}

/**
 * Checks that the entry point is inside RAM.
 * @throws ImageError IMAGE_BAD_ENTRY otherwise.
 */
export function checkEntry(ram: GuestRam, entry: bigint): void {
  if (entry < ram.base || entry >= ram.base + ram.size) {
    throw new ImageError(
      "IMAGE_BAD_ENTRY",
      `Cannot start the guest at ${hex(entry)}: the entry point is outside guest RAM ${span({ start: ram.base, size: ram.size })}`,
    );
  }
}

/**
 * The highest `align`-aligned address where `size` bytes fit in RAM without overlapping any
 * `occupied` region — where VMMs put the device tree (QEMU: the top of RAM, 2 MiB aligned).
 * @throws ImageError IMAGE_TOO_BIG when no such place exists.
 * @throws RangeError when `align` is not a power of two or `size` is not positive.
 */
export function placeAtTop(
  ram: GuestRam,
  size: bigint,
  align: bigint,
  occupied: readonly Region[],
  label = "blob",
): bigint {
  if (align <= 0n || (align & (align - 1n)) !== 0n)
    throw new RangeError("align must be a power of two");
  if (size <= 0n) throw new RangeError("size must be positive");
  // Candidate tops: the end of RAM and the start of every occupied region, highest first.
  const tops = [ram.base + ram.size, ...occupied.map((r) => r.start)].sort((a, b) =>
    a > b ? -1 : a < b ? 1 : 0,
  );
  for (const top of tops) {
    if (top - size < ram.base || top > ram.base + ram.size) continue;
    const addr = (top - size) & ~(align - 1n);
    if (addr < ram.base) continue;
    const clash = occupied.some(
      (r) => r.size > 0n && addr < r.start + r.size && r.start < addr + size,
    );
    if (!clash) return addr;
  }
  throw new ImageError(
    "IMAGE_TOO_BIG",
    `Cannot place ${label} (${formatSize(size)}): no free ${hex(align)}-aligned room in guest RAM ${span({ start: ram.base, size: ram.size })}`,
  );
}

function span(r: { readonly start: bigint; readonly size: bigint }): string {
  return `${hex(r.start)}..${hex(r.start + r.size)}`;
}

/**
 * Bounds-checked guest-physical access to RAM held in `memory` (byte `i` is `ram.base + i`),
 * for devices that follow guest pointers (SBI DBCN buffers). Reads return a view.
 */
export function ramAccess(
  ram: GuestRam,
  memory: Uint8Array,
): {
  read(gpa: bigint, length: number): Uint8Array | undefined;
  write(gpa: bigint, bytes: Uint8Array): boolean;
} {
  const inside = (gpa: bigint, length: number): boolean =>
    length >= 0 && gpa >= ram.base && gpa + BigInt(length) <= ram.base + ram.size;
  return {
    read(gpa, length) {
      if (!inside(gpa, length)) return undefined;
      const at = Number(gpa - ram.base);
      return memory.subarray(at, at + length);
    },
    write(gpa, bytes) {
      if (!inside(gpa, bytes.length)) return false;
      memory.set(bytes, Number(gpa - ram.base));
      return true;
    },
  };
}
