/**
 * `RunRequest.stop`: the machine asks it every `POLL_INTERVAL_MS` while it runs and ends with
 * its ending, on the soft backend inline (vCPU on the main thread) and threaded (vCPU in a
 * Worker), even while the guest spins without exits.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backendPicker } from "../../src/cli/backends.js";
import type { RunMode } from "../../src/vmm/machine/backend.js";
import { runGuest } from "../../src/vmm/runner.js";
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

describe("the machine's stop source", () => {
  for (const mode of ["inline", "threaded"] as const satisfies readonly RunMode[]) {
    it(`ends a spinning guest with the stop ending (status 143), soft ${mode}`, async () => {
      const stop = stopAfter(3);
      let timers = 0;
      const tick = setInterval(() => timers++, 1);
      using backends = backendPicker({ mode });
      try {
        const s = await runGuest({
          file: spinner,
          backendFor: backends.backendFor,
          memSize: 16n << 20n,
          output: () => undefined,
          stop,
        });
        assert.equal(s.ending.reason, "signal");
        assert.equal(s.ending.status, 143);
        assert.equal(s.ending.message, "the run was stopped by SIGTERM");
        assert.equal(stop.polls, 3);
      } finally {
        clearInterval(tick);
      }
      assert.ok(timers > 0, "timers ran while the guest was running");
    });
  }
});
