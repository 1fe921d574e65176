/**
 * A guest image read straight into guest RAM (issue 13, the fixed costs of `regvisor run`):
 * `OpenInputFile` (src/vmm/input-file.ts) gives the boot plan the file's size and head only, and
 * `writeImage` (src/vmm/guest-memory.ts) reads a flat binary or Linux Image from the file into
 * the RAM view — no file-sized buffer and copy before the first guest instruction.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { backendPicker } from "../../src/cli/backends.js";
import { planBoot, writeBootPlan } from "../../src/vmm/boot-plan.js";
import { GUEST_FILE_HEAD_BYTES, ImageError, type GuestFile } from "../../src/vmm/image.js";
import { InputFileError, OpenInputFile } from "../../src/vmm/input-file.js";
import { runGuest, type RunSummary } from "../../src/vmm/runner.js";
import { GUEST_BASE, code, putchar, srst } from "./runner-guests.js";

const MiB = 1n << 20n;
const dir = mkdtempSync(join(tmpdir(), "regvisor-guest-file-"));
process.on("exit", () => {
  rmSync(dir, { recursive: true, force: true });
});

/** `length` bytes of a pattern that differs at every offset mod 251. */
function pattern(length: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => i % 251);
}

/** A file on disk holding `bytes`. */
function fileOf(name: string, bytes: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, bytes);
  return path;
}

/** A GuestFile over `bytes` that counts what is read and refuses to be read whole. */
function countingFile(bytes: Uint8Array): GuestFile & { readBytes: number; wholeReads: number } {
  const file = {
    length: bytes.length,
    head: bytes.subarray(0, GUEST_FILE_HEAD_BYTES),
    readBytes: 0,
    wholeReads: 0,
    readInto(target: Uint8Array, offset: number): void {
      target.set(bytes.subarray(offset, offset + target.length));
      file.readBytes += target.length;
    },
    readAll(): Uint8Array {
      file.wholeReads++;
      return bytes.slice();
    },
  };
  return file;
}

/** A RISC-V Linux Image of `length` bytes: the 64-byte header, then a pattern. */
function linuxImage(length: number, imageSize: bigint): Uint8Array {
  const file = pattern(length);
  const view = new DataView(file.buffer);
  view.setUint32(0, 0x0000_006f, true); // code0: j . (never run here)
  view.setUint16(0x3c, 0, true); // no PE header
  view.setBigUint64(0x10, imageSize, true); // image_size
  for (let i = 0; i < 4; i++) file[0x38 + i] = "RSC\x05".charCodeAt(i);
  return file;
}

function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

describe("OpenInputFile", () => {
  it("gives its size and head at once and reads any range at an offset", () => {
    const bytes = pattern(GUEST_FILE_HEAD_BYTES + 5000);
    using file = new OpenInputFile(fileOf("big.bin", bytes), {
      what: "guest image",
      maxBytes: 1 << 20,
    });
    assert.equal(file.length, bytes.length);
    assert.deepEqual(file.head, bytes.subarray(0, GUEST_FILE_HEAD_BYTES));
    const part = new Uint8Array(300);
    file.readInto(part, GUEST_FILE_HEAD_BYTES + 100);
    assert.deepEqual(
      part,
      bytes.subarray(GUEST_FILE_HEAD_BYTES + 100, GUEST_FILE_HEAD_BYTES + 400),
    );
    assert.deepEqual(file.readAll(), bytes);
  });

  it("refuses what readInputFile refuses, in one line, and leaves nothing open", () => {
    const path = fileOf("limit.bin", pattern(100));
    const before = openFds();
    for (const [target, maxBytes, why] of [
      [
        path,
        99,
        /^Cannot read guest image ".*": it is 100 bytes, more than the limit of 99 bytes$/,
      ],
      [dir, 1 << 20, /it is a directory \(EISDIR\)$/],
      [join(dir, "nope"), 1 << 20, /no such file \(ENOENT\)$/],
    ] as const) {
      assert.throws(
        () => new OpenInputFile(target, { what: "guest image", maxBytes }),
        (e: unknown) =>
          e instanceof InputFileError && why.test(e.message) && !e.message.includes("\n"),
      );
    }
    assert.equal(openFds(), before);
  });

  it("refuses a file that shrank since it was opened, naming both sizes", () => {
    const path = fileOf("shrinks.bin", pattern(GUEST_FILE_HEAD_BYTES + 4096));
    using file = new OpenInputFile(path, { what: "guest image", maxBytes: 1 << 20 });
    truncateSync(path, 1000);
    assert.throws(
      () => {
        file.readInto(new Uint8Array(4096), GUEST_FILE_HEAD_BYTES);
      },
      (e: unknown) =>
        e instanceof InputFileError &&
        e.message.endsWith(": it shrank to 1000 bytes while in use (it was 69632)"),
    );
  });
});

describe("a guest file is planned from its head and read into RAM", () => {
  it("a flat binary: never read whole, every byte read once, into place", () => {
    const bytes = pattern(3 * GUEST_FILE_HEAD_BYTES + 7);
    const file = countingFile(bytes);
    const plan = planBoot({ file, arch: "riscv", memSize: 4n * MiB, loadAddr: GUEST_BASE });
    assert.equal(file.readBytes, 0, "planning reads nothing beyond the head");
    const ram = new Uint8Array(4 * 1024 * 1024).fill(0xee);
    writeBootPlan(plan, ram);
    const at = Number(GUEST_BASE - plan.ram.base);
    assert.deepEqual(ram.subarray(at, at + bytes.length), bytes);
    assert.equal(file.readBytes, bytes.length);
    assert.equal(file.wholeReads, 0);
  });

  it("a Linux Image: the header from the head, the file into RAM, the rest of image_size zeroed", () => {
    const bytes = linuxImage(GUEST_FILE_HEAD_BYTES + 12345, 1n * MiB);
    const file = countingFile(bytes);
    const plan = planBoot({ file, memSize: 8n * MiB });
    assert.equal(plan.image.format, "linux");
    const ram = new Uint8Array(8 * 1024 * 1024).fill(0xee);
    writeBootPlan(plan, ram);
    const at = 2 * 1024 * 1024;
    assert.deepEqual(ram.subarray(at, at + bytes.length), bytes);
    assert.ok(ram.subarray(at + bytes.length, at + 1024 * 1024).every((b) => b === 0));
    assert.equal(file.wholeReads, 0);
  });

  it("a Linux Image whose PE headers pass the head is read whole to check them", () => {
    const bytes = linuxImage(GUEST_FILE_HEAD_BYTES + 4096, 1n * MiB);
    bytes[0] = 0x4d; // "MZ": an EFI stub, its PE header beyond the head
    bytes[1] = 0x5a;
    new DataView(bytes.buffer).setUint32(0x3c, GUEST_FILE_HEAD_BYTES + 16, true);
    const file = countingFile(bytes);
    assert.equal(planBoot({ file, memSize: 8n * MiB }).image.format, "linux");
    assert.equal(file.wholeReads, 1);
  });

  it("the same refusals as from bytes: an image_size below the file size", () => {
    const file = countingFile(linuxImage(GUEST_FILE_HEAD_BYTES + 10, 4096n));
    assert.throws(
      () => planBoot({ file, memSize: 8n * MiB }),
      (e: unknown) =>
        e instanceof ImageError &&
        e.code === "IMAGE_BAD_HEADER" &&
        e.message.includes(`smaller than the file (${GUEST_FILE_HEAD_BYTES + 10} bytes)`),
    );
  });
});

describe("runGuest() with an OpenInputFile", () => {
  const guest = code([...putchar(0x4b), ...srst(0, 0)]);
  /** Runs `file` on a soft machine; `out` collects its console. */
  async function runFile(file: OpenInputFile, out: { text: string }): Promise<RunSummary> {
    using backends = backendPicker({});
    // Awaited here: the backends are disposed when this function returns.
    return await runGuest({
      file,
      backendFor: backends.backendFor,
      backend: "soft",
      memSize: 16n * MiB,
      loadAddr: GUEST_BASE,
      output: (bytes) => (out.text += new TextDecoder().decode(bytes)),
    });
  }

  it("runs the guest read from the file", async () => {
    using file = new OpenInputFile(fileOf("guest.bin", guest), {
      what: "guest image",
      maxBytes: 1 << 20,
    });
    const out = { text: "" };
    const s = await runFile(file, out);
    assert.equal(out.text, "K");
    assert.equal(s.ending.status, 0);
  });

  it("refuses a file that shrank before the start in one line, and runs no guest", async () => {
    const padded = new Uint8Array(GUEST_FILE_HEAD_BYTES + 4096);
    padded.set(guest);
    const path = fileOf("shrunk-guest.bin", padded);
    using file = new OpenInputFile(path, { what: "guest image", maxBytes: 1 << 20 });
    truncateSync(path, GUEST_FILE_HEAD_BYTES);
    const out = { text: "" };
    await assert.rejects(
      runFile(file, out),
      (e: unknown) =>
        e instanceof InputFileError &&
        e.message.endsWith(": it shrank to 65536 bytes while in use (it was 69632)"),
    );
    assert.equal(out.text, "");
  });
});
