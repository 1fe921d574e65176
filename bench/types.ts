/**
 * Shape of one benchmark figure. Every figure regvisor reports is measured side by side in one
 * run (our path against a reference doing the same work), so ratios stay meaningful on a shared,
 * noisy machine.
 */
export interface Metric {
  /** e.g. `"kvm.exit.ts_over_c"`. */
  readonly name: string;
  readonly value: number;
  /** e.g. `"ratio"`, `"MIPS"`, `"us"`. */
  readonly unit: string;
  /** The target, as text (e.g. `"<= 1.10"`), if it has one. */
  readonly target?: string;
  /** What was measured against what, with the raw numbers behind the ratio. */
  readonly detail: string;
}

/** A group of benchmarks; `skip` explains why a group could not run on this machine. */
export interface BenchGroup {
  readonly name: string;
  run(): Promise<{ metrics: Metric[]; skip?: string }>;
}
