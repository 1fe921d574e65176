import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { InputFileError, readInputFile, statInputFile } from "../../src/vmm/input-file.js";

const dir = mkdtempSync(join(tmpdir(), "regvisor-input-"));
process.on("exit", () => {
  rmSync(dir, { recursive: true, force: true });
});

const small = join(dir, "small.bin");
writeFileSync(
  small,
  Uint8Array.from({ length: 100 }, (_, i) => i),
);
const fifo = join(dir, "pipe");
const hasFifo = spawnSync("mkfifo", [fifo]).status === 0;

/** Asserts a one-line InputFileError naming `path` that matches `why`. */
function refused(read: () => unknown, path: string, why: RegExp): void {
  assert.throws(read, (e: unknown) => {
    assert.ok(e instanceof InputFileError, String(e));
    assert.equal(e.code, "INPUT_FILE");
    assert.ok(e.message.includes(path), e.message);
    assert.match(e.message, why);
    assert.doesNotMatch(e.message, /\n/);
    return true;
  });
}

describe("readInputFile()", () => {
  it("reads a regular file within the limit, byte for byte", () => {
    const bytes = readInputFile(small, { what: "snapshot", maxBytes: 100 });
    assert.deepEqual(
      [...bytes],
      Array.from({ length: 100 }, (_, i) => i),
    );
    assert.equal(statInputFile(small, { what: "disk image", maxBytes: 100 }), 100);
  });

  it("refuses a file above the limit before reading it", () => {
    refused(
      () => readInputFile(small, { what: "snapshot", maxBytes: 99 }),
      small,
      /^Cannot read snapshot .*: it is 100 bytes, more than the limit of 99 bytes$/,
    );
    refused(
      () => statInputFile(small, { what: "disk image", maxBytes: 64 }),
      small,
      /^Cannot read disk image .*more than the limit of 64 bytes$/,
    );
  });

  it("refuses devices, directories and missing files in one line", () => {
    const o = { what: "snapshot", maxBytes: 1 << 30 };
    // /dev/zero has no end: reading it grew to 4+ GB before (issue 12 point 6).
    refused(() => readInputFile("/dev/zero", o), "/dev/zero", /it is a character device/);
    refused(() => statInputFile("/dev/zero", o), "/dev/zero", /it is a character device/);
    refused(() => readInputFile(dir, o), dir, /it is a directory, not a regular file$/);
    refused(() => readInputFile(join(dir, "nope"), o), "nope", /no such file$/);
  });

  it(
    "refuses a FIFO without waiting for a writer",
    { skip: hasFifo ? false : "mkfifo failed" },
    () => {
      refused(
        () => readInputFile(fifo, { what: "guest image", maxBytes: 1 << 20 }),
        fifo,
        /it is a pipe, not a regular file$/,
      );
    },
  );
});
