/**
 * The optional native ioctl addon (native/kvm_ioctl.cc): it is the path ioctls take when it was
 * built, it refuses malformed arguments without calling anything, it reports failures as
 * `-errno` exactly as the koffi path does, and the KVM tests pass on the koffi path too.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ERRNO } from "../../../src/abi/kvm/errno.js";
import { IOCTLS } from "../../../src/abi/kvm/ioctls.js";
import {
  closeFd,
  ioctlValue,
  O_CLOEXEC,
  O_RDWR,
  openPath,
  viewAddress,
} from "../../../src/backends/kvm/ffi.js";
import { ioctlPath } from "../../../src/backends/kvm/index.js";
import { KVM_SKIP } from "./helpers.js";

const REPO = fileURLToPath(new URL("../../../../", import.meta.url));
const ADDON = join(REPO, "build/Release/regvisor_kvm.node");
const NOT_BUILT: string | false = existsSync(ADDON)
  ? false
  : "the native addon was not built at install (see build/native-build.log)";
const FORCED_OFF = process.env.REGVISOR_NATIVE === "0" ? "REGVISOR_NATIVE=0 in this run" : false;

type RawIoctl = (...args: unknown[]) => number;
interface Addon {
  readonly ioctl: RawIoctl;
  readonly address: (...args: unknown[]) => number | undefined;
}
function addon(): Addon {
  return createRequire(import.meta.url)(ADDON) as Addon;
}
function addonIoctl(): RawIoctl {
  return addon().ioctl;
}

describe("native ioctl addon", () => {
  // Run twice: here, and with REGVISOR_NATIVE=0 by the koffi run at the end of this file.
  it("is the path ioctls take, unless REGVISOR_NATIVE=0", { skip: NOT_BUILT }, () => {
    const expected = FORCED_OFF
      ? { kind: "koffi", reason: "REGVISOR_NATIVE=0" }
      : { kind: "addon" };
    assert.deepEqual(ioctlPath(), expected);
  });

  it("refuses malformed arguments with a TypeError", { skip: NOT_BUILT }, () => {
    const ioctl = addonIoctl();
    const request = IOCTLS.KVM_GET_API_VERSION.number;
    for (const args of [
      [],
      [0, request],
      [1.5, request, 0],
      ["0", request, 0],
      [0, -1, 0],
      [0, request, -1],
      [0, request, 0.5],
      [0, request, 2 ** 53],
      [0, request, 1n],
    ]) {
      assert.throws(() => ioctl(...args), TypeError, `args ${String(args)}`);
    }
  });

  it(
    "address() refuses anything but a typed array or DataView with a TypeError",
    { skip: NOT_BUILT },
    () => {
      const { address } = addon();
      const cases: [string, unknown[]][] = [
        ["nothing", []],
        ["an ArrayBuffer", [new ArrayBuffer(8)]],
        ["an array", [[1, 2]]],
        ["a number", [0]],
        ["two arguments", [new Uint8Array(8), 1]],
      ];
      for (const [what, args] of cases) assert.throws(() => address(...args), TypeError, what);
    },
  );

  it("viewAddress() is a view's first byte on the addon path, undefined on koffi", () => {
    const bytes = new Uint8Array(256);
    const base = viewAddress(bytes);
    if (FORCED_OFF || NOT_BUILT) {
      assert.equal(base, undefined);
      return;
    }
    if (base === undefined) throw new assert.AssertionError({ message: "no address" });
    assert.ok(base > 0 && Number.isInteger(base));
    assert.equal(viewAddress(bytes.subarray(37)), base + 37);
    assert.equal(viewAddress(bytes), base, "stable from call to call");
    // A small array starts on V8's heap; once asked for, its bytes stay put.
    const small = new Uint8Array(8);
    const first = viewAddress(small);
    new Array(100_000).fill(0).map((_, i) => ({ i })); // garbage, so a scavenge runs
    assert.equal(viewAddress(small), first);
    // Shared memory is never handed to the kernel in place: callers copy it.
    assert.equal(viewAddress(new Uint8Array(new SharedArrayBuffer(64))), undefined);
  });

  it("returns -errno on failure, as the koffi path does", { skip: NOT_BUILT }, () => {
    const ioctl = addonIoctl();
    assert.equal(ioctl(-1, IOCTLS.KVM_GET_API_VERSION.number, 0), -ERRNO.EBADF);
    assert.equal(ioctlValue(-1, IOCTLS.KVM_GET_API_VERSION.number, 0), -ERRNO.EBADF);
  });

  it("returns the kernel's result on success", { skip: NOT_BUILT || KVM_SKIP }, () => {
    const fd = openPath("/dev/kvm", O_RDWR | O_CLOEXEC);
    assert.ok(fd >= 0, `open /dev/kvm: ${fd}`);
    try {
      assert.equal(addonIoctl()(fd, IOCTLS.KVM_GET_API_VERSION.number, 0), 12);
      // An fd that is not a KVM fd: the kernel's ENOTTY comes back, not a throw.
      assert.equal(addonIoctl()(0, IOCTLS.KVM_GET_API_VERSION.number, 0), -ERRNO.ENOTTY);
    } finally {
      closeFd(fd);
    }
  });

  it(
    "leaves every KVM register and run test passing on the koffi path",
    { skip: KVM_SKIP || FORCED_OFF },
    () => {
      const dir = join(REPO, "dist/test/backends/kvm");
      const files = [
        "system.test.js",
        "registers.test.js",
        "many-regs.test.js",
        "run.test.js",
        "native.test.js",
      ];
      // Without NODE_TEST_CONTEXT the child reports as a top-level run, in TAP on stdout.
      const env: NodeJS.ProcessEnv = { ...process.env, REGVISOR_NATIVE: "0" };
      delete env.NODE_TEST_CONTEXT;
      const args = ["--test", "--test-reporter=tap", ...files.map((f) => join(dir, f))];
      const child = spawnSync(process.execPath, args, {
        encoding: "utf8",
        env,
        timeout: 120_000,
      });
      const out = child.stdout;
      assert.equal(child.status, 0, out.slice(-3000));
      assert.match(out, /^# fail 0$/m);
      assert.match(out, /^ {4}ok \d+ - is the path ioctls take, unless REGVISOR_NATIVE=0$/m);
      const pass = /^# pass (\d+)$/m.exec(out);
      assert.ok(
        pass !== null && Number(pass[1]) > 20,
        `too few tests passed:\n${out.slice(-1500)}`,
      );
    },
  );
});
