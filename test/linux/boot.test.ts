/**
 * The Linux guest (scripts/build-linux.sh: Linux 6.1 + guests/linux/init.c) booted once on
 * regvisor's soft backend with `console=hvc0`, and under QEMU `-M virt` as the differential
 * reference: /init runs, reports what it saw, and the machine powers off with status 0.
 * Each boot costs seconds, so each machine boots once (all at once) and the tests check its
 * transcript.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type Boot,
  type TestDisks,
  assertDiskRefused,
  assertDiskWritten,
  assertInitRan,
  assertUartInterrupts,
  bootLinux,
  bootQemu,
  hasCommand,
  linuxImage,
  machineIndependent,
  makeTestDisks,
} from "./guest.js";

const found = linuxImage();
const image = "image" in found ? found.image : "";
const imageSkip = "skip" in found ? found.skip : undefined;
const qemuSkip =
  imageSkip ??
  (hasCommand("qemu-system-riscv64")
    ? undefined
    : "qemu-system-riscv64 not installed (run scripts/setup.sh)");

const HVC = "console=hvc0 earlycon=sbi";
const TTYS0 = "console=ttyS0";

interface Boots {
  readonly soft: Promise<Boot>;
  readonly qemu: Promise<Boot> | undefined;
  readonly qemuDisk: Promise<Boot> | undefined;
  readonly dir: string;
  readonly disks: TestDisks;
}
let started: Boots | undefined;

/**
 * Starts every boot this file checks, once and all at once (the file's wall time is then
 * the slowest boot, not the sum): regvisor with hvc0, QEMU with ttyS0, QEMU with two disks.
 */
function boots(): Boots {
  if (started) return started;
  const dir = mkdtempSync(join(tmpdir(), "regvisor-linux-"));
  const disks = makeTestDisks(dir, 11);
  const withQemu = qemuSkip === undefined;
  started = {
    soft: bootLinux(image, { cmdline: HVC }),
    qemu: withQemu ? bootQemu(image, { cmdline: TTYS0 }) : undefined,
    qemuDisk: withQemu ? bootQemu(image, { cmdline: TTYS0, disks: disks.disks }) : undefined,
    dir,
    disks,
  };
  return started;
}

after(async () => {
  if (!started) return;
  await Promise.allSettled([started.soft, started.qemu, started.qemuDisk]);
  rmSync(started.dir, { recursive: true, force: true });
});

describe("Linux on the soft backend (console=hvc0, 1 vCPU)", { skip: imageSkip ?? false }, () => {
  let boot: Boot;
  before(async () => {
    boot = await boots().soft;
  });

  it("boots to /init, which runs to its last line", () => {
    assertInitRan(boot, image, HVC);
  });

  it("/init sees one CPU online and the command line the machine passed", () => {
    assert.ok(boot.init.includes("cpus online 0 count 1"), boot.init.join("\n"));
    assert.ok(boot.init.includes(`cmdline ${HVC}`));
  });

  it("the kernel's own messages reach the console before /init (earlycon, then hvc0)", () => {
    const first = boot.stdout.indexOf("init: started");
    assert.match(boot.stdout.slice(0, first), /Linux version 6\.1\.\d+/);
    assert.match(boot.stdout.slice(0, first), /Run \/init as init process/);
  });

  it("powers off through SBI SRST with exit status 0", () => {
    assert.equal(boot.status, 0, boot.stderr);
    assert.match(boot.stderr, /SRST shutdown[^\n]*exit status 0\n?$/);
  });
});

describe(
  "Linux under QEMU -M virt: the differential reference",
  { skip: qemuSkip ?? false },
  () => {
    let qemu: Boot;
    let qemuDisk: Boot;
    let disks: TestDisks;

    before(async () => {
      const b = boots();
      disks = b.disks;
      [qemu, qemuDisk] = await Promise.all([
        b.qemu ?? Promise.reject(new Error("QEMU boot not started")),
        b.qemuDisk ?? Promise.reject(new Error("QEMU disk boot not started")),
      ]);
    });

    it("QEMU boots the same Image to /init, UART interrupts through the PLIC, status 0", () => {
      assertInitRan(qemu, image, TTYS0);
      assertUartInterrupts(qemu);
      assert.equal(qemu.status, 0, qemu.stderr);
    });

    it("/init's machine-independent lines are the same on regvisor and on QEMU", async () => {
      const ours = await boots().soft;
      assert.equal(ours.timedOut, false, ours.stdout.slice(-2000));
      assert.deepEqual(machineIndependent(ours.init), machineIndependent(qemu.init));
    });

    it("QEMU: /init reads a virtio disk, writes and fsyncs it; the host file has the write", () => {
      assertInitRan(qemuDisk, image, TTYS0);
      assertDiskWritten(qemuDisk, "vda", disks.rw);
      assert.equal(qemuDisk.status, 0, qemuDisk.stderr);
    });

    it("QEMU: a read-only disk is read, refuses the write with an errno, the file is unchanged", () => {
      assertDiskRefused(qemuDisk, "vdb", disks.ro);
    });
  },
);
