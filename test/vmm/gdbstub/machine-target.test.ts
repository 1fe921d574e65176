/**
 * `MachineDebugTarget` over a real Machine on the soft backend, driven directly (no GDB): a
 * software breakpoint hidden from memory reads, a step, an unmapped address falling back to a
 * hardware breakpoint, data watchpoints (inline and threaded), Ctrl-C, and detach restoring the
 * guest's bytes so it runs to its own end.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { lookupReg } from "../../../src/abi/catalog.js";
import { leValue } from "../../../src/abi/value.js";
import { backendPicker } from "../../../src/cli/backends.js";
import { riscvDebugArch } from "../../../src/vmm/arch/riscv/gdb.js";
import type { DebugTarget, StopEvent } from "../../../src/vmm/gdbstub/target.js";
import { MachineDebugTarget } from "../../../src/vmm/machine/debug.js";
import type { Machine } from "../../../src/vmm/machine/machine.js";
import { runGuest, type RunSummary } from "../../../src/vmm/runner.js";
import { GUEST_BASE, R, SPIN, addi, lw, riscvElf, srst } from "../runner-guests.js";

const PC = lookupReg("riscv", "core.pc").id;
const A0 = lookupReg("riscv", "core.a0").id;
const EBREAK = [0x73, 0x00, 0x10, 0x00];

/** Boots `words` paused, hands the target to `body`, then lets the run end. */
async function debugRun(
  words: readonly number[],
  body: (t: DebugTarget, m: Machine) => Promise<void>,
  mode?: "inline" | "threaded",
): Promise<RunSummary> {
  using backends = backendPicker(mode === undefined ? {} : { mode });
  let done: Promise<void> = Promise.resolve();
  const summary = await runGuest({
    file: riscvElf(words),
    backendFor: backends.backendFor,
    memSize: 16n << 20n,
    output: () => undefined,
    collectRegisters: false,
    timeoutMs: 20_000,
    onMachine: (machine) => {
      const target = new MachineDebugTarget({ machine, arch: riscvDebugArch });
      machine.holdAtStart();
      // The body resumes the guest: only once run() has begun (right after this hook).
      done = new Promise((resolve) => setTimeout(resolve, 20)).then(() => body(target, machine));
    },
  });
  await done;
  return summary;
}

const stopped = (stop: StopEvent): Extract<StopEvent, { kind: "stopped" }> => {
  if (stop.kind !== "stopped") assert.fail(`expected a stop, got ${stop.kind}`);
  return stop;
};

describe("MachineDebugTarget (soft backend)", () => {
  it("breaks, hides the ebreak from reads, steps, refuses watchpoints, detaches to the guest's end", async () => {
    // a0 = 1; a0 += 2; a0 += 3; SRST reason a0 (6) — the breakpoint sits on the second addi.
    const at = GUEST_BASE + 4n;
    const summary = await debugRun(
      [addi(R.a0, R.zero, 1), addi(R.a0, R.a0, 2), addi(R.a0, R.a0, 3), ...srst(0, 6)],
      async (t) => {
        assert.deepEqual(t.threads(), [1]);
        const original = t.readMemory(1, at, 4);
        assert.ok(t.insertBreakpoint(0, at, 4));
        assert.deepEqual(t.readMemory(1, at, 4), original, "reads show the guest's bytes");
        assert.deepEqual(t.readMemory(1, 0x1000n, 4), undefined, "outside RAM: unmapped");
        assert.ok(t.insertBreakpoint(2, at + 0x400n, 4), "a watchpoint (soft extension)");
        assert.ok(t.removeBreakpoint(2, at + 0x400n, 4));
        const hit = stopped(await t.resume({ step: [] }));
        assert.deepEqual([hit.thread, hit.signal, hit.cause], [1, 5, { kind: "swbreak" }]);
        assert.equal(leValue(t.getManyRegs(1, [PC])), at);
        assert.equal(leValue(t.getManyRegs(1, [A0])), 1n);
        assert.ok(t.removeBreakpoint(0, at, 4));
        stopped(await t.resume({ step: [1] }));
        assert.equal(leValue(t.getManyRegs(1, [PC])), at + 4n);
        assert.equal(leValue(t.getManyRegs(1, [A0])), 3n);
        // A kernel address with paging off is not mapped: a hardware breakpoint by VA instead.
        assert.ok(t.insertBreakpoint(0, 0xffff_ffff_8000_0000n, 4));
        assert.ok(t.insertBreakpoint(0, at + 4n, 4));
        t.detach();
      },
    );
    assert.equal(summary.ending.status, 6, summary.ending.message);
  });

  for (const mode of ["inline", "threaded"] as const) {
    it(`data watchpoints stop after the access with its kind and address (${mode})`, async () => {
      // auipc a1, 0; addi a0, zero, 7; lw a2, 0x400(a1); sw a0, 0x400(a1); SRST reason a0.
      const auipc = (11 << 7) | 0x17;
      const sw =
        ((0x400 >> 5) << 25) | (R.a0 << 20) | (R.a1 << 15) | (2 << 12) | ((0x400 & 31) << 7) | 0x23;
      const watched = GUEST_BASE + 0x400n;
      const summary = await debugRun(
        [auipc, addi(R.a0, R.zero, 7), lw(R.a2, R.a1, 0x400), sw, ...srst(0, 7)],
        async (t) => {
          // A write watchpoint ignores the load; the read one stops right after it.
          assert.ok(t.insertBreakpoint(2, watched, 4));
          assert.ok(t.insertBreakpoint(3, watched + 2n, 1));
          const read = stopped(await t.resume({ step: [] }));
          assert.deepEqual(read.cause, { kind: "rwatch", address: watched + 2n });
          assert.equal(leValue(t.getManyRegs(1, [PC])), GUEST_BASE + 12n, "past the lw");
          assert.ok(t.removeBreakpoint(3, watched + 2n, 1));
          const write = stopped(await t.resume({ step: [] }));
          assert.deepEqual(write.cause, { kind: "watch", address: watched });
          assert.equal(leValue(t.getManyRegs(1, [PC])), GUEST_BASE + 16n, "past the sw");
          assert.deepEqual([...(t.readMemory(1, watched, 4) ?? [])], [7, 0, 0, 0], "store done");
          t.detach();
        },
        mode,
      );
      assert.equal(summary.ending.status, 7, summary.ending.message);
    });
  }

  it("Ctrl-C stops a spinning guest with SIGINT; kill ends the run", async () => {
    const summary = await debugRun([addi(R.a0, R.zero, 1), SPIN], async (t) => {
      const running = t.resume({ step: [] });
      await new Promise((r) => setTimeout(r, 100));
      t.interrupt();
      const stop = stopped(await running);
      assert.equal(stop.signal, 2);
      assert.equal(leValue(t.getManyRegs(1, [PC])), GUEST_BASE + 4n);
      t.kill();
    });
    assert.equal(summary.ending.reason, "quit");
  });

  it("raw RAM holds ebreak while the breakpoint is in and the original after z0", async () => {
    const at = GUEST_BASE + 4n;
    await debugRun([addi(R.a0, R.zero, 1), addi(R.a0, R.a0, 2), ...srst(0, 0)], (t, m) => {
      const ram = m.parts.vm.memory[0];
      assert.ok(ram !== undefined);
      const offset = Number(at - ram.guestPhysAddr);
      const before = [...ram.view(offset, 4)];
      t.insertBreakpoint(0, at, 4);
      assert.deepEqual([...ram.view(offset, 4)], EBREAK);
      t.removeBreakpoint(0, at, 4);
      assert.deepEqual([...ram.view(offset, 4)], before);
      t.detach();
      return Promise.resolve();
    });
  });
});
