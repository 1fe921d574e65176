/**
 * The CLI speaks regvisor, consistently (issue 12, point 9): values, unknown options,
 * `--version` everywhere, `--json` error names, file errors in words, exit statuses (regs, diff),
 * messages that blame the right thing, the demo's `--json` ending, `--help` completeness, arch
 * aliases and case-insensitive classes, and the fallback notice naming the device.
 * Through `main()` in this process (fast); signals and timeouts are in run-ending.test.ts.
 */
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { version } from "../../src/cli/options.js";
import { riscvElf, srst } from "../vmm/runner-guests.js";
import { runMain as run } from "./main-in-process.js";

/** One line on stderr, the status, no stack trace, and the pattern. */
function oneLine(r: { status: number; stderr: string }, status: number, pattern: RegExp): void {
  assert.equal(r.status, status, r.stderr);
  assert.match(r.stderr, /^regvisor: [^\n]+\n$/);
  assert.match(r.stderr, pattern);
}

const dir = mkdtempSync(join(tmpdir(), "regvisor-cli-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});
const OK_ELF = join(dir, "ok.elf");
writeFileSync(OK_ELF, riscvElf(srst(0, 0)));
const EMPTY = join(dir, "empty.bin");
writeFileSync(EMPTY, new Uint8Array(0));
const SNAP1 = join(dir, "one.snap");
const SNAP2 = join(dir, "two.snap");

describe("command-line values and options", () => {
  const negatives: [string, string[], RegExp][] = [
    ["--mem -1", ["run", "--mem", "-1", OK_ELF], /^regvisor: --mem: expected a size .*"-1"/],
    ["--timeout -1", ["run", "--timeout", "-1", OK_ELF], /^regvisor: --timeout: .*"-1"/],
    [
      "--snapshot-at-exit -3",
      ["run", "--snapshot-at-exit", "-3", "--snapshot-out", join(dir, "x.snap")],
      /^regvisor: --snapshot-at-exit: expected an exit count of 0 or more.*"-3"/,
    ],
  ];
  for (const [what, argv, pattern] of negatives) {
    it(`${what} is refused by the option's own check (status 2), not "ambiguous"`, async () => {
      const r = await run(argv);
      oneLine(r, 2, pattern);
      assert.doesNotMatch(r.stderr, /ambiguous/);
    });
  }

  it("an unknown option names it and the help, without parseArgs' quoting hint", async () => {
    for (const [command, argv] of [
      ["run", ["run", "--turbo"]],
      ["restore", ["restore", "--turbo", "x"]],
      ["inspect", ["inspect", "--turbo", "x"]],
      ["diff", ["diff", "--turbo", "a", "b"]],
      ["regs", ["regs", "list", "x86", "--turbo"]],
    ] as const) {
      const r = await run([...argv]);
      oneLine(
        r,
        2,
        new RegExp(
          `^regvisor: unknown option --turbo for ${command}; see 'regvisor ${command} --help'\\n$`,
        ),
      );
    }
  });

  it("a value option without its value says so", async () => {
    oneLine(await run(["run", OK_ELF, "--mem"]), 2, /^regvisor: --mem needs a value; see/);
  });

  it("--version works on every command and subcommand", async () => {
    for (const argv of [
      ["run", "--version"],
      ["run", "-V"],
      ["restore", "--version"],
      ["inspect", "--version"],
      ["diff", "--version"],
      ["regs", "--version"],
      ["regs", "list", "--version"],
    ]) {
      const r = await run(argv);
      assert.equal(r.status, 0, `${argv.join(" ")}: ${r.stderr}`);
      assert.equal(r.stdout, `${version()}\n`);
    }
  });

  it("--json errors of a bad command line are UsageErrors (status 2), not TypeErrors", async () => {
    for (const argv of [
      ["run", "--turbo", "--json"],
      ["regs", "decode", "zz", "--json"],
      ["regs", "encode", "riscv", "nosuchreg", "--json"],
    ]) {
      const r = await run(argv);
      assert.equal(r.status, 2, argv.join(" "));
      const json = JSON.parse(r.stdout) as { error: { name: string; code: string } };
      assert.equal(json.error.name, "UsageError");
      assert.equal(json.error.code, "USAGE");
    }
  });

  it("--timeout 0 says the timeout must be above 0", async () => {
    const r = await run(["run", "--timeout", "0", OK_ELF]);
    oneLine(r, 2, /above 0 .*got "0"/);
    assert.doesNotMatch(r.stderr, /between 0/);
  });

  it("run --help lists the snapshot flags", async () => {
    const r = await run(["run", "--help"]);
    assert.equal(r.status, 0);
    for (const flag of ["--snapshot-at-exit", "--snapshot-out", "--timeout", "--json"])
      assert.ok(r.stdout.includes(flag), flag);
  });

  it("restore --help lists --timeout", async () => {
    const r = await run(["restore", "--help"]);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /--timeout SECONDS/);
  });
});

describe("files and statuses", () => {
  before(async () => {
    for (const [n, file] of [
      ["1", SNAP1],
      ["2", SNAP2],
    ] as const) {
      const r = await run([
        "run",
        "--backend",
        "soft",
        "--snapshot-at-exit",
        n,
        "--snapshot-out",
        file,
      ]);
      assert.equal(r.status, 0, r.stderr);
    }
  });

  it("a directory or a missing file is said in words (src/vmm/input-file.ts)", async () => {
    oneLine(
      await run(["run", dir]),
      1,
      /Cannot read guest image ".*": it is a directory \(EISDIR\)$/m,
    );
    oneLine(
      await run(["inspect", dir]),
      1,
      /Cannot read snapshot ".*": it is a directory \(EISDIR\)$/m,
    );
    oneLine(
      await run(["restore", join(dir, "nope.snap")]),
      1,
      /Cannot read snapshot ".*nope\.snap": no such file \(ENOENT\)$/m,
    );
  });

  it("run of an empty file says it is empty, not that --load-addr is missing", async () => {
    const r = await run(["run", EMPTY]);
    oneLine(r, 1, /the file is empty \(0 bytes\)/);
    assert.doesNotMatch(r.stderr, /--load-addr/);
  });

  it("regs decode of a malformed id is a usage error (status 2)", async () => {
    oneLine(await run(["regs", "decode", "zz"]), 2, /Cannot parse register id "zz"/);
    oneLine(await run(["regs", "decode", "0x1_0000_0000_0000_0000"]), 2, /wider than 64 bits/);
  });

  it("diff: 0 identical, 1 different, 2 bad command line, 3 a file it cannot read", async () => {
    assert.equal((await run(["diff", SNAP1, SNAP1])).status, 0);
    assert.equal((await run(["diff", SNAP1, SNAP2])).status, 1);
    oneLine(await run(["diff", SNAP1]), 2, /diff takes two FILEs/);
    oneLine(await run(["diff", SNAP1, join(dir, "nope.snap")]), 3, /nope\.snap/);
    oneLine(await run(["diff", EMPTY, SNAP1]), 3, /Cannot decode snapshot ".*empty\.bin"/);
  });

  it("restore of a file that is no snapshot names the file", async () => {
    oneLine(await run(["restore", EMPTY]), 1, /^regvisor: Cannot decode snapshot ".*empty\.bin"/);
  });
});

describe("regs: arch aliases and classes in any case", () => {
  const aliases: [string, string, string][] = [
    ["aarch64", "arm64", "x0"],
    ["x86_64", "x86", "IA32_TSC"],
    ["riscv64", "riscv", "a0"],
    ["RISCV", "riscv", "a0"],
  ];
  for (const [alias, arch, name] of aliases) {
    it(`regs encode ${alias} is regs encode ${arch}`, async () => {
      const a = await run(["regs", "encode", alias, name, "--json"]);
      const b = await run(["regs", "encode", arch, name, "--json"]);
      assert.equal(a.status, 0, a.stderr);
      assert.equal(a.stdout, b.stdout);
    });
  }

  it("--class is case-insensitive", async () => {
    const a = await run(["regs", "list", "riscv", "--class", "CORE"]);
    const b = await run(["regs", "list", "riscv", "--class", "core"]);
    assert.equal(a.status, 0, a.stderr);
    assert.equal(a.stdout, b.stdout);
    assert.ok(a.stdout.includes("core.pc"));
  });
});

describe("the demo run", () => {
  it("--json names reason, status and pc like run FILE (soft)", async () => {
    const r = await run(["run", "--backend", "soft", "--json"]);
    assert.equal(r.status, 0, r.stderr);
    const json = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(json.reason, "shutdown");
    assert.equal(json.status, 0);
    assert.equal(json.pcName, "pc");
    assert.match(String(json.pc), /^0x8020[0-9a-f]{4}$/);
  });

  it(
    "--json names reason, status and rip like run FILE (kvm)",
    { skip: kvmUnavailableReason() ?? false },
    async () => {
      const r = await run(["run", "--backend", "kvm", "--json"]);
      assert.equal(r.status, 0, r.stderr);
      const json = JSON.parse(r.stdout) as Record<string, unknown>;
      assert.equal(json.reason, "halt");
      assert.equal(json.status, 0);
      assert.equal(json.pcName, "rip");
      assert.match(String(json.pc), /^0x[0-9a-f]+$/);
      assert.notEqual(json.pc, "0x0");
    },
  );

  it("the fallback notice names the device from REGVISOR_KVM_DEVICE", async () => {
    const saved = process.env.REGVISOR_KVM_DEVICE;
    process.env.REGVISOR_KVM_DEVICE = "/nonexistent/regvisor-kvm";
    try {
      const r = await run(["run"]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stderr, /^regvisor: \/nonexistent\/regvisor-kvm is not usable \(/);
      assert.doesNotMatch(r.stderr.split("(")[0] ?? "", /\/dev\/kvm/);
    } finally {
      if (saved === undefined) delete process.env.REGVISOR_KVM_DEVICE;
      else process.env.REGVISOR_KVM_DEVICE = saved;
    }
  });
});
