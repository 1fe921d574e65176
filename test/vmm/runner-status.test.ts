/** Exit statuses and exit text of `regvisor run FILE` (src/vmm/runner-status.ts, runner-trace.ts). */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import type { VcpuExit } from "../../src/backends/vcpu.js";
import {
  RUN_STATUS,
  exitPortEnding,
  faultEnding,
  haltEnding,
  idleEnding,
  srstEnding,
  timeoutEnding,
} from "../../src/vmm/runner-status.js";
import { detachExit, formatExit } from "../../src/vmm/runner-trace.js";

describe("run endings", () => {
  it("map the guest's values and the VMM's own cases to documented statuses", () => {
    const table: [string, ReturnType<typeof haltEnding>, string, number][] = [
      ["srst shutdown, no reason", srstEnding(false, 0n), "shutdown", 0],
      ["srst shutdown, system failure", srstEnding(false, 1n), "shutdown", 1],
      ["srst reset, reason 200", srstEnding(true, 200n), "reset", 200],
      ["srst reason 0xf0000000", srstEnding(false, 0xf000_0000n), "shutdown", 255],
      ["exit port 42", exitPortEnding(42), "exit-port", 42],
      ["exit port 0x12a (low byte)", exitPortEnding(0x12a), "exit-port", 0x2a],
      ["hlt", haltEnding(), "halt", 0],
      ["idle", idleEnding(), "idle", RUN_STATUS.TIMEOUT],
      ["timeout", timeoutEnding(1500), "timeout", 124],
      ["fault", faultEnding("x"), "fault", 125],
    ];
    for (const [what, ending, reason, status] of table) {
      assert.deepEqual([ending.reason, ending.status], [reason, status], what);
      assert.doesNotMatch(ending.message, /\n/, what);
    }
    assert.match(timeoutEnding(1500).message, /1\.5 s/);
    assert.match(srstEnding(true, 1n).message, /system failure/);
  });
});

describe("formatExit() / detachExit()", () => {
  it("print the kind, the port or address and the data", () => {
    const out: VcpuExit = {
      kind: "io",
      direction: "out",
      port: 0xe9,
      size: 1,
      count: 2,
      data: Uint8Array.of(0x48, 0x69),
    };
    assert.equal(formatExit(out), "io out port=0xe9 size=1 count=2 data=4869");
    const read: VcpuExit = {
      kind: "mmio",
      address: 0xd000_0000n,
      isWrite: false,
      data: new Uint8Array(4),
    };
    assert.equal(formatExit(read), "mmio read addr=0xd0000000 len=4");
    assert.equal(formatExit({ kind: "hlt" }), "hlt");
  });

  it("copies the data so the exit outlives the run page", () => {
    const page = Uint8Array.of(1, 2, 3, 4);
    const exit: VcpuExit = { kind: "mmio", address: 0n, isWrite: true, data: page.subarray(0, 4) };
    const copy = detachExit(exit);
    page.fill(9);
    assert.ok(copy.kind === "mmio");
    assert.deepEqual([...copy.data], [1, 2, 3, 4]);
  });
});
