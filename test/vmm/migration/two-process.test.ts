import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildGuests, REPO } from "../../cli/run-file-helpers.js";
import { assertContinued, ctl, start, tempDir } from "./procs.js";

const skip = buildGuests("guests/riscv/migrate", ["riscv64-unknown-elf-gcc"]);
const ELF = join(REPO, "guests/riscv/migrate/build/dirty.elf");

/** Source in `srcMode`, destination in `dstMode`; the guest moves after its 5th tick. */
async function move(uri: (dir: string) => string, srcMode: string, dstMode?: string) {
  const dir = tempDir();
  const where = uri(dir);
  const dst = start([
    "run",
    "--incoming",
    where,
    ...(dstMode === undefined ? [] : ["--mode", dstMode]),
  ]);
  const src = start(["run", "--mem", "32M", "--mode", srcMode, "--api", join(dir, "api"), ELF]);
  try {
    await src.waitFor(/^tick 5 /m);
    const r = await ctl([join(dir, "api"), "migrate", where, "--json"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const status = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(status.status, "completed");
    for (const key of ["totalMs", "downtimeMs", "transferredBytes", "rounds"]) {
      assert.equal(typeof status[key], "number", key);
    }
    assert.equal(await src.exited, 0, src.stderr);
    assert.match(src.stderr, /the guest was migrated to .* and runs on there/);
    assert.equal(await dst.exited, 0, dst.stderr);
    assert.match(dst.stderr, /the guest arrived/);
    assertContinued(src.stdout, dst.stdout);
    return status;
  } finally {
    src.child.kill();
    dst.child.kill();
  }
}

describe("live migration between two regvisor processes", { skip: skip ?? false }, () => {
  it("soft inline → inline over a unix socket: every page and the guest's clock carry over", async () => {
    await move((d) => `unix:${join(d, "m.sock")}`, "inline");
  });

  it("soft threaded → inline over tcp on loopback", async () => {
    const port = 20000 + (process.pid % 20000);
    await move(() => `tcp:127.0.0.1:${port}`, "threaded", "inline");
  });

  it("soft inline → threaded (the destination's --mode wins)", async () => {
    await move((d) => `unix:${join(d, "m.sock")}`, "inline", "threaded");
  });
});
