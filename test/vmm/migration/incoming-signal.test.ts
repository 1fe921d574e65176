import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { listening, start, tempDir } from "./procs.js";

describe("run --incoming ends on SIGINT/SIGTERM while no guest has arrived", () => {
  it("SIGTERM while listening: one line, status 143, the socket path is gone", async () => {
    const sock = join(tempDir(), "in.sock");
    const dest = start(["run", "--incoming", `unix:${sock}`]);
    await listening(dest);
    dest.child.kill("SIGTERM");
    const code = await Promise.race([
      dest.exited,
      new Promise<string>((r) =>
        setTimeout(() => {
          r("still running 10 s after SIGTERM");
        }, 10_000),
      ),
    ]);
    if (code === "still running 10 s after SIGTERM") dest.child.kill("SIGKILL");
    assert.equal(code, 143, dest.stderr);
    const lines = dest.stderr.trim().split("\n");
    assert.match(lines.at(-1) ?? "", /^regvisor: Stopped waiting for the migration: .*SIGTERM/);
    assert.doesNotMatch(dest.stderr, /\n\s+at /, "no stack trace");
    assert.equal(existsSync(sock), false, "the listening socket is removed");
  });

  it("SIGINT with a source connected but silent: the connection is dropped, status 130", async () => {
    const sock = join(tempDir(), "in.sock");
    const dest = start(["run", "--incoming", `unix:${sock}`]);
    await listening(dest);
    const peer = connect(sock);
    const closed = new Promise<void>((r) =>
      peer.on("close", () => {
        r();
      }),
    );
    peer.on("error", () => undefined);
    await new Promise<void>((r) =>
      peer.on("connect", () => {
        r();
      }),
    );
    dest.child.kill("SIGINT");
    const code = await Promise.race([
      dest.exited,
      new Promise<string>((r) =>
        setTimeout(() => {
          r("still running 10 s after SIGINT");
        }, 10_000),
      ),
    ]);
    if (typeof code === "string") dest.child.kill("SIGKILL");
    assert.equal(code, 130, dest.stderr);
    await closed;
    assert.match(dest.stderr, /Stopped waiting for the migration: .*SIGINT/);
  });
});
