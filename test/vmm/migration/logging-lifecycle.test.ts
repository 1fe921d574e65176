/**
 * Dirty logging only while migrating, on a real machine (soft backend, this process): a machine
 * with migration enabled runs without logging; a migration turns it on for its pre-copy; when it
 * fails (here: the peer hangs up mid pre-copy) logging is off again and the guest runs on; a
 * second migration then moves the guest to a destination process, every page intact.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { backendPicker } from "../../../src/cli/backends.js";
import type { Machine } from "../../../src/vmm/machine/machine.js";
import { machineSource } from "../../../src/vmm/migration/machine-source.js";
import type { MigrationStatus } from "../../../src/vmm/migration/source.js";
import { runGuest } from "../../../src/vmm/runner.js";
import { buildGuests, REPO } from "../../cli/run-file-helpers.js";
import { assertContinued, listening, start, tempDir, ticks } from "./procs.js";

const skip = buildGuests("guests/riscv/migrate", ["riscv64-unknown-elf-gcc"]);
const ELF = join(REPO, "guests/riscv/migrate/build/dirty.elf");

/** Resolves once `read()` shows a tick above `n`. */
async function tickAbove(read: () => string, n: number): Promise<number> {
  const deadline = performance.now() + 20_000;
  for (;;) {
    const last = ticks(read()).at(-1) ?? 0;
    if (last > n) return last;
    if (performance.now() > deadline) assert.fail(`no tick above ${n}: ${read().slice(-200)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A peer that reads 1 MiB of the stream, calls `seen`, then hangs up. */
async function hangUpAfter1MiB(path: string, seen: () => void): Promise<() => void> {
  const server = createServer((socket: Socket) => {
    let got = 0;
    socket.on("data", (chunk: Buffer) => {
      got += chunk.length;
      if (got < 1 << 20 || socket.destroyed) return;
      seen();
      socket.destroy();
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return () => server.close();
}

describe(
  "dirty logging only while migrating (machine, soft backend)",
  { skip: skip ?? false },
  () => {
    it("off before, on during a migration, off after it failed with the guest running; then a migration succeeds", async () => {
      const dir = tempDir();
      const refuser = join(dir, "hangup.sock");
      const where = `unix:${join(dir, "dst.sock")}`;
      const loggingWhenRead: boolean[] = [];
      let machine: Machine | undefined;
      const logs = (): boolean[] => machine?.parts.vm.memory.map((m) => m.logDirty) ?? [];
      const close = await hangUpAfter1MiB(refuser, () => loggingWhenRead.push(...logs()));
      const dst = start(["run", "--incoming", where]);
      let out = "";
      const decoder = new TextDecoder();
      using backends = backendPicker({ mode: "inline" });
      let steps: Promise<[MigrationStatus, MigrationStatus]> | undefined;
      try {
        const summary = await runGuest({
          file: new Uint8Array(readFileSync(ELF)),
          backendFor: backends.backendFor,
          memSize: 32n << 20n,
          output: (bytes) => (out += decoder.decode(bytes)),
          collectRegisters: false,
          timeoutMs: 30_000,
          onMachine: (m) => {
            machine = m;
            m.enableMigration(machineSource);
            steps = (async () => {
              await tickAbove(() => out, 2);
              assert.deepEqual(logs(), [false], "no logging before a migration");
              const failed = await m.migrate({ uri: `unix:${refuser}` });
              assert.deepEqual(logs(), [false], "logging off again after the failure");
              assert.equal(m.status().state, "running");
              const before = ticks(out).at(-1) ?? 0;
              await tickAbove(() => out, before + 1); // the guest runs on here
              await listening(dst); // a loaded host can start it later than this point
              const done = await m.migrate({ uri: where });
              return [failed, done];
            })();
          },
        });
        assert.ok(steps !== undefined);
        const [failed, done] = await steps;
        assert.equal(failed.status, "failed");
        assert.match(failed.error ?? "", /closed the connection|ECONNRESET|EPIPE/);
        assert.deepEqual(loggingWhenRead, [true], "logging was on while the pre-copy ran");
        assert.equal(done.status, "completed", done.error);
        assert.equal(summary.ending.reason, "migrated");
        assert.equal(await dst.exited, 0, dst.stderr);
        assertContinued(out, dst.stdout);
      } finally {
        close();
        dst.child.kill();
      }
    });
  },
);
