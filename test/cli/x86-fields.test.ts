/**
 * x86 pseudo-registers by field on the command line (issue 12 point 3): `run --dump-regs` and
 * `--json` on a real KVM vCPU, `regs decode` of a pseudo id, and `inspect --values` / `diff` of
 * snapshots carrying REGS and SREGS.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { lookupReg } from "../../src/abi/catalog.js";
import { withX86PseudoField } from "../../src/abi/arch/x86/pseudo-fields.js";
import { kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { encodeSnapshot, type Snapshot } from "../../src/vmm/snapshot/format.js";
import { cli, tempDir } from "../vmm/snapshot/e2e-helpers.js";

const noKvm = kvmUnavailableReason();
const REGS = lookupReg("x86", "REGS");
const SREGS = lookupReg("x86", "SREGS");
const FPU = lookupReg("x86", "FPU");

const dir = tempDir();
after(() => {
  dir[Symbol.dispose]();
});

function x86Snapshot(rip: bigint, cr3: bigint, xmm0: bigint): string {
  const regs = withX86PseudoField(REGS.id, new Uint8Array(REGS.size), "rip", rip);
  const sregs = withX86PseudoField(SREGS.id, new Uint8Array(SREGS.size), "cr3", cr3);
  const fpu = withX86PseudoField(FPU.id, new Uint8Array(FPU.size), "xmm0", xmm0);
  const snap: Snapshot = {
    arch: "x86",
    backend: "kvm",
    flags: 0,
    meta: {},
    vcpus: [
      {
        index: 0,
        regs: [
          { id: REGS.id, value: withX86PseudoField(REGS.id, regs, "rax", 0x2an) },
          { id: SREGS.id, value: sregs },
          { id: FPU.id, value: fpu },
        ],
      },
    ],
    memory: [],
    devices: [],
  };
  const file = dir.file(`x86-${rip.toString(16)}-${cr3.toString(16)}.snap`);
  writeFileSync(file, encodeSnapshot(snap));
  return file;
}

interface JsonReg {
  name: string;
  size: number;
  value: string;
  fields?: Record<string, number | string>;
}

describe("x86 registers by field", () => {
  it(
    "run --backend kvm --dump-regs shows rip, rax and cr3 by name",
    { skip: noKvm ?? false },
    () => {
      const r = cli(["run", "--backend", "kvm", "--dump-regs"]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, /^REGS\s+0x208000ff00000000\s+256\s+by field:$/m);
      assert.match(r.stdout, /^REGS\.rip\s+8\s+0x[0-9a-f]{16}$/m);
      assert.match(r.stdout, /^REGS\.rax\s+8\s+0x[0-9a-f]{16}$/m);
      // The demo runs in long mode: paging on (CR0.PG), page tables somewhere (CR3), EFER.LMA.
      assert.match(r.stdout, /^SREGS\.cr0\s+8\s+0x00000000[8-9a-f][0-9a-f]{7}$/m);
      assert.match(r.stdout, /^SREGS\.cr3\s+8\s+0x0{8}[0-9a-f]{8}$/m);
      assert.match(r.stdout, /^SREGS\.cs\.l\s+1\s+0x01$/m);
      assert.match(r.stdout, /^XCRS\.xcr0\s+8\s+0x[0-9a-f]*[13579bdf]$/m, "XCR0.x87 is always set");
      assert.match(r.stdout, /^CPUID\.entries\[0\]\s+\d+\s+function=0x00000000 index=/m);
      assert.doesNotMatch(r.stdout, /\(256 bytes, \d+ non-zero\)/);
    },
  );

  it(
    "run --backend kvm --dump-regs --json gives named fields with hex strings for 64-bit values",
    { skip: noKvm ?? false },
    () => {
      const r = cli(["run", "--backend", "kvm", "--dump-regs", "--json"]);
      assert.equal(r.status, 0, r.stderr);
      const json = JSON.parse(r.stdout) as { registers: JsonReg[] };
      const reg = (name: string) =>
        json.registers.find((x) => x.name === name) ?? assert.fail(name);
      const regs = reg("REGS");
      const rip = regs.fields?.rip;
      assert.equal(typeof rip, "string");
      assert.match(String(rip), /^0x[0-9a-f]{16}$/);
      assert.ok(BigInt(String(rip)) > 0n, "the guest ran, so rip is past 0");
      // Memory order: the value's first 8 bytes are rax, little-endian.
      const raxLe = String(regs.fields?.rax).slice(2).match(/../g)?.reverse().join("");
      assert.equal(regs.value.slice(0, 16), raxLe);
      assert.match(String(reg("SREGS").fields?.cr3), /^0x[0-9a-f]{16}$/);
      assert.equal(typeof reg("SREGS").fields?.["cs.selector"], "number");
      assert.ok("xmm15" in (reg("XSAVE").fields ?? {}));
      assert.ok("mp_state" in (reg("MP_STATE").fields ?? {}));
      assert.equal(reg("IA32_TSC").fields, undefined, "MSRs are one value");
    },
  );

  it("regs decode of a pseudo id explains its fields: names, GDB names, offsets, sizes", () => {
    const r = cli(["regs", "decode", "0x209000ff00000001"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^SREGS \(0x209000ff00000001\): fields of the 312-byte struct/m);
    assert.match(r.stdout, /^cs\.selector\s+cs\s+0xc\s+2\s+16\s+uint$/m);
    assert.match(r.stdout, /^fs\.base\s+fs_base\s+0x48\s+8\s+64\s+uint$/m);
    assert.match(r.stdout, /^cr3\s+cr3\s+0xf0\s+8\s+64\s+uint$/m);
    const fpu = cli(["regs", "decode", "0x209000ff00000002"]);
    assert.match(fpu.stdout, /^fiseg\s+fiseg\s+0x88\s+8\s+16 \(bits 32\.\.47\)\s+uint$/m);
    const json = cli(["regs", "decode", "0x20e000ff00000009", "--json"]);
    const [cpuid] = JSON.parse(json.stdout) as {
      structFields: { fields: { name: string }[]; repeats: { name: string; count: number }[] };
    }[];
    assert.deepEqual(cpuid?.structFields.repeats, [{ name: "entries", count: 256, stride: 40 }]);
    assert.ok(cpuid.structFields.fields.some((f) => f.name === "entries[0].eax"));
  });

  it("inspect --values prints struct registers field by field", () => {
    const file = x86Snapshot(0x1000n, 0x2000n, 0x1234n);
    const r = cli(["inspect", file, "--values"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ {2}REGS\s+0x208000ff00000000\s+256 B {2}by field:$/m);
    assert.match(r.stdout, /^ {6}rip\s+0x0000000000001000$/m);
    assert.match(r.stdout, /^ {6}rax\s+0x000000000000002a$/m);
    assert.match(r.stdout, /^ {6}cr3\s+0x0000000000002000$/m);
    assert.match(r.stdout, /^ {6}xmm0\s+0x0{28}1234$/m);
    const json = cli(["inspect", file, "--values", "--json"]);
    const summary = JSON.parse(json.stdout) as { vcpus: { registers: JsonReg[] }[] };
    const regs = summary.vcpus[0]?.registers.find((x) => x.name === "REGS");
    assert.equal(regs?.fields?.rip, "0x0000000000001000");
  });

  it("diff names the fields that changed: REGS.rip, SREGS.cr3, FPU.xmm0", () => {
    const a = x86Snapshot(0x1000n, 0x2000n, 0x1234n);
    const b = x86Snapshot(0x1040n, 0x3000n, 0x1235n);
    const r = cli(["diff", a, b]);
    assert.equal(r.status, 1, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n"), [
      "vcpu 0 ~ REGS.rip: 0x0000000000001000 -> 0x0000000000001040",
      "vcpu 0 ~ SREGS.cr3: 0x0000000000002000 -> 0x0000000000003000",
      "vcpu 0 ~ FPU.xmm0: 0x00000000000000000000000000001234 -> 0x00000000000000000000000000001235",
    ]);
    const json = JSON.parse(cli(["diff", a, b, "--json"]).stdout) as {
      vcpus: {
        changed: { name: string; fields: { name: string; old: string; new: string }[] }[];
      }[];
    };
    const regs = json.vcpus[0]?.changed.find((c) => c.name === "REGS");
    assert.deepEqual(regs?.fields, [
      { name: "rip", old: "0x0000000000001000", new: "0x0000000000001040" },
    ]);
  });
});
