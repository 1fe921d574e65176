/**
 * The RISC-V test guests (guests/riscv/src) on the bare Hart: every program must shut down
 * through SRST having printed only PASS lines, on every tier (tiers.ts: the reference
 * interpreter, the JS translator, the wasm tier), each at its normal hotness and with every
 * block compiled on first sight, with multi-block regions, and over SharedArrayBuffer RAM (as
 * threaded mode has it: AMOs then go through Atomics).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ensureGuests, guestElf, runGuest, TEST_GUESTS, type RunOptions } from "./harness.js";
import { eager, ENGINE_TIERS } from "./tiers.js";

const skip = ensureGuests([...TEST_GUESTS, "compute"]);

const MODES: readonly [string, RunOptions][] = [
  ...ENGINE_TIERS.flatMap((t): [string, RunOptions][] =>
    t.options.translate === false
      ? [[t.name, t.options]]
      : [
          [`${t.name} tier`, t.options],
          [`${t.name} tier (compile at once)`, eager(t).options],
          [`${t.name} tier (SharedArrayBuffer RAM)`, { ...eager(t).options, sharedRam: true }],
        ],
  ),
  ["js tier (multi-block regions)", { translate: true, hotThreshold: 1, regionBlocks: 24 }],
  [
    "wasm tier (4-block regions)",
    { translate: true, hotThreshold: 1, regionBlocks: 4, tier: "wasm" },
  ],
];

/** The checksum QEMU prints for the compute guest (qemu-system-riscv64 7.2, same ELF). */
const COMPUTE_CHECKSUM = "compute checksum=0xa5442aa491939422";

describe("RISC-V test guests on the Hart", () => {
  for (const name of TEST_GUESTS) {
    for (const [mode, opts] of MODES) {
      it(`${name} prints only PASS lines on the ${mode}`, { skip }, () => {
        const run = runGuest(guestElf(name), { ...opts, budget: 50_000_000 });
        assert.equal(run.end, "shutdown", `${name} ended with ${run.end}: ${run.detail}`);
        const lines = run.console.split("\n").filter((l) => l !== "");
        assert.ok(lines.length >= 5, `${name} printed too little:\n${run.console}`);
        assert.deepEqual(
          lines.filter((l) => !l.startsWith("PASS ")),
          [],
          `${name} on the ${mode}:\n${run.console}`,
        );
      });
    }
  }

  for (const tier of ["js", "wasm"] as const) {
    it(`compute (~194M instructions) gives QEMU's checksum on the ${tier} tier`, { skip }, () => {
      const run = runGuest(guestElf("compute"), { translate: true, tier });
      assert.equal(run.end, "shutdown");
      assert.equal(run.console.trim(), COMPUTE_CHECKSUM);
      assert.equal(run.instret, 194_076_084n);
    });
  }
});
