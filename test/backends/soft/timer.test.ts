/**
 * `VcpuTimer.poll()` runs on every kernel entry (a Linux boot makes ~5 K): it must read the
 * guest clock only when an armed SBI timer (no Sstc) can fire, and still fire exactly then.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { IRQ } from "../../../src/backends/soft/riscv/contract.js";
import { Hart as RealHart } from "../../../src/backends/soft/riscv/hart.js";
import { VcpuTimer } from "../../../src/backends/soft/timer.js";
import { Hart as FakeHart } from "./fake-hart.js";

/** A guest clock that counts its reads. */
function countingClock(): { now: bigint; reads: number; guestTime(): bigint } {
  return {
    now: 0n,
    reads: 0,
    guestTime() {
      this.reads++;
      return this.now;
    },
  };
}

const stip = (hart: FakeHart): boolean => (hart.getCsr("sip") & BigInt(IRQ.STIP)) !== 0n;

describe("VcpuTimer.poll()", () => {
  it("without Sstc reads the clock only while armed, and fires once at the deadline", () => {
    const timer = new VcpuTimer();
    const hart = new FakeHart({ hartId: 0 });
    const clock = countingClock();
    timer.poll(hart, clock);
    assert.equal(clock.reads, 0, "a disarmed timer cannot fire: no clock read");
    timer.nextEvent(hart, 100n);
    clock.now = 99n;
    timer.poll(hart, clock);
    assert.equal(clock.reads, 1);
    assert.equal(stip(hart), false, "not due yet");
    clock.now = 100n;
    timer.poll(hart, clock);
    assert.equal(stip(hart), true, "due: STIP raised");
    timer.poll(hart, clock);
    assert.equal(clock.reads, 2, "fired and disarmed: no more reads");
  });

  it("with Sstc leaves the clock to the hart and never reads it", () => {
    const timer = new VcpuTimer();
    const hart = new RealHart({ hartId: 0 });
    hart.setSstc(true);
    timer.useSstc(hart);
    const clock = countingClock();
    timer.nextEvent(hart, 5n);
    timer.poll(hart, clock);
    timer.poll(hart, clock);
    assert.equal(clock.reads, 0);
  });
});
