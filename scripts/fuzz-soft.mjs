#!/usr/bin/env node
// Fuzzing of the soft hart's tiers over many seeds (issue 13, points 2 and 4).
// Usage: npm run build && node scripts/fuzz-soft.mjs [--smp] [count] [first-seed=1]
//   default: the single-hart differential fuzzer (test/backends/soft/fuzz.ts), 500 seeds:
//            every tier must end like the reference interpreter.
//   --smp:   the SMP atomics fuzzer (test/backends/soft/smp-fuzz.ts), 50 seeds: 2-4 harts,
//            inline and threaded, every tier; the shared words must end as the model says.
// Prints each mismatch (seed, tier, first difference) and exits 1 if there was any.
import { fuzzSeed } from "../dist/test/backends/soft/fuzz.js";
import { smpFuzzSeed } from "../dist/test/backends/soft/smp-fuzz.js";
import { ENGINE_TIERS, eager } from "../dist/test/backends/soft/tiers.js";

const args = process.argv.slice(2);
const smp = args[0] === "--smp";
if (smp) args.shift();
const count = Number(args[0] ?? (smp ? 50 : 500));
const first = Number(args[1] ?? 1);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(first)) {
  console.error("usage: node scripts/fuzz-soft.mjs [--smp] [count] [first-seed]");
  process.exit(2);
}
// The SMP cases compile on first sight, so that compiled code (not only the interpreter)
// runs between the atomics on the js and wasm tiers.
const smpTiers = ENGINE_TIERS.map(eager);
let bad = 0;
const start = performance.now();
for (let seed = first; seed < first + count; seed++) {
  const lines = smp ? await smpFuzzSeed(seed, smpTiers) : fuzzSeed(seed);
  for (const line of lines) {
    bad++;
    console.log(line);
  }
}
const s = ((performance.now() - start) / 1000).toFixed(1);
const kind = smp ? "smp " : "";
console.log(`fuzz-soft: ${kind}${count} seeds from ${first}, ${bad} mismatches, ${s} s`);
process.exit(bad === 0 ? 0 : 1);
