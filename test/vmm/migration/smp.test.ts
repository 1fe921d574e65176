/**
 * Live migration of 2-vCPU guests (soft backend) between two `regvisor run` processes:
 *
 * - our bare-metal dirtier built for two harts (guests/riscv/migrate/dirty.c, -DHARTS=2): each
 *   hart rewrites its own half of the pages and prints its own progress, so the destination's
 *   output shows both harts running there, and the final check shows no page of either was lost;
 * - a Linux guest with --cpus 2 moved after /init started: /init's report continues on the
 *   destination (it saw both CPUs online) to its power-off. /init prints nothing per CPU after
 *   it started, so that both harts run on at the destination is shown by the bare-metal guest.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildGuests, REPO } from "../../cli/run-file-helpers.js";
import { initLines, linuxImage } from "../../linux/guest.js";
import {
  assertContinued,
  ctl,
  pauseAfterInitStarted,
  start,
  tempDir,
  linuxSkip,
  withRaceRetries,
} from "./procs.js";

const skip = buildGuests("guests/riscv/migrate", ["riscv64-unknown-elf-gcc"]);
const ELF = join(REPO, "guests/riscv/migrate/build/dirty-smp.elf");

/** Hart 1's progress line numbers. */
function hart1Ticks(stdout: string): number[] {
  return [...stdout.matchAll(/^hart1 tick (\d+) /gm)].map((m) => Number(m[1]));
}

describe("live migration of a guest with two harts", { skip: skip ?? false }, () => {
  it("both harts go on at the destination: their progress continues and every page holds", async () => {
    const dir = tempDir();
    const where = `unix:${join(dir, "m.sock")}`;
    const dst = start(["run", "--incoming", where]);
    const src = start(["run", "--cpus", "2", "--mem", "32M", "--api", join(dir, "api"), ELF]);
    try {
      await src.waitFor(/^hart1 tick 3 /m);
      await src.waitFor(/^tick 3 /m);
      const r = await ctl([join(dir, "api"), "migrate", where, "--json"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.equal(await src.exited, 0, src.stderr);
      assert.equal(await dst.exited, 0, dst.stderr);
      assertContinued(src.stdout, dst.stdout);
      assert.ok(hart1Ticks(dst.stdout).length > 0, `hart 1 printed nothing here: ${dst.stdout}`);
      // One console: a line may be cut where the guest moved, so the two outputs are joined.
      const all = hart1Ticks(src.stdout + dst.stdout);
      assert.deepEqual(
        all,
        all.map((_, i) => i + 1),
        "hart 1's ticks continue across the move",
      );
    } finally {
      src.child.kill();
      dst.child.kill();
    }
  });
});

const found = linuxImage();

describe(
  "live migration of a Linux guest with --cpus 2",
  {
    skip: linuxSkip(found),
  },
  () => {
    it("moves after /init started; /init's report goes on at the destination to its power-off", async (t) => {
      await withRaceRetries(t, async () => {
        assert.ok("image" in found);
        const dir = tempDir();
        const where = `unix:${join(dir, "m.sock")}`;
        const dst = start(["run", "--incoming", where]);
        const api = join(dir, "src.api");
        const src = start([
          "run",
          "--backend",
          "soft",
          "--cpus",
          "2",
          "--mem",
          "128M",
          "--cmdline",
          "console=ttyS0",
          "--api",
          api,
          found.image,
        ]);
        try {
          await src.waitFor(/^init: started/m, 240_000);
          // /init runs for well under a second: pause it at once (a ctl process takes ~100 ms to
          // start), then move the paused guest; it runs on at the destination.
          await pauseAfterInitStarted(api, src);
          const r = await ctl([api, "migrate", where, "--json"]);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.equal(await src.exited, 0, src.stderr);
          assert.equal(await dst.exited, 0, dst.stderr);
          const lines = initLines(src.stdout + dst.stdout);
          assert.ok(lines.includes("cpus online 0-1 count 2"), lines.join("\n"));
          assert.equal(lines.at(-1), "power off");
          assert.ok(initLines(dst.stdout).length > 0, `nothing of /init at the destination`);
          assert.equal(lines.filter((l) => l === "started").length, 1, "/init ran once");
        } finally {
          src.child.kill();
          dst.child.kill();
        }
      });
    });
  },
);
