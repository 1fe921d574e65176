/**
 * `regvisor run FILE` with the repo's own RISC-V guests (guests/riscv/tests, built here with
 * riscv64-unknown-elf-gcc): the boot contract (S-mode, a0, a1 = a device tree the test parses),
 * every SBI console path, SRST endings, a fault, a timeout, a flat binary, threaded mode.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { TIMEBASE_HZ } from "../../src/backends/soft/index.js";
import { findNode, propCells, propStrings, propValue, readFdt } from "../../src/vmm/fdt-read.js";
import { REPO, assertOneLineError, buildGuests, lastLine, regvisor } from "./run-file-helpers.js";

const skip = buildGuests("guests/riscv/tests", ["riscv64-unknown-elf-gcc"]);
const guest = (name: string): string => join(REPO, "guests/riscv/tests/build", name);

describe("regvisor run FILE: RISC-V guests on the soft backend", { skip: skip ?? false }, () => {
  it("starts S-mode with a0 = 0 and a1 = a device tree of RAM, CPU, ISA, timebase, bootargs", () => {
    const r = regvisor([
      "run",
      "--mem",
      "64M",
      "--cmdline",
      "console=hvc0 quiet",
      guest("boot.elf"),
    ]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assert.deepEqual(lines.slice(0, 2), ["hart 0", "mode S"]);
    const hexText = lines.find((l) => l.startsWith("dtb "))?.slice(4) ?? "";
    const fdt = readFdt(Uint8Array.from(Buffer.from(hexText, "hex")));
    const memory = findNode(fdt.root, "/memory@80000000");
    assert.ok(memory);
    assert.deepEqual(propCells(memory, "reg"), [0, 0x8000_0000, 0, 64 << 20]);
    const cpus = findNode(fdt.root, "/cpus");
    assert.ok(cpus);
    assert.deepEqual(propCells(cpus, "timebase-frequency"), [TIMEBASE_HZ]);
    const cpu = findNode(fdt.root, "/cpus/cpu@0");
    assert.ok(cpu);
    const isa = propStrings(cpu, "riscv,isa")?.[0] ?? "";
    assert.match(isa, /^rv64imafdc_/);
    for (const ext of ["i", "m", "a", "f", "d", "c", "zicsr", "zifencei"])
      assert.ok(propStrings(cpu, "riscv,isa-extensions")?.includes(ext), ext);
    const chosen = findNode(fdt.root, "/chosen");
    assert.ok(chosen);
    assert.deepEqual(propStrings(chosen, "bootargs"), ["console=hvc0 quiet"]);
    assert.ok(propValue(cpu, "mmu-type"));
  });

  it("serves legacy putchar/getchar and DBCN write/write_byte/read on stdout and stdin", () => {
    const r = regvisor(["run", "--trace-exits", guest("console.elf")], "abcdef");
    assert.equal(r.status, 0, r.stderr);
    assert.equal(
      r.stdout,
      [
        "legacy putchar",
        "dbcn write",
        "!",
        "getchar: abc",
        "dbcn read: def",
        "mmio reads all-ones",
        "vendor sbi: not supported",
        "",
      ].join("\n"),
    );
    const once = (text: string): number =>
      r.stderr.split("\n").filter((l) => l.includes(text)).length;
    assert.equal(once("unclaimed mmio read 0x20000000: read as all-ones"), 1);
    assert.equal(once("exit mmio read addr=0x20000000"), 2);
    assert.equal(once("unclaimed sbi extension 0x9000000"), 1);
    assert.match(
      lastLine(r.stderr),
      /SRST shutdown, no reason\) at pc=0x8020[0-9a-f]{4} .*exit status 0$/,
    );
  });

  it("the same console guest runs as a flat binary with --load-addr, getchar at EOF", () => {
    const r = regvisor([
      "run",
      "--backend",
      "soft",
      "--load-addr",
      "0x80200000",
      guest("console.bin"),
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^legacy putchar\ndbcn write\n!\ngetchar: \ndbcn read: \n/);
  });

  it("an SRST shutdown reason becomes the exit status", () => {
    const r = regvisor(["run", guest("status.elf")]);
    assert.equal(r.status, 7, r.stderr);
    assert.equal(r.stdout, "status 7\n");
  });

  it("an SRST reset ends the run with reason 1 (system failure) as the status", () => {
    const r = regvisor(["run", "--json", guest("reset.elf")]);
    assert.equal(r.status, 1, r.stderr);
    const json = JSON.parse(r.stdout) as { reason: string; status: number; output: string };
    assert.deepEqual([json.reason, json.status, json.output], ["reset", 1, "rebooting\n"]);
  });

  it("a fault the guest cannot handle exits 125 with one line naming the pc", () => {
    const r = regvisor(["run", guest("fault.elf")]);
    assert.equal(r.stdout, "about to fault\n");
    assertOneLineError(r, 125, /guest fault: .*instruction fetch .*0x1000.* at pc=0x1000 /);
  });

  it("--timeout stops a spinning guest with status 124", () => {
    const r = regvisor(["run", "--timeout", "0.3", "--stats", guest("spin.elf")]);
    assert.equal(r.status, 124, r.stderr);
    assert.equal(r.stdout, "spinning\n");
    assert.match(r.stderr, /^regvisor: stats: \d+ guest instructions retired/m);
    assert.match(lastLine(r.stderr), /--timeout of 0.3 s at pc=0x8020[0-9a-f]{4} /);
  });

  it("threaded mode gives the same console output", () => {
    const r = regvisor(["run", "--mode", "threaded", guest("console.elf")], "abcdef");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /getchar: abc\ndbcn read: def\n/);
  });
});
