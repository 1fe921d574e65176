/**
 * `regvisor run --mem` across the documented range: an x86 guest on KVM with 8 GiB that reads
 * what the VMM placed at 5 GiB and uses RAM up to 8 GiB; a RISC-V guest on the soft backend with
 * 3 GiB that does loads, stores and atomics 2.5+ GiB above the RAM base; the soft backend's
 * one-line refusal above 4 GiB.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { REPO, assertOneLineError, buildGuests, lastLine, regvisor } from "./run-file-helpers.js";

const noKvm = kvmUnavailableReason();
const x86Skip =
  noKvm === undefined ? buildGuests("guests/x86/tests", ["as", "ld"]) : `/dev/kvm: ${noKvm}`;
const riscvSkip = buildGuests("guests/riscv/tests", ["riscv64-unknown-elf-gcc"]);

describe("regvisor run --mem: guest RAM above 2 and 4 GiB", () => {
  it("x86 on KVM with --mem 8G: RAM at 5, 7 and 8 GiB works", { skip: x86Skip ?? false }, () => {
    const r = regvisor(["run", "--mem", "8G", join(REPO, "guests/x86/tests/build/high.elf")]);
    assert.equal(r.status, 42, r.stderr);
    assert.equal(r.stdout, "RAM above 4 GiB: ok\n");
    assert.match(lastLine(r.stderr), /wrote 42 to the exit port 0xf4 .*exit status 42$/);
  });

  it(
    "soft RISC-V with --mem 3G: loads, stores and AMOs 2.5 GiB up",
    { skip: riscvSkip ?? false },
    () => {
      const r = regvisor(["run", "--mem", "3G", join(REPO, "guests/riscv/tests/build/high.elf")]);
      assert.equal(r.status, 42, r.stderr);
      assert.equal(r.stdout, "RAM above 2 GiB: ok\n");
    },
  );

  it("the soft backend refuses --mem above 4 GiB in one line", { skip: riscvSkip ?? false }, () => {
    const r = regvisor(["run", "--mem", "5G", join(REPO, "guests/riscv/tests/build/high.elf")]);
    assertOneLineError(r, 2, /--mem: 5 GiB is more than the soft backend holds: .* at most 4 GiB/);
  });
});
