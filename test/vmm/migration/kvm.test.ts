import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { buildGuests, REPO } from "../../cli/run-file-helpers.js";
import { assertContinued, ctl, start, tempDir } from "./procs.js";

const unusable = kvmUnavailableReason();
const skip =
  (unusable === undefined ? undefined : `/dev/kvm: ${unusable}`) ??
  buildGuests("guests/x86/migrate", ["gcc"]);
const ELF = join(REPO, "guests/x86/migrate/build/dirty.elf");

describe("live migration kvm → kvm (x86-64)", { skip: skip ?? false }, () => {
  it("moves a guest that rewrites 4 MiB: KVM's dirty log fills, TSC and pages carry over", async (t) => {
    const dir = tempDir();
    const where = `unix:${join(dir, "m.sock")}`;
    const dst = start(["run", "--incoming", where]);
    const src = start(["run", "--mem", "32M", "--api", join(dir, "api"), ELF]);
    try {
      await src.waitFor(/^tick 3 /m, 60_000);
      // --max-bandwidth 8M stretches round 1 (the 4 MiB the guest wrote before logging started)
      // to ~0.5 s, so the guest surely writes pages that only the dirty log can report.
      const r = await ctl([join(dir, "api"), "migrate", where, "--max-bandwidth", "8M", "--json"]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
      const status = JSON.parse(r.stdout) as Record<string, number>;
      // Pages the guest wrote after round 1 reached the stream only through KVM_GET_DIRTY_LOG:
      // a bitmap that stayed empty would leave them stale, and the guest's check would FAIL.
      const logged = (status.pagesSent ?? 0) - (status.totalPages ?? 0);
      t.diagnostic(
        `kvm_pvm dirty log: ${logged} pages reported after round 1 (${status.finalPages} at switchover, ${status.rounds} rounds); ${status.totalMs} ms total, ${status.downtimeMs} ms downtime`,
      );
      assert.ok(logged > 0, "KVM_GET_DIRTY_LOG reported no dirty page");
      const floorMs = ((status.transferredBytes ?? 0) / (8 * 1048576)) * 1000 * 0.8;
      assert.ok((status.totalMs ?? 0) >= floorMs, "--max-bandwidth held the rate");
      assert.equal(await src.exited, 0, src.stderr);
      assert.equal(await dst.exited, 0, dst.stderr + dst.stdout);
      // The TSC-paced guest may reach its last tick during the switchover on a loaded host: the
      // destination's own ticks are not required, its page check and PASS are.
      assertContinued(src.stdout, dst.stdout, true, false);
    } finally {
      src.child.kill();
      dst.child.kill();
    }
  });
});
