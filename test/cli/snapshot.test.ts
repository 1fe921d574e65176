/**
 * `regvisor run --snapshot-*`, `restore`, `inspect`, `diff`: output and JSON shapes (through
 * `main()` in this process), and in child processes the contract for damaged or missing files
 * and bad command lines: one line on stderr, a non-zero status, never a stack trace.
 * (New-process restore equivalence is in test/vmm/snapshot/e2e-restore.test.ts.)
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { cli, tempDir } from "../vmm/snapshot/e2e-helpers.js";
import { runMain as run } from "./main-in-process.js";

const dir = tempDir();
const A = dir.file("a.snap");
const B = dir.file("b.snap");
after(() => {
  dir[Symbol.dispose]();
});

describe("regvisor snapshot commands", () => {
  let outputA = "";
  before(async () => {
    const a = await run([
      "run",
      "--backend",
      "soft",
      "--snapshot-at-exit",
      "2",
      "--snapshot-out",
      A,
    ]);
    assert.equal(a.status, 0);
    outputA = a.stdout;
    const b = await run([
      "run",
      "--backend",
      "soft",
      "--snapshot-at-exit",
      "4",
      "--snapshot-out",
      B,
      "--json",
    ]);
    assert.equal(b.status, 0);
    const json = JSON.parse(b.stdout) as { snapshotAtExit: number; bytes: number; backend: string };
    assert.equal(json.snapshotAtExit, 4);
    assert.equal(json.backend, "soft-inline");
    assert.equal(json.bytes, readFileSync(B).length);
  });

  it("run --snapshot-at-exit prints what the guest printed so far", () => {
    assert.equal(
      outputA,
      "Hello from a RISC-V guest on regvisor!\nsum of the first 1000 primes = 3682913\n",
    );
  });

  it("inspect prints sections, registers by name and size, memory, devices and the machine", async () => {
    const r = await run(["inspect", A]);
    assert.equal(r.status, 0);
    for (const re of [
      /^regvisor snapshot 1\.0: riscv, backend soft-inline, \d+ bytes, 9 sections$/m,
      /VCPU_STATE/,
      /^ {2}core\.pc +0x8030000002000000 +8 B$/m,
      /^ {2}fp_d\.fcsr +0x\w+ +4 B$/m,
      /^memory slot 0: gpa 0x80000000, 16777216 bytes/m,
      /^device "vmm\.console": \d+ bytes$/m,
      /^device "vmm\.mp-state": 8 bytes$/m,
      /^device "plic": \d+ bytes$/m,
      /^device "uart0": \d+ bytes$/m,
      /^machine: riscv-demo, resumes after exit 2, 78 console bytes so far$/m,
    ])
      assert.match(r.stdout, re);
  });

  it("inspect --json carries the same facts as data", async () => {
    const json = JSON.parse((await run(["inspect", A, "--json", "--values"])).stdout) as {
      arch: string;
      sections: { typeName: string }[];
      vcpus: { registers: { name: string | null; size: number; value?: string }[] }[];
      machine: { kind: string; exits: number };
    };
    assert.equal(json.arch, "riscv");
    assert.deepEqual(
      json.sections.map((s) => s.typeName),
      ["META", "VCPU_STATE", "DEVICE", "DEVICE", "DEVICE", "DEVICE", "DEVICE", "DEVICE", "MEMORY"],
    );
    const pc = json.vcpus[0]?.registers.find((r) => r.name === "core.pc");
    assert.ok(pc !== undefined);
    assert.equal(pc.size, 8);
    assert.match(String(pc.value), /^0x00000000802/);
    assert.deepEqual(json.machine, { kind: "riscv-demo", exits: 2, consoleBytes: 78 });
  });

  it("diff: a snapshot against itself is identical (status 0)", async () => {
    const r = await run(["diff", A, A]);
    assert.equal(r.status, 0);
    assert.equal(r.stdout, "snapshots are identical (META not compared)\n");
  });

  it("diff: two points of one run differ in registers, memory and devices (status 1)", async () => {
    const text = await run(["diff", A, B]);
    assert.equal(text.status, 1);
    // Both points are DBCN writes from the same ecall: pc is equal, ra and a1 are not.
    assert.match(text.stdout, /^vcpu 0 ~ core\.a1 \(0x803000000200000b\): 0x\w+ -> 0x\w+$/m);
    assert.doesNotMatch(text.stdout, /core\.pc/);
    assert.match(text.stdout, /^device vmm\.console: changed$/m);
    const json = JSON.parse((await run(["diff", A, B, "--json"])).stdout) as {
      identical: boolean;
      vcpus: { changed: { name: string; old: string; new: string }[] }[];
    };
    assert.equal(json.identical, false);
    const names = json.vcpus[0]?.changed.map((c) => c.name) ?? [];
    assert.ok(names.includes("core.a1") && names.includes("timer.time"), names.join(","));
  });

  it("restore --json: output after the snapshot, before it, combined, and the restore report", async () => {
    const r = await run(["restore", A, "--json"]);
    assert.equal(r.status, 0);
    const json = JSON.parse(r.stdout) as {
      output: string;
      outputBefore: string;
      combinedOutput: string;
      resumedAtExit: number;
      restore: { kind: string; registers: { vcpus: { written: number }[] } };
    };
    assert.equal(json.outputBefore, outputA);
    assert.equal(json.combinedOutput, outputA + json.output);
    assert.match(json.output, /^fib\(90\) = 2880067194370816120\n/);
    assert.equal(json.resumedAtExit, 2);
    assert.equal(json.restore.kind, "riscv-demo");
    assert.ok((json.restore.registers.vcpus[0]?.written ?? 0) > 100);
  });
});

/** One line on stderr, non-zero status, no stack trace. */
function assertOneLineError(
  r: { status: number | null; stderr: string },
  status: number,
  pattern: RegExp,
): void {
  assert.equal(r.status, status, r.stderr);
  assert.match(r.stderr, /^regvisor: [^\n]+\n$/);
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
}

describe("regvisor snapshot commands on bad input", () => {
  const bad = tempDir();
  after(() => {
    bad[Symbol.dispose]();
  });
  const files = (): Record<string, [string, RegExp]> => {
    const real = new Uint8Array(readFileSync(A));
    const cut = bad.file("cut.snap");
    writeFileSync(cut, real.subarray(0, real.length - 100));
    const flipped = real.slice();
    flipped[3000] = (flipped[3000] ?? 0) ^ 0x10;
    const flip = bad.file("flip.snap");
    writeFileSync(flip, flipped);
    const garbage = bad.file("garbage.snap");
    writeFileSync(garbage, "not a snapshot at all\n");
    return {
      truncated: [cut, /SNAPSHOT_TRUNCATED|declares \d+ bytes but only/],
      "a flipped byte": [flip, /CRC32C mismatch/],
      garbage: [garbage, /does not start with "RGVSNAP/],
      missing: [
        bad.file("nope.snap"),
        /Cannot read snapshot ".*nope\.snap": no such file \(ENOENT\)/,
      ],
      "a directory": [bad.path, /Cannot read snapshot ".*": it is a directory \(EISDIR\)/],
      // Refused before a byte is read (issue 12 point 6: this grew to 4+ GB before).
      "a device": ["/dev/zero", /Cannot read snapshot "\/dev\/zero": it is a character device/],
    };
  };

  it("restore, inspect (status 1) and diff (status 3) of a damaged or missing file: one line naming it", async () => {
    for (const [file, pattern] of Object.values(files())) {
      for (const [argv, status] of [
        [["restore", file], 1],
        [["inspect", file], 1],
        [["diff", A, file], 3],
        [["diff", file, A], 3],
      ] as const) {
        const r = await run([...argv]);
        assertOneLineError(r, status, pattern);
        // Decode errors quote the path, input-file errors (src/vmm/input-file.ts) do not.
        assert.ok(r.stderr.includes(file), `${argv.join(" ")} names the file: ${r.stderr}`);
      }
    }
  });

  it("the real executable: a damaged file and a usage error, each one line", () => {
    const truncated = files().truncated;
    assert.ok(truncated !== undefined);
    const [cut, pattern] = truncated;
    assertOneLineError(cli(["restore", cut]), 1, pattern);
    assertOneLineError(cli(["restore"]), 2, /restore takes one FILE/);
  });

  it("--json errors carry the error code on stdout", async () => {
    const r = await run(["inspect", bad.file("nope.snap"), "--json"]);
    assert.equal(r.status, 1);
    const json = JSON.parse(r.stdout) as { error: { code: string } };
    assert.equal(json.error.code, "INPUT_FILE");
  });

  it("a snapshot point the guest never reaches is refused in one line", async () => {
    const r = await run([
      "run",
      "--backend",
      "soft",
      "--snapshot-at-exit",
      "6",
      "--snapshot-out",
      bad.file("x"),
    ]);
    assertOneLineError(r, 1, /stopped at exit 6, finished \(system_event\); nothing is left/);
  });

  const usage: [string, string[]][] = [
    ["no --snapshot-out", ["run", "--backend", "soft", "--snapshot-at-exit", "3"]],
    [
      "a negative exit",
      ["run", "--backend", "soft", "--snapshot-at-exit", "-1", "--snapshot-out", "f"],
    ],
    ["restore without a file", ["restore"]],
    ["an unknown --on-extra", ["restore", "f", "--on-extra", "maybe"]],
    ["diff with one file", ["diff", "f"]],
  ];
  for (const [what, argv] of usage) {
    it(`${what} is a usage error (status 2)`, async () => {
      assertOneLineError(await run(argv), 2, /./);
    });
  }
});
