import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { apiRequest } from "../../../src/vmm/api/client.js";
import { buildGuests, REPO } from "../../cli/run-file-helpers.js";
import { assertContinued, ctl, start, tempDir } from "./procs.js";

const skip = buildGuests("guests/riscv/migrate", ["riscv64-unknown-elf-gcc"]);
const ELF = join(REPO, "guests/riscv/migrate/build/dirty.elf");
const LONG = join(REPO, "guests/riscv/migrate/build/dirty-long.elf");

/** Source in `srcMode`, destination in `dstMode`; the guest moves after its 5th tick. */
async function move(uri: (dir: string) => string, srcMode: string, dstMode?: string) {
  const dir = tempDir();
  const where = uri(dir);
  const dst = start([
    "run",
    "--incoming",
    where,
    "--api",
    join(dir, "dst.api"),
    ...(dstMode === undefined ? [] : ["--mode", dstMode]),
  ]);
  const src = start(["run", "--mem", "32M", "--mode", srcMode, "--api", join(dir, "api"), ELF]);
  try {
    await src.waitFor(/^tick 3 /m);
    const r = await ctl([join(dir, "api"), "migrate", where, "--json"]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const status = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(status.status, "completed");
    for (const key of ["totalMs", "downtimeMs", "pausedAt", "transferredBytes", "rounds"]) {
      assert.equal(typeof status[key], "number", key);
    }
    // The guest's pause as it saw it: from the source's pausedAt to the destination's
    // startedAt (one host clock): the guest resumed there after it was paused here, within the
    // migration. (Not bounded by downtimeMs: the source reads its clock once its GO write
    // returned, which a busy host may delay past the destination's start.)
    const there = (await apiRequest(join(dir, "dst.api"), "GET", "/status")).body as {
      startedAt?: number;
    };
    assert.equal(typeof there.startedAt, "number", "the destination's status has startedAt");
    const pause = (there.startedAt ?? 0) - Number(status.pausedAt);
    assert.ok(
      pause > 0 && pause < Number(status.totalMs),
      `pause ${pause} ms, downtime ${String(status.downtimeMs)} ms, total ${String(status.totalMs)} ms`,
    );
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

/** A loopback proxy to `target` that flips one byte of the stream at offset `at`. */
async function corruptingProxy(
  target: string,
  at: number,
): Promise<{ uri: string; close(): void }> {
  const { createServer, connect } = await import("node:net");
  const server = createServer((client) => {
    const upstream = connect(target);
    let offset = 0;
    client.on("data", (chunk: Buffer) => {
      if (offset <= at && at < offset + chunk.length)
        chunk[at - offset] = (chunk[at - offset] ?? 0) ^ 0x01;
      offset += chunk.length;
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => client.write(chunk));
    const drop = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on("close", drop).on("error", drop);
    upstream.on("close", drop).on("error", drop);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return { uri: `tcp:127.0.0.1:${address.port}`, close: () => server.close() };
}

describe("failed live migrations between two processes", { skip: skip ?? false }, () => {
  it("a destination that refuses (--mem differs): one line each side, the guest runs on at the source", async () => {
    const dir = tempDir();
    const where = `unix:${join(dir, "m.sock")}`;
    const dst = start(["run", "--incoming", where, "--mem", "64M"]);
    const src = start(["run", "--mem", "32M", "--api", join(dir, "api"), ELF]);
    try {
      await src.waitFor(/^tick 3 /m);
      const r = await ctl([join(dir, "api"), "migrate", where]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /^regvisor: migration to unix:.* failed \(.*\): the destination refused the stream: Cannot receive the guest: --mem is 67108864 bytes here but the incoming machine has 33554432 bytes; drop --mem or make it match; the guest runs on here\n$/,
      );
      assert.equal(await dst.exited, 1);
      assert.match(
        dst.stderr,
        /^regvisor: waiting for .*\nregvisor: Cannot receive the guest: --mem is/,
      );
      assert.equal(await src.exited, 0, src.stderr);
      const ticks = [...src.stdout.matchAll(/^tick (\d+) /gm)].map((m) => Number(m[1]));
      assert.deepEqual(
        ticks,
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      assert.match(src.stdout, /^PASS dirty/m);
    } finally {
      src.child.kill();
      dst.child.kill();
    }
  });

  it("corrupted bytes on the wire: the destination fails the CRC, the source runs on and migrates again", async () => {
    const dir = tempDir();
    const first = `unix:${join(dir, "a.sock")}`;
    const second = `unix:${join(dir, "b.sock")}`;
    // With a control socket, which starts while the stream comes in: it must not keep the
    // failed destination alive.
    const dstA = start(["run", "--incoming", first, "--api", join(dir, "a.api")]);
    const dstB = start(["run", "--incoming", second, "--api", join(dir, "b.api")]);
    const proxy = await corruptingProxy(join(dir, "a.sock"), 300_000);
    const src = start(["run", "--mem", "32M", "--api", join(dir, "api"), LONG]);
    try {
      await src.waitFor(/^tick 3 /m);
      const r = await ctl([join(dir, "api"), "migrate", proxy.uri, "--json"]);
      assert.equal(r.code, 1);
      assert.equal((JSON.parse(r.stdout) as { status: string }).status, "failed");
      assert.equal(await dstA.exited, 1);
      assert.match(dstA.stderr, /CRC32C mismatch/);
      const again = await ctl([join(dir, "api"), "migrate", second, "--json"]);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      assert.equal(await src.exited, 0);
      await dstB.waitFor(/^tick \d+ [^\n]*\n(.|\n)*^tick \d+ /m);
      assert.equal((await ctl([join(dir, "b.api"), "quit"])).code, 0);
      assert.equal(await dstB.exited, 0, dstB.stderr);
      assertContinued(src.stdout, dstB.stdout, false);
    } finally {
      proxy.close();
      for (const p of [src, dstA, dstB]) p.child.kill();
    }
  });
});
