/**
 * `regvisor run` machine options on the command line: --cpus, --disk, --initrd and Linux
 * Images; every bad input is one line on stderr before the guest starts, and changes nothing.
 * The guests are hand-assembled (test/vmm/runner-guests.ts), so no cross compiler is needed.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backendPicker } from "../../src/cli/backends.js";
import { riscvElf, srst } from "../vmm/runner-guests.js";
import { assertOneLineError, lastLine, regvisor } from "./run-file-helpers.js";

const dir = mkdtempSync(join(tmpdir(), "regvisor-machine-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
const guest = join(dir, "shutdown.elf");
writeFileSync(guest, riscvElf(srst(0, 0)));
const disk = join(dir, "disk.img");
writeFileSync(disk, new Uint8Array(64 * 1024).fill(0x5a));
symlinkSync(disk, join(dir, "alias.img"));
mkdirSync(join(dir, "adir"));

/** A Linux Image header with `magic` at 0x38 (Documentation/arch/riscv/boot.rst). */
function imageWithMagic(magic: string): string {
  const file = new Uint8Array(4096);
  const view = new DataView(file.buffer);
  view.setBigUint64(0x10, 0x20_0000n, true);
  for (let i = 0; i < 4; i++) file[0x38 + i] = magic.charCodeAt(i);
  const path = join(dir, `image-${magic.charCodeAt(0)}`);
  writeFileSync(path, file);
  return path;
}

describe("regvisor run: machine options", () => {
  it("runs several soft vCPUs threaded by default (each in its Worker), one inline", () => {
    const mode = (options: Parameters<typeof backendPicker>[0]): string | undefined => {
      using picker = backendPicker(options);
      return picker.backendFor("riscv").mode;
    };
    assert.equal(mode({ cpus: 2 }), "threaded");
    assert.equal(mode({ cpus: 1 }), "inline");
    assert.equal(mode({ cpus: 2, mode: "inline" }), "inline");
  });

  it("attaches a disk read-only to a bare-metal guest and leaves the file unchanged", () => {
    const before = readFileSync(disk);
    const r = regvisor(["run", "--disk", `${disk},readonly`, "--cpus", "2", guest]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(lastLine(r.stderr), /SRST shutdown/);
    assert.deepEqual(readFileSync(disk), before);
  });

  const refusals: [string, string[], number, RegExp][] = [
    ["--cpus 0", ["--cpus", "0"], 2, /--cpus: expected a whole number from 1 to 64/],
    ["--cpus above the limit", ["--cpus", "65"], 2, /--cpus: expected a whole number/],
    ["a missing disk", ["--disk", join(dir, "nope.img")], 1, /Cannot open disk image.*ENOENT/],
    ["a directory as a disk", ["--disk", join(dir, "adir")], 1, /EISDIR/],
    [
      "the same disk twice (through a symlink)",
      ["--disk", disk, "--disk", join(dir, "alias.img")],
      1,
      /same file as/,
    ],
    ["an unknown disk option", ["--disk", `${disk},rw`], 2, /unknown option "rw"/],
    [
      "a missing initrd",
      ["--initrd", join(dir, "nope.cpio")],
      1,
      /Cannot read initrd ".*": no such file \(ENOENT\)/,
    ],
    [
      "an initrd that is a directory",
      ["--initrd", dir],
      1,
      /Cannot read initrd ".*": it is a directory \(EISDIR\)/,
    ],
  ];
  for (const [what, args, status, pattern] of refusals) {
    it(`refuses ${what} with one line before the guest starts`, () => {
      const r = regvisor(["run", ...args, guest]);
      assertOneLineError(r, status, pattern);
      assert.equal(r.stdout, "");
    });
  }

  it("refuses --virtio-console for an x86 guest with one line, and takes it for RISC-V", () => {
    const flat = join(dir, "x86.bin");
    writeFileSync(flat, Uint8Array.of(0xf4));
    const argv = ["run", "--backend", "kvm", "--load-addr", "0x7c00", "--virtio-console", flat];
    const r = regvisor(argv);
    assertOneLineError(r, 2, /--virtio-console: applies to RISC-V guests/);
    assert.equal(r.stdout, "");
    const ok = regvisor(["run", "--virtio-console", "--disk", `${disk},readonly`, guest]);
    assert.equal(ok.status, 0, ok.stderr);
  });

  it("refuses an arm64 Linux Image by name", () => {
    const r = regvisor(["run", imageWithMagic("ARMd")]);
    assertOneLineError(r, 1, /arm64 kernel/);
  });

  it("refuses a RISC-V Linux Image whose kernel does not fit in RAM", () => {
    const r = regvisor(["run", "--mem", "2M", imageWithMagic("RSC\x05")]);
    assertOneLineError(r, 1, /Cannot/);
  });
});
