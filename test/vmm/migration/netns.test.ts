import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { buildGuests, REPO } from "../../cli/run-file-helpers.js";
import { assertContinued, ctl, start, tempDir } from "./procs.js";

const tag = `rgv${process.pid % 100000}`;
const NS = [`${tag}a`, `${tag}b`] as const;

function ip(...args: string[]): { ok: boolean; err: string } {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  const err = r.stderr !== "" ? r.stderr : (r.error?.message ?? "");
  return { ok: r.status === 0, err: err.trim() };
}

/** Two namespaces joined by a veth pair, 10.77.N.1 ↔ 10.77.N.2; a skip reason if not allowed. */
function network(): string | undefined {
  const probe = ip("netns", "add", NS[0]);
  if (!probe.ok) return `ip netns add is not permitted here: ${probe.err}`;
  const steps = [
    ["netns", "add", NS[1]],
    ["link", "add", `${tag}x`, "type", "veth", "peer", "name", `${tag}y`],
    ["link", "set", `${tag}x`, "netns", NS[0]],
    ["link", "set", `${tag}y`, "netns", NS[1]],
    ["-n", NS[0], "addr", "add", "10.77.0.1/24", "dev", `${tag}x`],
    ["-n", NS[1], "addr", "add", "10.77.0.2/24", "dev", `${tag}y`],
    ["-n", NS[0], "link", "set", `${tag}x`, "up"],
    ["-n", NS[1], "link", "set", `${tag}y`, "up"],
    ["-n", NS[0], "link", "set", "lo", "up"],
    ["-n", NS[1], "link", "set", "lo", "up"],
  ];
  for (const step of steps) {
    const r = ip(...step);
    if (!r.ok) return `cannot set up the veth pair (ip ${step.join(" ")}): ${r.err}`;
  }
  return undefined;
}

function teardown(): void {
  for (const ns of NS) ip("netns", "del", ns);
}

const guests = buildGuests("guests/riscv/migrate", ["riscv64-unknown-elf-gcc", "ip"]);
const skip = guests ?? network();
if (skip !== undefined) teardown();
const ELF = join(REPO, "guests/riscv/migrate/build/dirty.elf");

describe(
  "live migration between two network namespaces over a veth pair",
  { skip: skip ?? false },
  () => {
    it("the destination listens on 10.77.0.1 in one namespace, the source connects from the other", async () => {
      const dir = tempDir();
      const where = "tcp:10.77.0.1:4455";
      const dst = start(["run", "--incoming", where], ["ip", "netns", "exec", NS[0]]);
      const src = start(
        ["run", "--mem", "32M", "--api", join(dir, "api"), ELF],
        ["ip", "netns", "exec", NS[1]],
      );
      try {
        await src.waitFor(/^tick 3 /m);
        const r = await ctl([join(dir, "api"), "migrate", where, "--json"]);
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.equal(await src.exited, 0, src.stderr);
        assert.equal(await dst.exited, 0, dst.stderr);
        assertContinued(src.stdout, dst.stdout);
      } finally {
        src.child.kill();
        dst.child.kill();
        teardown();
      }
    });
  },
);
