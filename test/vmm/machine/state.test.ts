/**
 * The machine state API (src/vmm/machine/state.ts) in one process on the soft backend: a guest
 * stopped at exit N, captured, encoded, decoded and rebuilt in an empty machine runs on to the
 * same output as an uninterrupted run; the pieces refuse what does not fit.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backendPicker } from "../../../src/cli/backends.js";
import type { Machine } from "../../../src/vmm/machine/machine.js";
import { loadRam, parseDescription } from "../../../src/vmm/machine/state.js";
import { runGuest } from "../../../src/vmm/runner.js";
import { restoreGuest } from "../../../src/vmm/runner-restore.js";
import {
  decodeSnapshot,
  encodeSnapshot,
  SnapshotFormatError,
} from "../../../src/vmm/snapshot/index.js";
import { putchar, riscvElf, srst } from "../runner-guests.js";

const MiB = 1n << 20n;
const text = new TextDecoder();

/** putchar of each byte of "ABCD", then SRST shutdown. */
const guest = (): Uint8Array =>
  riscvElf([0x41, 0x42, 0x43, 0x44].flatMap((c) => putchar(c)).concat(srst(0, 0)));

async function snapshotAt(n: number): Promise<{ bytes: Uint8Array; out: string }> {
  let out = "";
  let bytes: Uint8Array = new Uint8Array(0);
  using backends = backendPicker();
  const s = await runGuest({
    file: guest(),
    backendFor: backends.backendFor,
    memSize: 16n * MiB,
    output: (b) => (out += text.decode(b)),
    collectRegisters: false,
    stopAtExit: n,
    afterRun: async (machine: Machine) => {
      bytes = encodeSnapshot(await machine.captureState());
    },
  });
  assert.equal(s.ending.reason, "snapshot");
  return { bytes, out };
}

describe("machine state", () => {
  it("a guest stopped at exit 2, captured and rebuilt, prints the rest", async () => {
    const { bytes, out } = await snapshotAt(2);
    assert.equal(out, "AB");
    const snapshot = decodeSnapshot(bytes);
    let after = "";
    using backends = backendPicker();
    const r = await restoreGuest({
      snapshot,
      backendFor: (arch) => backends.backendFor(arch),
      output: (b) => (after += text.decode(b)),
      collectRegisters: false,
    });
    assert.equal(after, "CD");
    assert.equal(r.ending.reason, "shutdown");
    assert.equal(r.resumedAt.exits, 2);
    assert.equal(text.decode(r.outputBefore), "AB");
    assert.deepEqual(
      r.description.devices.map((d) => [d.name, d.kind]),
      [
        ["plic", "riscv,plic0"],
        ["uart0", "ns16550a"],
      ],
    );
    assert.deepEqual(r.description.ram, [{ slot: 0, gpa: "0x80000000", size: 16 << 20, flags: 0 }]);
  });

  it("parseDescription() refuses a description with a bad field, naming it", () => {
    assert.throws(
      () => parseDescription({ version: 1, kind: "x", arch: "arm", backend: "soft" }),
      (e: unknown) => e instanceof SnapshotFormatError && e.message.includes('"arch"'),
    );
  });

  it("loadRam() refuses RAM of another layout and writes nothing", async () => {
    const { bytes } = await snapshotAt(0);
    const snapshot = decodeSnapshot(bytes);
    using backends = backendPicker();
    const vm = backends.backendFor("riscv").createVm();
    try {
      const mem = vm.addMemory({ guestPhysAddr: 0x8000_0000n, size: 8 << 20 });
      assert.throws(() => {
        loadRam(vm, snapshot.memory);
      }, /Cannot load guest RAM: memory slot 0/);
      assert.ok(mem.bytes.every((b) => b === 0));
    } finally {
      vm.close();
    }
  });
});
