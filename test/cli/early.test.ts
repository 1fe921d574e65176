/**
 * `regvisor run`'s early start (src/cli/early.ts): which command lines prime the soft engine
 * before the run command loads, read from the options and, without `--backend`, from the
 * FILE's first bytes. A wrong answer costs start-up time only (run.ts judges the command line),
 * so the cases pin down that a KVM, threaded or incoming run never pays for the priming and a
 * soft inline run always gets it.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runsInlineSoftHart } from "../../src/cli/early.js";

const BIN = fileURLToPath(new URL("../../src/cli/bin.js", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "regvisor-early-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** A file of 64 bytes: an ELF header for `machine`, or a Linux Image header with `magic2`. */
function header(name: string, fill: (view: DataView) => void): string {
  const bytes = new Uint8Array(64);
  fill(new DataView(bytes.buffer));
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

const elf = (machine: number) => (v: DataView) => {
  v.setUint32(0, 0x464c457f, true); // 7f 'E' 'L' 'F'
  v.setUint16(18, machine, true); // e_machine
};
const RISCV_ELF = header("riscv.elf", elf(243));
const X86_ELF = header("x86.elf", elf(62));
const RISCV_IMAGE = header("Image", (v) => {
  v.setUint32(0x38, 0x05435352, true); // "RSC\x05"
});
const ARM64_IMAGE = header("arm64-Image", (v) => {
  v.setUint32(0x38, 0x644d5241, true); // "ARM\x64"
});
const FIFO = join(dir, "fifo");
execFileSync("mkfifo", [FIFO]);
const SHORT = join(dir, "short");
writeFileSync(SHORT, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46));

describe("run's early start: which runs prime the soft engine first", () => {
  it("--backend soft primes, one vCPU or --mode inline; --backend kvm never does", () => {
    assert.equal(runsInlineSoftHart(["--backend", "soft"]), true);
    assert.equal(runsInlineSoftHart(["--backend=soft", "--mem", "256M", X86_ELF]), true);
    assert.equal(runsInlineSoftHart(["--backend", "soft", "--cpus", "1", RISCV_IMAGE]), true);
    assert.equal(
      runsInlineSoftHart(["--backend", "soft", "--cpus", "4", "--mode", "inline"]),
      true,
    );
    assert.equal(runsInlineSoftHart(["--backend", "kvm", RISCV_IMAGE]), false);
    assert.equal(runsInlineSoftHart(["--backend", "bogus", RISCV_IMAGE]), false);
  });

  it("a threaded, incoming or help run does not prime this thread", () => {
    assert.equal(runsInlineSoftHart(["--backend", "soft", "--mode", "threaded"]), false);
    assert.equal(runsInlineSoftHart(["--backend", "soft", "--cpus", "2", RISCV_IMAGE]), false);
    assert.equal(runsInlineSoftHart(["--incoming", "tcp:127.0.0.1:1", "--backend", "soft"]), false);
    assert.equal(runsInlineSoftHart(["--backend", "soft", "--help"]), false);
  });

  it("without --backend, the FILE decides: a RISC-V Image or ELF primes, nothing else does", () => {
    assert.equal(runsInlineSoftHart([RISCV_IMAGE]), true);
    assert.equal(runsInlineSoftHart(["--cmdline", "console=hvc0", RISCV_ELF]), true);
    assert.equal(runsInlineSoftHart([X86_ELF]), false);
    assert.equal(runsInlineSoftHart([ARM64_IMAGE]), false);
    assert.equal(runsInlineSoftHart([SHORT]), false);
    assert.equal(runsInlineSoftHart([join(dir, "missing")]), false);
    assert.equal(runsInlineSoftHart([dir]), false, "a directory");
    assert.equal(runsInlineSoftHart([]), false, "the demo: KVM first when it works");
    assert.equal(runsInlineSoftHart([RISCV_IMAGE, RISCV_ELF]), false, "two FILEs: refused later");
  });

  it("run FIFO is refused in one line at once, as before the early start (no wait for a writer)", () => {
    const r = spawnSync(process.execPath, [BIN, "run", FIFO], {
      encoding: "utf8",
      timeout: 20_000,
    });
    assert.equal(r.signal, null, "killed by the timeout: the early start waited on the FIFO");
    assert.equal(r.status, 1, r.stderr);
    assert.equal(
      r.stderr,
      `regvisor: Cannot read guest image "${FIFO}": it is a pipe, not a regular file\n`,
    );
  });

  it("a value is not taken for the FILE: --cmdline's text, --load-addr's address", () => {
    assert.equal(runsInlineSoftHart(["--cmdline", RISCV_IMAGE, X86_ELF]), false);
    assert.equal(runsInlineSoftHart(["--load-addr", "0x80200000", RISCV_IMAGE]), true);
  });

  it("an early start that cannot make a hart changes nothing: the command line is judged first", () => {
    const env = { ...process.env, REGVISOR_SOFT_TIER: "bogus" };
    const bad = spawnSync(process.execPath, [BIN, "run", "--backend", "soft", "--mem", "1x"], {
      encoding: "utf8",
      env,
    });
    assert.equal(bad.status, 2, bad.stderr);
    assert.equal(
      bad.stderr,
      "regvisor: --mem needs a FILE to run (without one, run starts the demo)\n",
    );
    const tier = spawnSync(process.execPath, [BIN, "run", "--backend", "soft"], {
      encoding: "utf8",
      env,
    });
    assert.equal(tier.status, 1, tier.stderr);
    assert.match(
      tier.stderr,
      /^regvisor: Cannot create a soft hart: REGVISOR_SOFT_TIER is "bogus"/,
    );
    assert.equal(tier.stderr.split("\n").length, 2, "one line");
  });
});
