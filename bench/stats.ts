/** Small statistics shared by the benchmark groups. */

/** Median of a non-empty list (mean of the middle two for an even count); NaN when empty. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] ?? NaN)
    : ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2;
}

/** Raw per-round figures for a metric's `detail`, e.g. `[5604, 5547, 5515]`. */
export function formatRounds(values: readonly number[], digits = 0): string {
  return `[${values.map((v) => v.toFixed(digits)).join(", ")}]`;
}
