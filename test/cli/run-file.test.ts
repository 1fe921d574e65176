/**
 * `regvisor run FILE` without any tool: bad inputs (each a one-line error and a non-zero
 * status, never a stack trace), and hand-assembled RISC-V guests on the soft backend for the
 * CLI's outputs (--json, --stats, --trace-exits, exit statuses, stdin).
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EM_TEST } from "../vmm/elf-builder.js";
import {
  GUEST_BASE,
  SPIN,
  code,
  foreignElf,
  putchar,
  riscvElf,
  sbi,
  srst,
} from "../vmm/runner-guests.js";
import { assertOneLineError, lastLine, regvisor } from "./run-file-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "regvisor-run-file-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

const ok = file("ok.elf", riscvElf(srst(0, 0)));
const x86 = file("x86.elf", foreignElf(EM_TEST.X86_64, 64, 0x10_0000n));

describe("regvisor run FILE refuses bad input with one line and a non-zero status", () => {
  const cases: [string, () => string[], number, RegExp][] = [
    ["a missing file", () => ["run", join(dir, "nope.elf")], 1, /no such file/],
    ["a directory", () => ["run", dir], 1, /is a directory/],
    // Refused before a byte is read (issue 12 point 6: this grew to 4+ GB before).
    [
      "a device",
      () => ["run", "/dev/zero"],
      1,
      /guest image \/dev\/zero: it is a character device/,
    ],
    [
      "a truncated ELF",
      () => ["run", file("trunc.elf", riscvElf(srst(0, 0)).subarray(0, 90))],
      1,
      /file ends before/,
    ],
    [
      "an ELF for another architecture",
      () => ["run", file("arm.elf", foreignElf(EM_TEST.AARCH64, 64, 0x4000_0000n))],
      1,
      /AArch64/,
    ],
    [
      "a RISC-V ELF on --backend kvm",
      () => ["run", "--backend", "kvm", ok],
      1,
      /RISC-V.*--backend kvm/,
    ],
    [
      "an x86 ELF on --backend soft",
      () => ["run", "--backend", "soft", x86],
      1,
      /x86.*--backend soft/,
    ],
    [
      "an image larger than RAM",
      () => ["run", file("big.elf", riscvElf(srst(0, 0), 200n << 20n))],
      1,
      /does not fit in 128 MiB of guest RAM/,
    ],
    [
      "an image outside a small RAM",
      () => ["run", "--mem", "1M", ok],
      1,
      /guest RAM is 0x80000000\.\.0x80100000/,
    ],
    [
      "a non-ELF file without --load-addr",
      () => ["run", "--backend", "soft", file("raw.bin", code([SPIN]))],
      2,
      /--load-addr/,
    ],
    [
      "a flat binary without --backend",
      () => ["run", "--load-addr", "0x80200000", file("raw2.bin", code([SPIN]))],
      2,
      /--backend/,
    ],
    [
      "--load-addr with an ELF",
      () => ["run", "--load-addr", "0x80200000", ok],
      2,
      /applies to flat/,
    ],
    ["a bad --mem", () => ["run", "--mem", "lots", ok], 2, /--mem: expected a size/],
    ["a --mem below 64 KiB", () => ["run", "--mem", "4K", ok], 2, /out of range/],
    [
      "a bad --load-addr",
      () => ["run", "--backend", "soft", "--load-addr", "0xzz", ok],
      2,
      /--load-addr/,
    ],
    ["a zero --timeout", () => ["run", "--timeout", "0", ok], 2, /--timeout/],
    ["a non-numeric --timeout", () => ["run", "--timeout", "soon", ok], 2, /--timeout/],
    ["an unknown --x86-mode", () => ["run", "--x86-mode", "virtual86", x86], 2, /--x86-mode/],
    [
      "--x86-mode for a RISC-V guest",
      () => ["run", "--x86-mode", "long", ok],
      2,
      /x86 guests only/,
    ],
    ["--cmdline for an x86 guest", () => ["run", "--cmdline", "quiet", x86], 2, /--cmdline/],
    ["--mode for an x86 guest", () => ["run", "--mode", "threaded", x86], 2, /soft backend only/],
    ["an unknown --backend", () => ["run", "--backend", "qemu", ok], 2, /unknown backend/],
    ["two files", () => ["run", ok, ok], 2, /one FILE/],
    ["a FILE-only option without FILE", () => ["run", "--timeout", "1"], 2, /needs a FILE/],
  ];
  for (const [what, argv, status, pattern] of cases) {
    it(what, () => {
      const r = regvisor(argv());
      assertOneLineError(r, status, pattern);
      assert.equal(r.stdout, "");
    });
  }
});

describe("regvisor run FILE on the soft backend (hand-assembled guests)", () => {
  it("exits with the SRST reason and names the pc on stderr", () => {
    const r = regvisor(["run", file("r5.elf", riscvElf(srst(0, 5)))]);
    assert.equal(r.status, 5, r.stderr);
    assert.match(
      lastLine(r.stderr),
      /^regvisor: the guest shut down \(SRST shutdown, reason 5\) at pc=0x802000[0-9a-f]{2} after 1 exit; exit status 5$/,
    );
  });

  it("--json prints one summary: reason, status, counts, registers by catalog name", () => {
    const guest = file("hi.elf", riscvElf([...putchar(0x48), ...putchar(0x69), ...srst(1, 0)]));
    const r = regvisor(["run", "--json", guest]);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout) as Record<string, unknown> & {
      registers: { name: string; value: string }[];
      exitKinds: Record<string, number>;
    };
    assert.equal(json.output, "Hi");
    assert.equal(json.reason, "reset");
    assert.equal(json.status, 0);
    assert.equal(json.backend, "soft");
    assert.equal(json.arch, "riscv");
    assert.equal(json.exits, 3);
    assert.deepEqual(json.exitKinds, { riscv_sbi: 2, system_event: 1 });
    assert.equal(typeof json.instructionsRetired, "number");
    assert.equal(typeof json.wallSeconds, "number");
    const pc = json.registers.find((reg) => reg.name === "core.pc");
    assert.equal(BigInt(pc?.value ?? "-1"), BigInt(String(json.pc)));
    for (const name of ["core.a0", "csr.sstatus", "timer.frequency", "sbi_ext.dbcn"])
      assert.ok(
        json.registers.some((reg) => reg.name === name),
        name,
      );
  });

  it("--stats reports exits by kind, instructions retired and wall time", () => {
    const r = regvisor(["run", "--stats", ok]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^regvisor: stats: 1 exits \(system_event 1\)$/m);
    assert.match(r.stderr, /^regvisor: stats: \d+ guest instructions retired/m);
    assert.match(r.stderr, /^regvisor: stats: wall time \d+\.\d{3} s$/m);
  });

  it("stdin reaches the guest's getchar; output goes to stdout", () => {
    const echo = [...sbi(2), ...sbi(1), ...sbi(2), ...sbi(1), ...srst(0, 0)];
    const r = regvisor(["run", file("echo.elf", riscvElf(echo))], "ok");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "ok");
  });

  it("--timeout stops a spinning guest with status 124 and its pc", () => {
    const r = regvisor(["run", "--timeout", "0.2", file("spin.elf", riscvElf([SPIN]))]);
    assert.equal(r.status, 124, r.stderr);
    assert.match(
      lastLine(r.stderr),
      new RegExp(`--timeout of 0.2 s at pc=0x${GUEST_BASE.toString(16)} `),
    );
  });

  it("--trace-exits prints each exit on stderr", () => {
    const r = regvisor(["run", "--trace-exits", ok]);
    assert.equal(r.status, 0);
    assert.match(r.stderr, /^regvisor: exit system_event SHUTDOWN data=0x0$/m);
  });

  it("a flat binary runs with --backend soft --load-addr", () => {
    const flat = file("flat.bin", code(srst(0, 6)));
    const r = regvisor(["run", "--backend", "soft", "--load-addr", "0x80200000", flat]);
    assert.equal(r.status, 6, r.stderr);
  });
});
