import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { planBoot, writeBootPlan, type BootPlan } from "../../src/vmm/boot-plan.js";
import { RISCV_KERNEL_ADDR, RISCV_RAM_BASE } from "../../src/vmm/guest-memory.js";
import { ImageError, type ImageErrorCode } from "../../src/vmm/image.js";
import { OptionValueError } from "../../src/vmm/size.js";
import { EM_TEST, buildElf, pattern } from "./elf-builder.js";

const MiB = 1n << 20n;
const rvElf = buildElf({
  bits: 64,
  machine: EM_TEST.RISCV,
  entry: RISCV_KERNEL_ADDR,
  segments: [{ paddr: RISCV_KERNEL_ADDR, data: pattern(64), memsz: 0x2000n }],
});
const x64Elf = buildElf({
  bits: 64,
  machine: EM_TEST.X86_64,
  entry: MiB,
  segments: [{ paddr: MiB, data: pattern(64) }],
});

function imageCode(fn: () => unknown): ImageErrorCode {
  try {
    fn();
  } catch (error) {
    if (error instanceof ImageError) return error.code;
    throw error;
  }
  assert.fail("expected an ImageError");
}

function riscv(plan: BootPlan): Extract<BootPlan, { arch: "riscv" }> {
  if (plan.arch !== "riscv") assert.fail(`expected a RISC-V plan, got ${plan.arch}`);
  return plan;
}

describe("planBoot()", () => {
  it("RISC-V ELF: RAM at 0x80000000, DTB slot at the top, a0/a1/pc set", () => {
    const plan = riscv(
      planBoot({ file: rvElf, arch: "riscv", memSize: 128n * MiB, cmdline: "console=hvc0" }),
    );
    assert.deepEqual(plan.ram, { base: RISCV_RAM_BASE, size: 128n * MiB });
    assert.equal(plan.dtbAddr, RISCV_RAM_BASE + 126n * MiB);
    // The tree itself is built at start from the vCPU's registers (test/vmm/runner.test.ts).
    assert.equal(plan.riscv.cmdline, "console=hvc0");
    assert.ok(plan.riscv.dtbReserve >= 0x1000 && plan.riscv.dtbReserve % 0x1000 === 0);
    const memory = new Uint8Array(128 * 2 ** 20);
    writeBootPlan(plan, memory);
    assert.deepEqual(
      plan.regs.map((r) => [r.name, r.value]),
      [
        ["core.pc", RISCV_KERNEL_ADDR],
        ["core.a0", 0n],
        ["core.a1", plan.dtbAddr],
        ["core.mode", 1n],
      ],
    );
    assert.deepEqual(memory.subarray(2 * 2 ** 20, 2 * 2 ** 20 + 64), pattern(64));
  });

  it("x86 ELF64: long mode by default, page tables in the blobs; protected when asked", () => {
    const plan = planBoot({ file: x64Elf, arch: "x86", memSize: 16n * MiB });
    if (plan.arch !== "x86") assert.fail("expected an x86 plan");
    assert.equal(plan.x86.mode, "long");
    assert.ok(plan.blobs.some((b) => b.label === "x86 page tables"));
    const prot = planBoot({ file: x64Elf, arch: "x86", memSize: 16n * MiB, x86Mode: "protected" });
    assert.ok(prot.arch === "x86" && prot.x86.mode === "protected");
  });

  it("flat binaries need --load-addr and --backend; default to real mode on x86", () => {
    const flat = pattern(512);
    const plan = planBoot({ file: flat, arch: "x86", memSize: 16n * MiB, loadAddr: 0x7c00n });
    assert.ok(plan.arch === "x86" && plan.x86.mode === "real" && plan.x86.regs.rip === 0x7c00n);
    assert.throws(
      () => planBoot({ file: flat, arch: "x86", memSize: 16n * MiB }),
      (e: unknown) => e instanceof OptionValueError && e.option === "--load-addr",
    );
    assert.throws(
      () => planBoot({ file: flat, memSize: 16n * MiB, loadAddr: 0n }),
      (e: unknown) => e instanceof OptionValueError && e.option === "--backend",
    );
    const rv = riscv(
      planBoot({
        file: flat,
        arch: "riscv",
        memSize: 16n * MiB,
        loadAddr: RISCV_KERNEL_ADDR,
        entry: RISCV_KERNEL_ADDR + 4n,
      }),
    );
    assert.equal(rv.regs[0]?.value, RISCV_KERNEL_ADDR + 4n);
  });

  it("refuses options that do not apply", () => {
    for (const [req, option] of [
      [{ file: rvElf, arch: "riscv", memSize: 16n * MiB, loadAddr: 0n }, "--load-addr"],
      [{ file: rvElf, arch: "riscv", memSize: 16n * MiB, entry: 0n }, "--entry"],
      [{ file: rvElf, arch: "riscv", memSize: 16n * MiB, x86Mode: "long" }, "--x86-mode"],
    ] as const) {
      assert.throws(
        () => planBoot(req),
        (e: unknown) => e instanceof OptionValueError && e.option === option,
      );
    }
  });

  it("refuses the wrong architecture, an image that does not fit, a truncated ELF and overlap with boot structures", () => {
    assert.equal(
      imageCode(() => planBoot({ file: rvElf, arch: "x86", memSize: 16n * MiB })),
      "IMAGE_WRONG_ARCH",
    );
    assert.throws(
      () => planBoot({ file: x64Elf, arch: "riscv", memSize: 16n * MiB }),
      /it is for x86, but the selected backend runs RISC-V guests/,
    );
    const huge = buildElf({
      bits: 64,
      machine: EM_TEST.RISCV,
      entry: RISCV_KERNEL_ADDR,
      segments: [{ paddr: RISCV_KERNEL_ADDR, data: pattern(8), memsz: 31n * MiB }],
    });
    assert.equal(
      imageCode(() => planBoot({ file: huge, arch: "riscv", memSize: 32n * MiB })),
      "IMAGE_OUTSIDE_RAM",
    );
    assert.equal(
      imageCode(() => planBoot({ file: huge, arch: "riscv", memSize: 16n * MiB })),
      "IMAGE_TOO_BIG",
    );
    assert.equal(
      imageCode(() =>
        planBoot({ file: rvElf.subarray(0, 100), arch: "riscv", memSize: 16n * MiB }),
      ),
      "IMAGE_TRUNCATED",
    );
    const low = buildElf({
      bits: 64,
      machine: EM_TEST.X86_64,
      entry: 0x1000n,
      segments: [{ paddr: 0x1000n, data: pattern(64) }],
    });
    assert.equal(
      imageCode(() => planBoot({ file: low, arch: "x86", memSize: 16n * MiB })),
      "IMAGE_OVERLAP",
    );
    assert.equal(
      imageCode(() => planBoot({ file: rvElf, arch: "riscv", memSize: 0x20_0000n })),
      "IMAGE_OUTSIDE_RAM",
    );
    const full = buildElf({
      bits: 64,
      machine: EM_TEST.RISCV,
      entry: RISCV_RAM_BASE,
      segments: [{ paddr: RISCV_RAM_BASE, data: pattern(8), memsz: 16n * MiB }],
    });
    assert.equal(
      imageCode(() => planBoot({ file: full, arch: "riscv", memSize: 16n * MiB })),
      "IMAGE_TOO_BIG",
      "no room for the DTB",
    );
  });
});
