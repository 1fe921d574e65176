import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { kvmUnavailableReason } from "../../src/backends/kvm/index.js";

// The shipped executable (package.json "bin"), bundled by scripts/bundle.mjs.
const BIN = fileURLToPath(new URL("../../bin/regvisor.js", import.meta.url));
const noKvm = kvmUnavailableReason();

function spawn(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...argv], { encoding: "utf8", timeout: 60_000, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("regvisor run", () => {
  it(
    "--backend kvm runs the demo guest to HLT and prints its output",
    { skip: noKvm ?? false },
    () => {
      const r = spawn(["run", "--backend", "kvm"]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /64-bit long mode/);
      assert.match(r.stdout, /fib\(90\) = 2880067194370816120\n/);
    },
  );

  it(
    "--backend kvm --dump-regs --json lists the register view by catalog name",
    { skip: noKvm ?? false },
    () => {
      const r = spawn(["run", "--backend", "kvm", "--dump-regs", "--json"]);
      assert.equal(r.status, 0, r.stderr);
      const json = JSON.parse(r.stdout) as {
        backend: string;
        clean: boolean;
        lastExit: { kind: string };
        registers: { name: string; size: number; value: string }[];
      };
      assert.equal(json.backend, "kvm");
      assert.equal(json.clean, true);
      assert.equal(json.lastExit.kind, "hlt");
      const names = json.registers.map((reg) => reg.name);
      for (const name of ["REGS", "SREGS", "IA32_TSC", "XSAVE", "MP_STATE"])
        assert.ok(names.includes(name), name);
      // Up to 16 bytes: one "0x" integer; beyond (the pseudo-registers): bytes in memory order.
      for (const reg of json.registers) {
        const digits = reg.size <= 16 ? 2 + 2 * reg.size : 2 * reg.size;
        assert.equal(reg.value.length, digits, reg.name);
      }
    },
  );

  it("without a usable /dev/kvm, the demo falls back to the soft backend with a one-line notice", () => {
    const env = { ...process.env, REGVISOR_KVM_DEVICE: "/nonexistent/kvm" };
    const r = spawn(["run"], env);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Hello from a RISC-V guest on regvisor!/);
    const notice = r.stderr.split("\n").filter((l) => l.includes("not usable"));
    assert.equal(notice.length, 1);
    assert.match(notice[0] ?? "", /\/nonexistent\/kvm.*running on the soft backend/);
  });

  it("--backend kvm with an unusable /dev/kvm fails with the fix hint", () => {
    const env = { ...process.env, REGVISOR_KVM_DEVICE: "/nonexistent/kvm" };
    const r = spawn(["run", "--backend", "kvm"], env);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^regvisor: .*ENOENT.*modprobe/);
  });

  const bad: [string, string[]][] = [
    ["an unknown backend", ["run", "--backend", "vmware"]],
    ["an unknown mode", ["run", "--backend", "soft", "--mode", "fast"]],
    ["--mode with the kvm backend", ["run", "--backend", "kvm", "--mode", "threaded"]],
    ["an unknown flag", ["run", "--turbo"]],
  ];
  for (const [what, argv] of bad) {
    it(`${what} exits 2 with a one-line error`, () => {
      const r = spawn(argv);
      assert.equal(r.status, 2);
      assert.match(r.stderr, /^regvisor: [^\n]+\n$/);
    });
  }
});
