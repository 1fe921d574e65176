/**
 * The Linux guest on the whole machine (issue 11): a 16550A UART on the PLIC as the console
 * (`console=ttyS0`, interrupt-driven), two vCPUs, a writable and a read-only virtio-blk disk,
 * all in one boot (each boot costs seconds), with QEMU `-M virt -smp 2` and the same disks as
 * the differential reference. The Image is loaded by its header (no `--load-addr`).
 *
 * Skips visibly while `regvisor run` has no `--cpus`/`--disk` (the machine's CLI options).
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
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
  runHasOption,
  uartInterruptCount,
} from "./guest.js";

const found = linuxImage();
const image = "image" in found ? found.image : "";
const missing = ["--cpus", "--disk"].filter((o) => !runHasOption(o));
const machineSkip =
  "skip" in found
    ? found.skip
    : missing.length > 0
      ? `regvisor run has no ${missing.join(" or ")} yet (issue 11 point 5)`
      : undefined;
const qemuSkip =
  machineSkip ??
  (hasCommand("qemu-system-riscv64")
    ? undefined
    : "qemu-system-riscv64 not installed (run scripts/setup.sh)");

const CMDLINE = "console=ttyS0";
const CPUS = 2;

interface Boots {
  readonly soft: Promise<Boot>;
  readonly qemu: Promise<Boot> | undefined;
  readonly dir: string;
  readonly softDisks: TestDisks;
  readonly qemuDisks: TestDisks;
}
let started: Boots | undefined;

/** Both boots at once, each with its own copies of the same two disks. */
function boots(): Boots {
  if (started) return started;
  const dir = mkdtempSync(join(tmpdir(), "regvisor-linux-machine-"));
  mkdirSync(join(dir, "soft"));
  mkdirSync(join(dir, "qemu"));
  const softDisks = makeTestDisks(join(dir, "soft"), 21);
  const qemuDisks = makeTestDisks(join(dir, "qemu"), 21);
  const opts = { cmdline: CMDLINE, cpus: CPUS, loadAddr: null };
  started = {
    soft: bootLinux(image, { ...opts, disks: softDisks.disks }),
    qemu: qemuSkip === undefined ? bootQemu(image, { ...opts, disks: qemuDisks.disks }) : undefined,
    dir,
    softDisks,
    qemuDisks,
  };
  return started;
}

after(async () => {
  if (!started) return;
  await Promise.allSettled([started.soft, started.qemu]);
  rmSync(started.dir, { recursive: true, force: true });
});

describe(
  "Linux on the machine: ttyS0, 2 vCPUs, two virtio disks",
  { skip: machineSkip ?? false },
  () => {
    let boot: Boot;
    let disks: TestDisks;
    before(async () => {
      const b = boots();
      disks = b.softDisks;
      boot = await b.soft;
    });

    it("boots to /init on the UART console and powers off with status 0", () => {
      assertInitRan(boot, image, CMDLINE);
      assert.equal(boot.status, 0, boot.stderr);
    });

    it("the UART is interrupt-driven: /proc/interrupts counts PLIC interrupts for ttyS0", async (t) => {
      if (uartInterruptCount(boot) > 0) return;
      // /init's count is a snapshot that races with CPU 0. write(2) on ttyS0 returns once the
      // bytes are queued (uart_write); the THRE interrupt that moves them is routed to CPU 0
      // only (the PLIC driver's effective affinity is one CPU), so when /init runs on CPU 1
      // and CPU 0's vCPU thread waits longer for the host than /init takes to write its lines
      // and read /proc/interrupts, the count is still 0 and the bytes go out after it. With 8
      // boots at once on 2 cores, claims came up to 42 ms after the UART's line rose; delaying
      // only hart 0's interrupt line by 30 ms gives "0 0" every time, the one claim after the
      // read (the same failure seen once in CI).
      // A UART that never interrupts gives 0 on every boot: boot once more and require it.
      t.diagnostic(`ttyS0 counted no interrupts when /init looked (CPU 0 was late); booting again`);
      const again = await bootLinux(image, { cmdline: CMDLINE, cpus: CPUS, loadAddr: null });
      assertInitRan(again, image, CMDLINE);
      assertUartInterrupts(again);
    });

    it("/init sees both vCPUs online", () => {
      assert.ok(boot.init.includes("cpus online 0-1 count 2"), boot.init.join("\n"));
    });

    it("/init reads, writes and fsyncs the disk; the host file has exactly that write", () => {
      assertDiskWritten(boot, "vda", disks.rw);
    });

    it("the read-only disk refuses /init's write with an errno and its file is unchanged", () => {
      assertDiskRefused(boot, "vdb", disks.ro);
    });
  },
);

describe(
  "the machine against QEMU -M virt -smp 2 with the same disks",
  { skip: qemuSkip ?? false },
  () => {
    it("/init's machine-independent lines are the same", async () => {
      const b = boots();
      const [ours, qemu] = await Promise.all([
        b.soft,
        b.qemu ?? Promise.reject(new Error("no QEMU")),
      ]);
      assertInitRan(qemu, image, CMDLINE);
      assertDiskWritten(qemu, "vda", b.qemuDisks.rw);
      assert.deepEqual(machineIndependent(ours.init), machineIndependent(qemu.init));
    });
  },
);
