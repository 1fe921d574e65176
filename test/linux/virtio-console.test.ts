/**
 * The Linux guest with `--virtio-console` as its console: one boot on the soft backend with two
 * virtio-blk disks before the console (so the console is transport 2, PLIC source 3) and
 * `console=hvc1` — Linux 6.1 names the virtio port hvc1 because the built-in SBI console driver
 * holds hvc0 (src/vmm/arch/riscv/devices.ts). /init's lines can only reach the host through the
 * virtio console: with no earlycon, the SBI console prints nothing, which `--stats` shows as no
 * forwarded SBI calls at all.
 *
 * Skips visibly when the kernel is not built or `regvisor run` has no `--virtio-console`.
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
  bootLinux,
  linuxImage,
  makeTestDisks,
  runHasOption,
} from "./guest.js";

const found = linuxImage();
const image = "image" in found ? found.image : "";
const skip =
  "skip" in found
    ? found.skip
    : runHasOption("--virtio-console")
      ? undefined
      : "regvisor run has no --virtio-console yet";

const CMDLINE = "console=hvc1";

describe("Linux with the virtio console (console=hvc1)", { skip: skip ?? false }, () => {
  let boot: Boot;
  let dir: string;
  let disks: TestDisks;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "regvisor-linux-vcon-"));
    disks = makeTestDisks(dir, 31);
    boot = await bootLinux(image, {
      cmdline: CMDLINE,
      loadAddr: null,
      disks: disks.disks,
      extraArgs: ["--virtio-console", "--stats"],
    });
  });

  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("/init's output arrives through hvc1 and the machine powers off with status 0", () => {
    assertInitRan(boot, image, CMDLINE);
    assert.equal(boot.status, 0, boot.stderr);
    const stats = /^regvisor: stats: \d+ exits \(([^)]*)\)$/m.exec(boot.stderr);
    assert.ok(stats, boot.stderr);
    assert.doesNotMatch(stats[1] ?? "", /riscv_sbi/, "nothing went through the SBI console");
  });

  it("the console interrupts through PLIC source 3, after the two disks", () => {
    const line = boot.init.find((l) => l.endsWith(" virtio2"));
    assert.ok(line, boot.init.join("\n"));
    const m = /^irq \d+: (\d+) SiFive PLIC 3 \w+ virtio2$/.exec(line);
    assert.ok(m, line);
    assert.ok(Number(m[1]) > 0, `no console interrupts: ${line}`);
  });

  it("the disks before it still work: vda written and fsynced, vdb refused", () => {
    assertDiskWritten(boot, "vda", disks.rw);
    assertDiskRefused(boot, "vdb", disks.ro);
  });
});
