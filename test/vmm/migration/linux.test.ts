import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  assertDiskWritten,
  DISK_SIZE,
  diskImage,
  initLines,
  linuxImage,
  type Boot,
} from "../../linux/guest.js";
import { apiRequest } from "../../../src/vmm/api/client.js";
import {
  ctl,
  joinedConsoleMatches,
  pauseAfterInitStarted,
  RaceLost,
  start,
  tempDir,
  linuxSkip,
  withRaceRetries,
} from "./procs.js";

const found = linuxImage();
const CMDLINE = "console=ttyS0";

describe(
  "live migration of a Linux guest with a virtio-blk disk on shared storage",
  {
    skip: linuxSkip(found),
  },
  () => {
    it("moves during boot, then again after /init started; /init's disk write lands in the file", async (t) => {
      await withRaceRetries(t, async () => {
        assert.ok("image" in found);
        const dir = tempDir();
        const disk = { path: join(dir, "rw.img"), bytes: diskImage(DISK_SIZE, 5) };
        writeFileSync(disk.path, disk.bytes);
        const a = `unix:${join(dir, "a.sock")}`;
        const b = `unix:${join(dir, "b.sock")}`;
        const dstA = start(["run", "--incoming", a, "--api", join(dir, "a.api")]);
        const dstB = start(["run", "--incoming", b, "--disk", disk.path]);
        const src = start([
          "run",
          "--backend",
          "soft",
          "--mem",
          "256M",
          "--cmdline",
          CMDLINE,
          "--disk",
          disk.path,
          "--api",
          join(dir, "src.api"),
          found.image,
        ]);
        try {
          await src.waitFor(/Linux version/, 120_000);
          // From this process at once: the boot has ~1 s of guest time left, and a ctl process
          // takes ~100-200 ms to start, so the guest could power off before its move ended.
          const first = await apiRequest(
            join(dir, "src.api"),
            "PUT",
            "/migrate",
            { uri: a },
            60_000,
          );
          const firstStatus = (first.body as { status?: string }).status;
          if (firstStatus === "failed") {
            // On a loaded host the guest can finish its boot and power off while round 1 still
            // runs: then the source reports the move failed (its VM closed) and exits as the
            // guest did. That is a lost race, not a lost guest.
            await Promise.race([src.exited, new Promise((resolve) => setTimeout(resolve, 2000))]);
            if (/^init: power off/m.test(src.stdout)) {
              throw new RaceLost("the guest powered off before its first move completed");
            }
          }
          assert.equal(firstStatus, "completed", JSON.stringify(first.body));
          assert.equal(await src.exited, 0, src.stderr);
          // The first move may land while /init prints its first line: look at the console as
          // a whole (source then destination), as the guest wrote it.
          await joinedConsoleMatches([src, dstA], /^init: started/m, 240_000);
          // /init runs for well under a second here: pause it at once, from this process (a ctl
          // process takes ~100 ms to start), then move the paused guest; it runs on at dstB.
          await pauseAfterInitStarted(join(dir, "a.api"), dstA);
          const second = await ctl([join(dir, "a.api"), "migrate", b, "--json"]);
          assert.equal(second.code, 0, second.stdout + second.stderr);
          assert.equal(await dstA.exited, 0, dstA.stderr);
          assert.equal(await dstB.exited, 0, dstB.stderr);
          const console = src.stdout + dstA.stdout + dstB.stdout;
          const boot: Boot = {
            status: 0,
            signal: null,
            stdout: console,
            stderr: "",
            init: initLines(console),
            firstInitMs: undefined,
            firstInitCpuS: undefined,
            timedOut: false,
          };
          assert.ok(boot.init.includes("started") && boot.init.includes("power off"), console);
          assert.ok(boot.init.includes(`cmdline ${CMDLINE}`));
          assert.match(dstB.stdout, /init: /, "the console continued on the last destination");
          assertDiskWritten(boot, "vda", disk);
        } finally {
          for (const p of [src, dstA, dstB]) p.child.kill();
        }
      });
    });
  },
);
