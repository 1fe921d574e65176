import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { runSoftDemo, softDemoImagePath } from "../../../src/backends/soft/demo.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import { I, R, li, place } from "./asm.js";
import { MODES } from "./helpers.js";

function demoMissing(): string | undefined {
  try {
    return existsSync(softDemoImagePath()) ? undefined : "demo.bin missing";
  } catch (error) {
    return `guests/riscv/demo/demo.bin is not built yet (${String(error)})`;
  }
}

describe("runSoftDemo()", () => {
  for (const mode of MODES) {
    it(
      `runs the bundled demo guest to its SRST shutdown (${mode})`,
      { skip: demoMissing() ?? false },
      () => {
        const result = runSoftDemo({ mode });
        assert.equal(result.lastExit.kind, "system_event");
        assert.ok(result.output.length > 0, "the demo prints through the SBI console");
        const pc = result.finalRegs.find((r) => r.name === "core.pc");
        assert.equal(pc?.value.length, 8);
        assert.ok(result.exits >= 2);
      },
    );
  }

  it("runs any image: a guest that prints through legacy putchar and DBCN, then shuts down", () => {
    const words = [
      ...li(R.a7, 1n), // legacy putchar
      ...li(R.a0, 0x68n),
      I.ecall(),
      ...li(R.a7, SBI_EID.DBCN),
      ...li(R.a6, 2n), // write_byte
      ...li(R.a0, 0x69n),
      I.ecall(),
      ...li(R.a7, SBI_EID.SRST),
      ...li(R.a6, 0n),
      ...li(R.a0, 0n), // shutdown
      ...li(R.a1, 0n),
      I.ecall(),
    ];
    const image = new Uint8Array(4 * words.length);
    place(image, 0, words);
    const result = runSoftDemo({ image });
    assert.equal(result.output, "hi");
    assert.deepEqual(result.lastExit, {
      kind: "system_event",
      type: 1,
      typeName: "SHUTDOWN",
      data: [0n],
    });
    assert.deepEqual(result.exitKinds, { riscv_sbi: 2, system_event: 1 });
  });
});
