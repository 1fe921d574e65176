/**
 * Differential test: the same S-mode guest ELFs under qemu-system-riscv64 -M virt -bios default
 * (OpenSBI) and on regvisor's Hart must print identical PASS/FAIL transcripts, on every tier
 * (the interpreter alone, the JS translator and the wasm tier, both compiling every block on
 * first sight; QEMU runs each guest once). Guests that
 * expose a known QEMU 7.2 deviation from the spec only check what both agree on (see the
 * comments in guests/riscv/src); the unit tests pin the exact rules.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  ensureGuests,
  guestElf,
  hasCommand,
  runGuest,
  TEST_GUESTS,
  verdictLines,
} from "./harness.js";
import { eager, ENGINE_TIERS } from "./tiers.js";

const missingGuests = ensureGuests([...TEST_GUESTS, "compute"]);
const skip =
  missingGuests ??
  (hasCommand("qemu-system-riscv64")
    ? undefined
    : "qemu-system-riscv64 not installed (apt-get install qemu-system-misc opensbi)");

/** Runs an ELF under QEMU with OpenSBI; returns the console output (CRs removed). */
function runQemu(elf: string): string {
  const r = spawnSync(
    "qemu-system-riscv64",
    ["-M", "virt", "-bios", "default", "-nographic", "-monitor", "none", "-kernel", elf],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (r.error !== undefined) throw r.error;
  return r.stdout.replace(/\r/g, "");
}

const qemuRuns = new Map<string, string>();
/** QEMU's output for a guest, run once per file however many tiers compare with it. */
function qemu(elf: string): string {
  const known = qemuRuns.get(elf);
  if (known !== undefined) return known;
  const out = runQemu(elf);
  qemuRuns.set(elf, out);
  return out;
}

describe("guests: Hart vs qemu-system-riscv64", () => {
  for (const tier of ENGINE_TIERS.map(eager)) {
    for (const name of TEST_GUESTS) {
      it(`${name} prints the same verdicts as QEMU on the ${tier.name} tier`, { skip }, () => {
        const ours = runGuest(guestElf(name), { ...tier.options, budget: 50_000_000 });
        assert.equal(ours.end, "shutdown");
        const theirs = verdictLines(qemu(guestElf(name)));
        assert.ok(theirs.length > 0, `QEMU printed no verdicts for ${name}`);
        assert.deepEqual(verdictLines(ours.console), theirs);
        // Our console holds nothing but the verdicts (QEMU's also has OpenSBI's banner).
        assert.deepEqual(
          ours.console.split("\n").filter((l) => l !== ""),
          theirs,
        );
      });
    }
  }

  it("compute prints the same checksum as QEMU", { skip }, () => {
    const ours = runGuest(guestElf("compute"), { translate: true });
    const line = qemu(guestElf("compute"))
      .split("\n")
      .find((l) => l.startsWith("compute checksum="));
    assert.equal(ours.console.trim(), line);
  });
});
