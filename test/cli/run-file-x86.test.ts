/**
 * `regvisor run FILE` with the repo's own x86 guests (guests/x86/tests, built here with GNU
 * as/ld) on /dev/kvm: each start mode, each ending (exit port, HLT, triple fault, timeout,
 * idle), port 0xe9 and COM1 (output and stdin), unclaimed ports and MMIO.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { REPO, assertOneLineError, buildGuests, lastLine, regvisor } from "./run-file-helpers.js";

const noKvm = kvmUnavailableReason();
const skip =
  noKvm === undefined ? buildGuests("guests/x86/tests", ["as", "ld"]) : `/dev/kvm: ${noKvm}`;
const guest = (name: string): string => join(REPO, "guests/x86/tests/build", name);

describe("regvisor run FILE: x86 guests on KVM", { skip: skip ?? false }, () => {
  it("ELF64 starts in long mode: 0xe9, COM1, stdin, unclaimed port/MMIO, exit port 42", () => {
    const r = regvisor(["run", "--trace-exits", guest("long.elf")], "hi!");
    assert.equal(r.status, 42, r.stderr);
    assert.equal(
      r.stdout,
      [
        "long mode: port 0xe9",
        "long mode: COM1",
        "unclaimed port reads all-ones",
        "unclaimed mmio reads all-ones",
        "COM1 input: hi!",
        "",
      ].join("\n"),
    );
    const count = (text: string): number =>
      r.stderr.split("\n").filter((l) => l.includes(text)).length;
    assert.equal(count("unclaimed port in 0x60: read as all-ones"), 1);
    assert.equal(count("exit io in port=0x60 "), 2);
    assert.equal(count("unclaimed mmio read 0xd0000000"), 1);
    assert.equal(count("unclaimed mmio write 0xd0000000: ignored"), 1);
    assert.match(
      lastLine(r.stderr),
      /wrote 42 to the exit port 0xf4 at rip=0x10[0-9a-f]{4} .*exit status 42$/,
    );
  });

  it("ELF32 starts in protected mode, paging off, and ends with HLT (status 0)", () => {
    const r = regvisor(["run", "--json", guest("protected.elf")]);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout) as {
      x86Mode: string;
      reason: string;
      output: string;
      registers: { name: string }[];
    };
    assert.deepEqual([json.x86Mode, json.reason], ["protected", "halt"]);
    assert.equal(json.output, "protected mode, paging off\n");
    for (const name of ["REGS", "SREGS", "LSTAR", "IA32_TSC"])
      assert.ok(
        json.registers.some((reg) => reg.name === name),
        name,
      );
  });

  it("--x86-mode protected starts a flat binary in protected mode", () => {
    const argv = ["--backend", "kvm", "--load-addr", "0x100000", "--x86-mode", "protected"];
    const r = regvisor(["run", ...argv, guest("protected.bin")]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "protected mode, paging off\n");
  });

  it("a flat binary starts in real mode at --load-addr 0x7c00 and prints on COM1", () => {
    const r = regvisor(["run", "--backend", "kvm", "--load-addr", "0x7c00", guest("real.bin")]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "real mode: COM1\n");
    assert.match(lastLine(r.stderr), /wrote 0 to the exit port 0xf4 at rip=0x7c[0-9a-f]{2} /);
  });

  it("an exception with no IDT triple-faults: status 125, one line naming rip", () => {
    const r = regvisor(["run", guest("triple.elf")]);
    assert.equal(r.stdout, "u");
    assertOneLineError(r, 125, /triple fault.* at rip=0x100004 /);
  });

  it("--timeout gets a spinning guest out of KVM_RUN: status 124", () => {
    // 1 s, not less: on a loaded 2-core box the vCPU's KVM_RUN Worker alone can take 0.3 s to
    // start, and the guest must reach its spin loop before the timeout for the rip check.
    const r = regvisor(["run", "--timeout", "1", "--stats", guest("spin.elf")]);
    assert.equal(r.status, 124, r.stderr);
    // intr: the kicks that check a vCPU without exits for an in-kernel HLT (arch/x86/index.ts).
    assert.match(r.stderr, /^regvisor: stats: \d+ exits \((intr \d+, io 1|io 1, intr \d+)\)$/m);
    assert.match(lastLine(r.stderr), /--timeout of 1 s at rip=0x100004 /);
  });

  it("HLT with interrupts enabled ends as idle (status 124) instead of hanging", () => {
    const r = regvisor(["run", guest("idle.elf")]);
    assert.equal(r.status, 124, r.stderr);
    assert.match(lastLine(r.stderr), /interrupts enabled.* at rip=0x100002 /);
  });

  it("--mem too small for the long-mode boot structures and image is refused", () => {
    const r = regvisor(["run", "--mem", "64K", guest("long.elf")]);
    assertOneLineError(r, 1, /Cannot place .* guest RAM is 0x0\.\.0x10000/);
  });
});
