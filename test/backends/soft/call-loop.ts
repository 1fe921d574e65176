/**
 * A test program shape shared by the tier tests: a caller that calls the function at `F` a
 * number of times, so a test can rewrite the function between runs and see which tier noticed.
 */
import { I, R, li } from "./asm.js";
import { RAM_BASE } from "./harness.js";

/** Offset of the called function in guest RAM. */
export const F = 0x2000;

/** The called function: a0 = value; return. */
export const body = (value: number): number[] => [I.addi(R.a0, R.zero, value), I.jalr(0, R.ra, 0)];

/** fence.i (unless `fenceI` is false), then `calls` calls of the function at F, then ecall. */
export function caller(calls: number, fenceI = true): number[] {
  return [
    ...(fenceI ? [I.fenceI()] : []),
    ...li(R.s1, BigInt(calls)),
    ...li(R.s2, BigInt(RAM_BASE + F)),
    I.jalr(R.ra, R.s2, 0),
    I.addi(R.s1, R.s1, -1),
    I.bne(R.s1, R.zero, -8),
    I.ecall(),
  ];
}
