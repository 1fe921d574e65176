/**
 * `RunRequest.stop`: the run loop asks it at every poll point and ends with its ending, in both
 * drivers (`runGuest`, `runGuestAsync`), even while the guest spins without exits.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { runGuest, runGuestAsync } from "../../src/vmm/runner.js";
import { signalEnding } from "../../src/vmm/runner-status.js";
import type { RunEnding, StopSource } from "../../src/vmm/runner-types.js";
import { SPIN, riscvElf } from "./runner-guests.js";

/** Asks to stop (with SIGTERM's ending) from its `after`-th poll on. */
function stopAfter(after: number): StopSource & { polls: number } {
  return {
    polls: 0,
    requested(): RunEnding | undefined {
      this.polls++;
      return this.polls >= after ? signalEnding("SIGTERM") : undefined;
    },
  };
}

const spinner = riscvElf([SPIN]);

describe("the run loop's stop source", () => {
  it("runGuest() ends a spinning guest with the stop ending (status 143)", () => {
    const stop = stopAfter(2);
    const s = runGuest({ file: spinner, memSize: 16n << 20n, output: () => undefined, stop });
    assert.equal(s.ending.reason, "signal");
    assert.equal(s.ending.status, 143);
    assert.equal(s.ending.message, "the run was stopped by SIGTERM");
    assert.equal(stop.polls, 2);
  });

  it("runGuestAsync() does the same, returning to the event loop between polls", async () => {
    const stop = stopAfter(3);
    let timers = 0;
    const tick = setInterval(() => timers++, 1);
    try {
      const s = await runGuestAsync({
        file: spinner,
        memSize: 16n << 20n,
        output: () => undefined,
        stop,
      });
      assert.equal(s.ending.status, 143);
    } finally {
      clearInterval(tick);
    }
    assert.ok(timers > 0, "timers ran while the guest was running");
  });
});
