/**
 * `npm run bench`'s command line: `--help` lists the groups and runs none, and a wrong option or
 * a `--only` that names no group is refused in one line with status 2 before any benchmark runs
 * (a typo used to start the whole ~75 s run).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const BENCH = join(dirname(fileURLToPath(import.meta.url)), "../bench/main.js");

function bench(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BENCH, ...args], { encoding: "utf8", timeout: 20_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("the bench command line", () => {
  it("--help prints the usage and the groups, and runs nothing", () => {
    const r = bench("--help");
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^usage: npm run bench -- \[--json\] \[--only SUBSTRING\]/);
    assert.match(r.stdout, /groups: kvm, soft-cpu, .*migration/);
    assert.equal(r.stderr, "");
  });

  it("refuses an unknown option in one line with status 2", () => {
    const r = bench("--jsn");
    assert.equal(r.status, 2);
    assert.match(r.stderr.split("\n")[0] ?? "", /^bench: Unknown option '--jsn'/);
    assert.equal(r.stdout, "");
  });

  it("refuses --only without a value or matching no group", () => {
    const missing = bench("--only");
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /^bench: Option '--only <value>' argument missing/);
    const none = bench("--json", "--only", "no-such-group");
    assert.equal(none.status, 2);
    assert.match(none.stderr, /^bench: --only "no-such-group" matches no group \(groups: kvm/);
    assert.equal(none.stdout, "");
  });
});
