/**
 * Linux errno numbers KVM returns (asm-generic/errno-base.h, errno.h; the same on x86-64,
 * arm64 and riscv).
 */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EIO: 5,
  ENXIO: 6,
  E2BIG: 7,
  ENOEXEC: 8,
  EBADF: 9,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  EPIPE: 32,
  EOPNOTSUPP: 95,
} as const;

/** A symbolic errno name, e.g. `"ENOENT"`. */
export type ErrnoName = keyof typeof ERRNO;

/** The symbolic name of an errno number, or `"E<n>"` when it has none here. */
export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(ERRNO)) if (value === errno) return name;
  return `E${errno}`;
}
