import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { backendPicker } from "../../../src/cli/backends.js";
import { SBI_EID } from "../../../src/backends/soft/sbi.js";
import { DEMO_SPECS, demoImage } from "../../../src/vmm/demo.js";
import { runGuest } from "../../../src/vmm/runner.js";
import { runDemo } from "../../vmm/snapshot/demo-run.js";
import { I, R, li, place } from "./asm.js";
import { MODES } from "./helpers.js";

function demoMissing(): string | undefined {
  try {
    demoImage(DEMO_SPECS.riscv);
    return undefined;
  } catch (error) {
    return `guests/riscv/demo/demo.bin is not built yet (${String(error)})`;
  }
}

describe("the RISC-V demo on the machine", () => {
  for (const mode of MODES) {
    it(
      `runs the bundled demo guest to its SRST shutdown (${mode})`,
      { skip: demoMissing() ?? false },
      async () => {
        const result = await runDemo("soft", { mode });
        assert.equal(result.lastExit?.kind, "system_event");
        assert.ok(result.output.length > 0, "the demo prints through the SBI console");
        const pc = result.registers.find((r) => r.name === "core.pc");
        assert.equal(pc?.value.length, 8);
        assert.ok(result.exits >= 2);
      },
    );
  }

  it("runs a flat image: a guest that prints through legacy putchar and DBCN, then shuts down", async () => {
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
    let output = "";
    using backends = backendPicker();
    const result = await runGuest({
      file: image,
      backend: "soft",
      backendFor: backends.backendFor,
      loadAddr: DEMO_SPECS.riscv.loadAddr,
      memSize: DEMO_SPECS.riscv.memSize,
      output: (b) => (output += new TextDecoder().decode(b)),
      collectRegisters: false,
    });
    assert.equal(output, "hi");
    assert.deepEqual(result.lastExit, {
      kind: "system_event",
      type: 1,
      typeName: "SHUTDOWN",
      data: [0n],
    });
    const kinds = Object.entries(result.exitKinds).filter(([k]) => k !== "intr");
    assert.deepEqual(Object.fromEntries(kinds), { riscv_sbi: 2, system_event: 1 });
  });
});
