/**
 * The asm-generic ioctl number encoding (include/uapi/asm-generic/ioctl.h), used by x86,
 * arm64, riscv, s390 and loongarch: `nr | type << 8 | size << 16 | dir << 30`, 14-bit size.
 * powerpc and mips use another layout (13-bit size, 3-bit dir) and are not encoded here.
 */

/** Transfer direction as the kernel spells it: `_IO`, `_IOW` (user→kernel), `_IOR`, `_IOWR`. */
export const IOC_DIR = { none: 0, write: 1, read: 2, readWrite: 3 } as const;

/** One of the four directions. */
export type IocDir = keyof typeof IOC_DIR;

/** `KVMIO`, the ioctl type byte of every KVM ioctl. */
export const KVMIO = 0xae;

const IOC_SIZE_MAX = (1 << 14) - 1;

/**
 * Computes an ioctl number like the kernel's `_IOC(dir, type, nr, size)`.
 * @throws {RangeError} if a field does not fit its bits.
 */
export function ioc(dir: IocDir, type: number, nr: number, size: number): number {
  if (!Number.isInteger(nr) || nr < 0 || nr > 0xff) throw new RangeError(`ioctl nr ${nr} > 0xff`);
  if (!Number.isInteger(type) || type < 0 || type > 0xff) {
    throw new RangeError(`ioctl type ${type} > 0xff`);
  }
  if (!Number.isInteger(size) || size < 0 || size > IOC_SIZE_MAX) {
    throw new RangeError(`ioctl size ${size} does not fit in 14 bits`);
  }
  // `>>> 0` keeps the result an unsigned 32-bit number (dir 2/3 sets bit 31).
  return ((IOC_DIR[dir] << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
