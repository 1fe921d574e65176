/**
 * `runGuest()` on the soft backend with hand-assembled RISC-V guests (no cross compiler
 * needed), and `prepareRun()`'s refusals, which all happen before a VM exists (no /dev/kvm
 * needed even for x86 files).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { TIMEBASE_HZ } from "../../src/backends/soft/index.js";
import { ImageError } from "../../src/vmm/image.js";
import { prepareRun, runGuest, type RunRequest, type RunSummary } from "../../src/vmm/runner.js";
import { backendPicker } from "../../src/cli/backends.js";
import { bytesInput } from "../../src/vmm/runner-input.js";
import { OptionValueError } from "../../src/vmm/size.js";
import { EM_TEST, buildElf } from "./elf-builder.js";
import {
  GUEST_BASE,
  R,
  SPIN,
  addi,
  code,
  foreignElf,
  jalr,
  li,
  lw,
  riscvElf,
  sbi,
  srst,
} from "./runner-guests.js";

const MiB = 1n << 20n;

async function run(
  file: Uint8Array,
  extra: Partial<RunRequest> = {},
): Promise<RunSummary & { out: string; trace: string[] }> {
  let out = "";
  const trace: string[] = [];
  using backends = backendPicker(extra.mode === undefined ? {} : { mode: extra.mode });
  const summary = await runGuest({
    file,
    backendFor: backends.backendFor,
    memSize: 16n * MiB,
    output: (bytes) => (out += new TextDecoder().decode(bytes)),
    trace: (line) => trace.push(line),
    ...extra,
  });
  return { ...summary, out, trace };
}

function reg(summary: RunSummary, name: string): bigint {
  const found = summary.registers.find((r) => r.name === name);
  assert.ok(found, `register ${name} in the final state`);
  let value = 0n;
  for (let i = found.value.length - 1; i >= 0; i--)
    value = (value << 8n) | BigInt(found.value[i] ?? 0);
  return value;
}

describe("runGuest() on the soft backend", () => {
  it("starts in S-mode with a0 = hart 0 and a1 = the device tree, as KVM does", async () => {
    const s = await run(riscvElf([addi(R.s0, R.a0, 0), addi(R.s1, R.a1, 0), ...srst(0, 0)]));
    assert.equal(s.ending.reason, "shutdown");
    assert.equal(s.ending.status, 0);
    assert.equal(reg(s, "core.s0"), 0n);
    assert.equal(reg(s, "core.s1"), BigInt(s.facts.dtbAddress ?? "-1"));
    assert.equal(reg(s, "core.mode"), 1n);
    assert.equal(s.facts.timebaseHz, String(TIMEBASE_HZ));
    assert.match(s.facts.isa ?? "", /^rv64imafdc_.*zicsr/);
    assert.equal(s.entry, GUEST_BASE);
    assert.equal(s.backend, "soft");
    assert.ok((s.instructions ?? 0n) >= 6n, "instructions retired are counted");
  });

  it("an SRST reset ends the run with its reason as the status", async () => {
    const s = await run(riscvElf(srst(1, 3)));
    assert.deepEqual([s.ending.reason, s.ending.status, s.ending.value], ["reset", 3, 3n]);
    assert.equal(s.lastExit?.kind, "system_event");
  });

  it("an SRST reason above 255 gives status 255", async () => {
    const s = await run(riscvElf(srst(0, 0x1000)));
    assert.deepEqual([s.ending.reason, s.ending.status], ["shutdown", 255]);
  });

  it("legacy getchar reads the input, putchar writes the output, -1 at the end", async () => {
    const getput = [...sbi(0x02), ...sbi(0x01)];
    const s = await run(
      riscvElf([...getput, ...getput, ...sbi(0x02), addi(R.s0, R.a0, 0), ...srst(0, 0)]),
      {
        input: bytesInput(new TextEncoder().encode("xy")),
      },
    );
    assert.equal(s.out, "xy");
    assert.equal(reg(s, "core.s0"), (1n << 64n) - 1n);
  });

  it("an MMIO read outside RAM returns all-ones and is traced once per address", async () => {
    const s = await run(
      riscvElf([...li(R.t0, 0x2000_0000), lw(R.a2, R.t0, 0), lw(R.a2, R.t0, 0), ...srst(0, 0)]),
    );
    assert.equal(s.ending.status, 0);
    assert.equal(reg(s, "core.a2"), (1n << 64n) - 1n);
    assert.equal(s.unclaimed, 2);
    assert.equal(s.exitKinds.mmio, 2);
    const noted = s.trace.filter((l) => l.startsWith("unclaimed mmio read 0x20000000"));
    assert.equal(noted.length, 1);
    assert.equal(s.trace.filter((l) => l.startsWith("exit mmio read addr=0x20000000")).length, 2);
  });

  it("a jump outside RAM is a fault: status 125, the pc where it happened", async () => {
    const s = await run(riscvElf([...li(R.t0, 0x1000), jalr(R.zero, R.t0, 0)]));
    assert.equal(s.ending.reason, "fault");
    assert.equal(s.ending.status, 125);
    assert.match(s.ending.message, /instruction fetch from guest-physical 0x1000/);
    assert.equal(s.pc, 0x1000n);
  });

  it("--timeout ends a guest that never exits with status 124", async () => {
    const s = await run(riscvElf([SPIN]), { timeoutMs: 150 });
    assert.deepEqual([s.ending.reason, s.ending.status, s.lastExit], ["timeout", 124, undefined]);
    assert.equal(s.pc, GUEST_BASE);
    assert.ok(s.wallMs >= 150);
  });

  it("threaded mode runs the same guest to the same ending", async () => {
    const s = await run(riscvElf(srst(0, 5)), { mode: "threaded" });
    assert.deepEqual([s.mode, s.ending.reason, s.ending.status], ["threaded", "shutdown", 5]);
  });

  it("a flat binary runs at --load-addr on --backend soft", async () => {
    const s = await run(code(srst(0, 4)), { backend: "soft", loadAddr: GUEST_BASE });
    assert.deepEqual([s.format, s.ending.status], ["flat", 4]);
  });

  it("skips reading the registers when asked not to", async () => {
    const s = await run(riscvElf(srst(0, 0)), { collectRegisters: false });
    assert.equal(s.registers.length, 0);
    assert.equal(s.registersError, undefined);
  });

  it("an ecall to an unknown forwarded extension is answered NOT_SUPPORTED and traced", async () => {
    const s = await run(riscvElf([...sbi(0x0900_0000), addi(R.s0, R.a0, 0), ...srst(0, 0)]));
    assert.equal(BigInt.asIntN(64, reg(s, "core.s0")), -2n);
    assert.ok(s.trace.some((l) => l.startsWith("unclaimed sbi extension 0x9000000")));
  });
});

describe("prepareRun() refuses before any VM exists", () => {
  const base = { output: () => undefined, memSize: 16n * MiB };
  const cases: [string, Partial<RunRequest>, (e: unknown) => boolean][] = [
    [
      "a RISC-V ELF on --backend kvm",
      { file: riscvElf(srst(0, 0)), backend: "kvm" },
      (e) =>
        e instanceof ImageError &&
        e.code === "IMAGE_WRONG_ARCH" &&
        e.message.includes("--backend kvm"),
    ],
    [
      "an x86-64 ELF on --backend soft",
      { file: foreignElf(EM_TEST.X86_64, 64, 0x10_0000n), backend: "soft" },
      (e) => e instanceof ImageError && e.code === "IMAGE_WRONG_ARCH" && e.message.includes("x86"),
    ],
    [
      "an AArch64 ELF",
      { file: foreignElf(EM_TEST.AARCH64, 64, 0x4000_0000n) },
      (e) =>
        e instanceof ImageError && e.code === "IMAGE_WRONG_ARCH" && e.message.includes("AArch64"),
    ],
    [
      "an image larger than RAM",
      { file: riscvElf(srst(0, 0), 64n * MiB) },
      (e) => e instanceof ImageError && e.code === "IMAGE_TOO_BIG",
    ],
    [
      "an image outside RAM",
      { file: riscvElf(srst(0, 0)), memSize: 1n * MiB },
      (e) => e instanceof ImageError && e.code === "IMAGE_OUTSIDE_RAM",
    ],
    [
      "segments that overlap",
      {
        file: buildElf({
          bits: 64,
          machine: EM_TEST.RISCV,
          entry: GUEST_BASE,
          segments: [
            { paddr: GUEST_BASE, data: code(srst(0, 0)) },
            { paddr: GUEST_BASE + 8n, data: code([SPIN]) },
          ],
        }),
      },
      (e) => e instanceof ImageError && e.code === "IMAGE_OVERLAP",
    ],
    [
      "an x86 image over the long-mode page tables",
      { file: foreignElf(EM_TEST.X86_64, 64, 0x2000n) },
      (e) =>
        e instanceof ImageError && e.code === "IMAGE_OVERLAP" && e.message.includes("page tables"),
    ],
    [
      "a truncated ELF",
      { file: riscvElf(srst(0, 0)).subarray(0, 70) },
      (e) => e instanceof ImageError && e.code === "IMAGE_TRUNCATED",
    ],
    [
      "--cmdline for an x86 guest",
      { file: foreignElf(EM_TEST.X86_64, 64, 0x10_0000n), cmdline: "quiet" },
      (e) => e instanceof OptionValueError && e.option === "--cmdline",
    ],
    [
      "--mode for an x86 guest",
      { file: foreignElf(EM_TEST.X86_64, 64, 0x10_0000n), mode: "threaded" },
      (e) => e instanceof OptionValueError && e.option === "--mode",
    ],
    [
      "--x86-mode for a RISC-V guest",
      { file: riscvElf(srst(0, 0)), x86Mode: "long" },
      (e) => e instanceof OptionValueError && e.option === "--x86-mode",
    ],
    [
      "a flat binary without --backend",
      { file: code(srst(0, 0)), loadAddr: GUEST_BASE },
      (e) => e instanceof OptionValueError && e.option === "--backend",
    ],
    [
      "a real-mode entry above 1 MiB",
      { file: code([SPIN]), backend: "kvm", loadAddr: 0x20_0000n },
      (e) => e instanceof ImageError && e.code === "IMAGE_BAD_ENTRY",
    ],
  ];
  for (const [what, request, check] of cases) {
    it(`refuses ${what}`, () => {
      assert.throws(() => prepareRun({ ...base, file: new Uint8Array(0), ...request }), check);
    });
  }

  it("accepts an x86-64 ELF and picks the KVM backend and long mode for it", () => {
    const { plan, arch } = prepareRun({
      ...base,
      file: foreignElf(EM_TEST.X86_64, 64, 0x10_0000n),
    });
    assert.equal(arch.arch, "x86");
    assert.equal(plan.arch === "x86" ? plan.x86.mode : "", "long");
  });
});
