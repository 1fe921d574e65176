import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeReg, lookupReg } from "../../src/abi/catalog.js";
import { createSoftVm } from "../../src/backends/soft/index.js";
import { leValue } from "../../src/abi/value.js";
import { findNode, propCells, propStrings, propValue, readFdt } from "../../src/vmm/fdt-read.js";
import { fdtNode, fdtValue, type FdtNode } from "../../src/vmm/fdt.js";
import { RISCV_KERNEL_ADDR, RISCV_RAM_BASE, checkRegions } from "../../src/vmm/guest-memory.js";
import { ImageError } from "../../src/vmm/image.js";
import {
  DEFAULT_RISCV_ISA,
  parseRiscvIsa,
  placeDeviceTree,
  riscvBootRegs,
  riscvDeviceTree,
  riscvIsaString,
} from "../../src/vmm/arch/riscv/boot.js";
import { RISCV_START_REGS, enabledIsaExtensions } from "../../src/vmm/arch/riscv/index.js";

const dtcMissing =
  spawnSync("dtc", ["--version"]).status === 0
    ? undefined
    : "dtc is not installed (apt-get install device-tree-compiler)";
const dir = mkdtempSync(join(tmpdir(), "regvisor-rvdt-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const MiB = 1n << 20n;
const options = {
  memBase: RISCV_RAM_BASE,
  memSize: 128n * MiB,
  bootargs: "console=hvc0 earlycon=sbi",
  stdoutPath: "/soc/serial@10000000",
};

function node(root: FdtNode, path: string): FdtNode {
  const n = findNode(root, path);
  assert.ok(n !== undefined, `no node ${path}`);
  return n;
}

describe("parseRiscvIsa()", () => {
  it("splits single-letter and multi-letter extensions", () => {
    assert.deepEqual(parseRiscvIsa(DEFAULT_RISCV_ISA), {
      base: "rv64i",
      extensions: ["i", "m", "a", "f", "d", "c", "zicsr", "zifencei", "zicntr"],
    });
    assert.deepEqual(parseRiscvIsa("RV32IMAC"), {
      base: "rv32i",
      extensions: ["i", "m", "a", "c"],
    });
  });

  it("expands g to imafd + zicsr + zifencei without duplicates", () => {
    assert.deepEqual(parseRiscvIsa("rv64gc_zicsr_zba").extensions, [
      "i",
      "m",
      "a",
      "f",
      "d",
      "c",
      "zicsr",
      "zifencei",
      "zba",
    ]);
  });

  it("refuses strings that are not an I-based RV32/RV64 ISA", () => {
    for (const bad of [
      "",
      "rv64",
      "rv128i",
      "x86",
      "rv64e",
      "rv64i_",
      "rv64i__zba",
      "rv64i_1x",
      "rv64i m",
    ]) {
      assert.throws(() => parseRiscvIsa(bad), RangeError, bad);
    }
  });
});

describe("riscvIsaString()", () => {
  it("orders letters canonically, then Z by category, then S and X", () => {
    const soft = [
      "a",
      "c",
      "d",
      "f",
      "i",
      "m",
      "zicntr",
      "zicsr",
      "zifencei",
      "zca",
      "zcd",
      "zaamo",
      "zalrsc",
    ];
    const isa = riscvIsaString(64, soft);
    assert.equal(isa, "rv64imafdc_zicntr_zicsr_zifencei_zaamo_zalrsc_zca_zcd");
    assert.deepEqual([...parseRiscvIsa(isa).extensions].sort(), [...soft].sort());
    assert.equal(
      riscvIsaString(32, ["xfoo", "sstc", "zba", "i", "v", "h"]),
      "rv32ivh_zba_sstc_xfoo",
    );
  });

  it("refuses a set without I or with a malformed name", () => {
    assert.throws(() => riscvIsaString(64, ["m", "a"]), RangeError);
    assert.throws(() => riscvIsaString(64, ["i", "z b"]), RangeError);
  });
});

describe("riscvDeviceTree()", () => {
  it("describes the CPU, its ISA, the timebase, memory and chosen", () => {
    const { root, bootCpuId } = readFdt(riscvDeviceTree(options));
    assert.equal(bootCpuId, 0);
    assert.deepEqual(propCells(root, "#address-cells"), [2]);
    assert.deepEqual(propCells(root, "#size-cells"), [2]);
    const cpus = node(root, "/cpus");
    assert.deepEqual(propCells(cpus, "timebase-frequency"), [10_000_000]);
    assert.deepEqual(propCells(cpus, "#address-cells"), [1]);
    assert.deepEqual(propCells(cpus, "#size-cells"), [0]);
    assert.deepEqual(
      cpus.children.map((c) => c.name),
      ["cpu@0"],
    );
    const cpu = node(root, "/cpus/cpu@0");
    assert.deepEqual(propStrings(cpu, "device_type"), ["cpu"]);
    assert.deepEqual(propCells(cpu, "reg"), [0]);
    assert.deepEqual(propStrings(cpu, "status"), ["okay"]);
    assert.deepEqual(propStrings(cpu, "compatible"), ["riscv"]);
    assert.deepEqual(propStrings(cpu, "riscv,isa"), [DEFAULT_RISCV_ISA]);
    assert.deepEqual(propStrings(cpu, "riscv,isa-base"), ["rv64i"]);
    assert.deepEqual(propStrings(cpu, "riscv,isa-extensions"), [
      "i",
      "m",
      "a",
      "f",
      "d",
      "c",
      "zicsr",
      "zifencei",
      "zicntr",
    ]);
    assert.deepEqual(propStrings(cpu, "mmu-type"), ["riscv,sv39"]);
    const intc = node(root, "/cpus/cpu@0/interrupt-controller");
    assert.deepEqual(propStrings(intc, "compatible"), ["riscv,cpu-intc"]);
    assert.deepEqual(propCells(intc, "#interrupt-cells"), [1]);
    assert.equal(propValue(intc, "interrupt-controller")?.length, 0);
    const memory = node(root, "/memory@80000000");
    assert.deepEqual(propStrings(memory, "device_type"), ["memory"]);
    assert.deepEqual(propCells(memory, "reg"), [0, 0x8000_0000, 0, 0x800_0000]);
    const chosen = node(root, "/chosen");
    assert.deepEqual(propStrings(chosen, "bootargs"), [options.bootargs]);
    assert.deepEqual(propStrings(chosen, "stdout-path"), [options.stdoutPath]);
  });

  it("honours hart count, ISA, timebase, MMU type and extra nodes; omits absent chosen props", () => {
    const { root } = readFdt(
      riscvDeviceTree({
        memBase: RISCV_RAM_BASE,
        memSize: 1n << 32n,
        hartCount: 3,
        isa: "rv64imac_zicsr_zifencei",
        timebaseFrequency: 1_000_000,
        mmuType: "riscv,sv48",
        extraNodes: [fdtNode("soc", { ranges: fdtValue.empty() })],
      }),
    );
    assert.deepEqual(
      node(root, "/cpus").children.map((c) => c.name),
      ["cpu@0", "cpu@1", "cpu@2"],
    );
    assert.deepEqual(propCells(node(root, "/cpus/cpu@2"), "reg"), [2]);
    assert.deepEqual(propCells(node(root, "/cpus"), "timebase-frequency"), [1_000_000]);
    assert.deepEqual(propStrings(node(root, "/cpus/cpu@1"), "mmu-type"), ["riscv,sv48"]);
    assert.deepEqual(propStrings(node(root, "/cpus/cpu@1"), "riscv,isa-extensions"), [
      "i",
      "m",
      "a",
      "c",
      "zicsr",
      "zifencei",
    ]);
    assert.deepEqual(propCells(node(root, "/memory@80000000"), "reg"), [0, 0x8000_0000, 1, 0]);
    assert.equal(node(root, "/chosen").properties.length, 0);
    assert.ok(findNode(root, "/soc") !== undefined);
    const phandles = [0, 1, 2].map(
      (h) => propCells(node(root, `/cpus/cpu@${h}/interrupt-controller`), "phandle")?.[0],
    );
    assert.equal(new Set(phandles).size, 3, "phandles are unique");
  });

  it("refuses a bad hart count or ISA with RangeError", () => {
    assert.throws(() => riscvDeviceTree({ ...options, hartCount: 0 }), RangeError);
    assert.throws(() => riscvDeviceTree({ ...options, isa: "arm64" }), RangeError);
  });

  it("dtc decompiles the blob without warnings and sees every node", { skip: dtcMissing }, () => {
    const file = join(dir, "rv.dtb");
    writeFileSync(file, riscvDeviceTree({ ...options, hartCount: 2 }));
    const r = spawnSync("dtc", ["-I", "dtb", "-O", "dts", file], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, "", "dtc warnings");
    for (const needle of [
      "cpu@0 {",
      "cpu@1 {",
      'riscv,isa = "rv64imafdc_zicsr_zifencei_zicntr";',
      'riscv,isa-base = "rv64i";',
      'mmu-type = "riscv,sv39";',
      "timebase-frequency = <0x989680>;",
      'compatible = "riscv,cpu-intc";',
      "memory@80000000 {",
      "reg = <0x00 0x80000000 0x00 0x8000000>;",
      'bootargs = "console=hvc0 earlycon=sbi";',
    ]) {
      assert.ok(r.stdout.includes(needle), `dtc output lacks ${needle}:\n${r.stdout}`);
    }
  });
});

describe("RISC-V boot placement and registers", () => {
  it("placeDeviceTree() uses the top 2 MiB of RAM, clear of the kernel", () => {
    const ram = { base: RISCV_RAM_BASE, size: 128n * MiB };
    const kernel = [{ label: "ELF segment 0", start: RISCV_KERNEL_ADDR, size: 4n * MiB }];
    const addr = placeDeviceTree(ram, 0x1000, kernel);
    assert.equal(addr, RISCV_RAM_BASE + 126n * MiB);
    checkRegions(ram, [...kernel, { label: "dtb", start: addr, size: 0x1000n }]);
  });

  it("placeDeviceTree() falls back to 4 KiB alignment in a small RAM and fails when full", () => {
    const ram = { base: RISCV_RAM_BASE, size: MiB };
    const addr = placeDeviceTree(ram, 0x1800, [
      { label: "image", start: RISCV_RAM_BASE, size: 0x1000n },
    ]);
    assert.equal(addr, RISCV_RAM_BASE + MiB - 0x2000n);
    assert.throws(
      () => placeDeviceTree(ram, 0x1800, [{ label: "image", start: RISCV_RAM_BASE, size: MiB }]),
      ImageError,
    );
  });

  it("riscvBootRegs() sets pc, a0 = hart id, a1 = DTB, S-mode, by catalog names", () => {
    const regs = riscvBootRegs(0x8020_0000n, 0x87e0_0000n, 2);
    assert.deepEqual(
      regs.map((r) => [lookupReg("riscv", r.name).name, r.value]),
      [
        ["core.pc", 0x8020_0000n],
        ["core.a0", 2n],
        ["core.a1", 0x87e0_0000n],
        ["core.mode", 1n],
      ],
    );
    assert.throws(() => riscvBootRegs(0x8020_0001n, 0n), /2-byte aligned/);
  });
});

describe("RISC-V start registers without the catalog's name index", () => {
  it("RISCV_START_REGS mints, for every name, the catalog's id", () => {
    for (const [name, id] of Object.entries(RISCV_START_REGS)) {
      assert.equal(id, lookupReg("riscv", name).id, name);
    }
  });

  it("enabledIsaExtensions() names the single ISA_EXT registers that read 1, as the catalog does", () => {
    using vm = createSoftVm({ mode: "inline" });
    const vcpu = vm.createVcpu();
    const byCatalog = (): string[] =>
      vcpu
        .regList()
        .map((id) => decodeReg(id))
        .filter((d) => d.known && d.class === "isa_ext" && /^isa_ext\.[a-z][a-z0-9]*$/.test(d.name))
        .filter((d) => leValue(vcpu.getOneReg(d.id)) === 1n)
        .map((d) => (d.known ? d.name.slice("isa_ext.".length) : ""));
    const before = enabledIsaExtensions(vcpu);
    assert.ok(before.includes("c") && before.includes("m"), before.join(","));
    assert.deepEqual(before, byCatalog());
    // Before the first run the VMM may turn one off (KVM_SET_ONE_REG of 0): it leaves the list.
    vcpu.setOneReg(lookupReg("riscv", "isa_ext.d").id, 0n);
    assert.deepEqual(enabledIsaExtensions(vcpu), byCatalog());
    assert.deepEqual(
      enabledIsaExtensions(vcpu),
      before.filter((e) => e !== "d"),
    );
  });
});
