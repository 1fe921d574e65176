#!/usr/bin/env node
// Differential fuzzing of the soft hart's tiers over many seeds (issue 13, point 4).
// Usage: npm run build && node scripts/fuzz-soft.mjs [count=500] [first-seed=1]
// Prints each mismatch (seed, tier, first difference) and exits 1 if there was any.
import { fuzzSeed } from "../dist/test/backends/soft/fuzz.js";

const count = Number(process.argv[2] ?? 500);
const first = Number(process.argv[3] ?? 1);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(first)) {
  console.error("usage: node scripts/fuzz-soft.mjs [count] [first-seed]");
  process.exit(2);
}
let bad = 0;
const start = performance.now();
for (let seed = first; seed < first + count; seed++) {
  for (const line of fuzzSeed(seed)) {
    bad++;
    console.log(line);
  }
}
const s = ((performance.now() - start) / 1000).toFixed(1);
console.log(`fuzz-soft: ${count} seeds from ${first}, ${bad} mismatches, ${s} s`);
process.exit(bad === 0 ? 0 : 1);
