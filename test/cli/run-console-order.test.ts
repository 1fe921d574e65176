/**
 * The guest console through `regvisor run` with stdout a pipe: output is buffered per line
 * (src/vmm/machine/console-sink.ts), so these check that nothing is lost or reordered when the
 * guest ends mid-line, and that the SBI console and the UART, which share the sink, interleave
 * byte for byte as the guest wrote them.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SBI_EID, SBI_LEGACY } from "../../src/abi/sbi.js";
import { UART0_BASE } from "../../src/vmm/arch/riscv/devicetree.js";
import { I, R, li } from "../backends/soft/asm.js";
import { regvisor } from "./run-file-helpers.js";

/** `legacy CONSOLE_PUTCHAR(c)`: one SBI call per byte, as Linux 6.1's earlycon and hvc0 do. */
const sbiPutchar = (c: string): number[] => [
  ...li(R.a7, SBI_LEGACY.CONSOLE_PUTCHAR),
  ...li(R.a0, BigInt(c.charCodeAt(0))),
  I.ecall(),
];

/** A store to the 16550's THR (DLAB is 0 after reset). */
const uartPutchar = (c: string): number[] => [
  ...li(R.t0, UART0_BASE),
  ...li(R.t1, BigInt(c.charCodeAt(0))),
  I.sb(R.t1, R.t0, 0),
];

/** SRST system_reset(shutdown, no reason): the guest powers off. */
const powerOff = (): number[] => [
  ...li(R.a7, SBI_EID.SRST),
  ...li(R.a6, 0n),
  ...li(R.a0, 0n),
  ...li(R.a1, 0n),
  I.ecall(),
];

function flat(words: readonly number[]): Uint8Array {
  const bytes = new Uint8Array(words.length * 4);
  const view = new DataView(bytes.buffer);
  words.forEach((w, i) => {
    view.setUint32(i * 4, w >>> 0, true);
  });
  return bytes;
}

function runFlat(words: readonly number[]): ReturnType<typeof regvisor> {
  const dir = mkdtempSync(join(tmpdir(), "regvisor-console-"));
  try {
    const file = join(dir, "guest.bin");
    writeFileSync(file, flat(words));
    return regvisor(["run", "--backend", "soft", "--load-addr", "0x80200000", file]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("regvisor run: console output order and completeness", () => {
  it("a guest that prints a partial line and powers off: every byte, once, in order", () => {
    const line = "line one\nno newline at the end";
    const r = runFlat([...line.split("").flatMap(sbiPutchar), ...powerOff()]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, line);
  });

  it("the SBI console and the UART interleave as the guest wrote them", () => {
    const r = runFlat([
      ...sbiPutchar("A"),
      ...uartPutchar("B"),
      ...sbiPutchar("C"),
      ...sbiPutchar("\n"),
      ...uartPutchar("D"),
      ...sbiPutchar("E"),
      ...uartPutchar("F"),
      ...powerOff(),
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "ABC\nDEF");
  });
});
