import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  FDT_MAGIC,
  FDT_TOKEN,
  fdtNode,
  fdtValue,
  writeFdt,
  type FdtNode,
} from "../../src/vmm/fdt.js";
import {
  FdtError,
  MAX_FDT_DEPTH,
  findNode,
  propCells,
  propStrings,
  readFdt,
} from "../../src/vmm/fdt-read.js";

const dtcMissing =
  spawnSync("dtc", ["--version"]).status === 0
    ? undefined
    : "dtc is not installed (apt-get install device-tree-compiler)";
const qemuMissing =
  spawnSync("qemu-system-riscv64", ["--version"]).status === 0
    ? undefined
    : "qemu-system-riscv64 is not installed (qemu-system-misc)";
const dir = mkdtempSync(join(tmpdir(), "regvisor-fdt-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

const sample: FdtNode = fdtNode(
  "",
  { "#address-cells": fdtValue.u32(2), model: fdtValue.string("m") },
  [
    fdtNode("cpus", { "#size-cells": fdtValue.u32(0) }, [
      fdtNode("cpu@0", { reg: fdtValue.u32(0), "interrupt-controller": fdtValue.empty() }),
    ]),
    fdtNode("memory@80000000", { reg: fdtValue.u64(0x8000_0000n, 0x800_0000n) }),
    fdtNode("chosen", {
      bootargs: fdtValue.string("console=hvc0"),
      list: fdtValue.strings(["a", "bc"]),
    }),
  ],
);

/** Only FdtError or RangeError may escape the reader. */
function readsOrRefuses(blob: Uint8Array): void {
  try {
    readFdt(blob);
  } catch (error) {
    if (!(error instanceof FdtError) && !(error instanceof RangeError)) throw error;
  }
}

describe("fdtValue encoders", () => {
  it("encode cells big-endian and strings NUL-terminated", () => {
    assert.deepEqual(
      fdtValue.u32(1, 0xdeadbeef),
      Uint8Array.of(0, 0, 0, 1, 0xde, 0xad, 0xbe, 0xef),
    );
    assert.deepEqual(fdtValue.u64(0x1_0000_0002n), Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 2));
    assert.deepEqual(fdtValue.string("ok"), Uint8Array.of(0x6f, 0x6b, 0));
    assert.deepEqual(fdtValue.strings(["a", "b"]), Uint8Array.of(0x61, 0, 0x62, 0));
    assert.equal(fdtValue.empty().length, 0);
  });

  it("refuse values that do not fit with RangeError", () => {
    assert.throws(() => fdtValue.u32(-1), RangeError);
    assert.throws(() => fdtValue.u32(2 ** 32), RangeError);
    assert.throws(() => fdtValue.u32(1.5), RangeError);
    assert.throws(() => fdtValue.u64(1n << 64n), RangeError);
    assert.throws(() => fdtValue.string("a\0b"), RangeError);
  });
});

describe("writeFdt()", () => {
  it("writes a version 17 header whose blocks tile the blob in spec order", () => {
    const blob = writeFdt(sample, {
      bootCpuId: 3,
      reservations: [{ address: 0x8000_0000n, size: 0x20_0000n }],
    });
    const view = new DataView(blob.buffer);
    const h = (i: number): number => view.getUint32(4 * i);
    assert.equal(h(0), FDT_MAGIC);
    assert.equal(h(1), blob.length);
    assert.equal(h(4), 40, "reservations right after the header");
    assert.equal(h(2), 40 + 2 * 16, "structure after one entry and the terminator");
    assert.equal(h(3), h(2) + h(9), "strings right after the structure");
    assert.equal(h(3) + h(8), blob.length);
    assert.deepEqual([h(5), h(6), h(7)], [17, 16, 3]);
    assert.equal(view.getBigUint64(40), 0x8000_0000n);
    assert.equal(view.getUint32(h(2)), FDT_TOKEN.BEGIN_NODE);
    assert.equal(view.getUint32(h(2) + h(9) - 4), FDT_TOKEN.END);
  });

  it("stores each property name once in the strings block", () => {
    const tree = fdtNode("", {}, [
      fdtNode("a", { reg: fdtValue.u32(1) }),
      fdtNode("b", { reg: fdtValue.u32(2) }),
    ]);
    const blob = writeFdt(tree);
    const view = new DataView(blob.buffer);
    assert.equal(view.getUint32(32), 4, '"reg\\0" only once');
  });

  it("refuses bad names and duplicates with RangeError", () => {
    assert.throws(() => writeFdt(fdtNode("root")), RangeError);
    assert.throws(() => writeFdt(fdtNode("", {}, [fdtNode("1bad")])), /node name/);
    assert.throws(() => writeFdt(fdtNode("", {}, [fdtNode("a b")])), /node name/);
    assert.throws(() => writeFdt(fdtNode("", {}, [fdtNode("x".repeat(32))])), /node name/);
    assert.throws(() => writeFdt(fdtNode("", { "bad name": fdtValue.empty() })), /property name/);
    assert.throws(() => writeFdt(fdtNode("", {}, [fdtNode("a"), fdtNode("a")])), /duplicate node/);
    const dup: FdtNode = {
      name: "",
      properties: [
        { name: "p", value: fdtValue.empty() },
        { name: "p", value: fdtValue.empty() },
      ],
      children: [],
    };
    assert.throws(() => writeFdt(dup), /duplicate property/);
    assert.throws(() => writeFdt(sample, { bootCpuId: -1 }), RangeError);
  });
});

describe("readFdt()", () => {
  it("round-trips the writer's output, header fields included", () => {
    const reservations = [{ address: 0x1000n, size: 0x2000n }];
    const fdt = readFdt(writeFdt(sample, { bootCpuId: 1, reservations }));
    assert.deepEqual(fdt.root, sample);
    assert.deepEqual(fdt.reservations, reservations);
    assert.equal(fdt.bootCpuId, 1);
    assert.equal(fdt.version, 17);
    assert.deepEqual(
      propCells(findNode(fdt.root, "/memory@80000000") ?? fdt.root, "reg"),
      [0, 0x8000_0000, 0, 0x800_0000],
    );
    assert.deepEqual(propStrings(findNode(fdt.root, "/chosen") ?? fdt.root, "list"), ["a", "bc"]);
    assert.equal(findNode(fdt.root, "/cpus/cpu@0")?.name, "cpu@0");
    assert.equal(findNode(fdt.root, "/cpus/cpu@9"), undefined);
    assert.equal(findNode(fdt.root, "/"), fdt.root);
  });

  it("round-trips random trees (property)", () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9,._+-]{0,12}(@[0-9a-f]{1,8})?$/);
    const prop = fc.record({
      name: fc.stringMatching(/^[a-z#][a-z0-9,._+?#-]{0,20}$/),
      value: fc.uint8Array({ maxLength: 40 }),
    });
    const props = fc.uniqueArray(prop, { maxLength: 5, selector: (p) => p.name });
    const { tree } = fc.letrec<{ tree: FdtNode }>((tie) => ({
      tree: fc.oneof(
        { maxDepth: 5, depthIdentifier: "tree" },
        fc.record({ name, properties: props, children: fc.constant([]) }),
        fc.record({
          name,
          properties: props,
          children: fc.uniqueArray(tie("tree"), { maxLength: 3, selector: (c) => c.name }),
        }),
      ),
    }));
    fc.assert(
      fc.property(tree, (t) => {
        // fast-check may build null-prototype records; rebuild them as plain objects.
        const plain = (n: FdtNode): FdtNode => ({
          name: n.name,
          properties: n.properties.map((p) => ({ name: p.name, value: p.value })),
          children: n.children.map(plain),
        });
        const root = { ...plain(t), name: "" };
        assert.deepEqual(readFdt(writeFdt(root)).root, root);
      }),
      { numRuns: 300 },
    );
  });

  it("truncation at every offset throws FdtError", () => {
    const blob = writeFdt(sample);
    for (let n = 0; n < blob.length; n++) {
      assert.throws(() => readFdt(blob.subarray(0, n)), FdtError, `cut at ${n}`);
    }
  });

  it("every single-byte change loads or throws FdtError", () => {
    const blob = writeFdt(sample, { reservations: [{ address: 1n, size: 2n }] });
    for (let at = 0; at < blob.length; at++) {
      for (const v of [0x00, 0x01, 0x02, 0x03, 0x04, 0x09, 0x7f, 0xff]) {
        const copy = blob.slice();
        copy[at] = v;
        readsOrRefuses(copy);
      }
    }
  });

  it("random patches load or throw FdtError (property)", () => {
    const blob = writeFdt(sample);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: blob.length - 1 }), fc.nat({ max: 255 })), {
          maxLength: 10,
        }),
        (patches) => {
          const copy = blob.slice();
          for (const [at, v] of patches) copy[at] = v;
          readsOrRefuses(copy);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("skips FDT_NOP tokens and reads a version 16 header (no size_dt_struct)", () => {
    const blob = writeFdt(sample);
    const view = new DataView(blob.buffer);
    const offStruct = view.getUint32(8);
    // Splice one NOP after the root's BEGIN_NODE and empty name (8 bytes into the block).
    const at = offStruct + 8;
    const withNop = new Uint8Array(blob.length + 4);
    withNop.set(blob.subarray(0, at));
    new DataView(withNop.buffer).setUint32(at, FDT_TOKEN.NOP);
    withNop.set(blob.subarray(at), at + 4);
    const nv = new DataView(withNop.buffer);
    nv.setUint32(4, blob.length + 4);
    nv.setUint32(12, view.getUint32(12) + 4);
    nv.setUint32(36, view.getUint32(36) + 4);
    assert.deepEqual(readFdt(withNop).root, sample);
    nv.setUint32(20, 16);
    nv.setUint32(36, 0);
    assert.deepEqual(readFdt(withNop).root, sample);
  });

  it("refuses bad magic, versions, misplaced blocks and deep nesting with stable codes", () => {
    const blob = writeFdt(sample);
    const patched = (word: number, value: number): Uint8Array => {
      const copy = blob.slice();
      new DataView(copy.buffer).setUint32(4 * word, value);
      return copy;
    };
    const codeOf = (b: Uint8Array): string => {
      try {
        readFdt(b);
      } catch (error) {
        if (error instanceof FdtError) return error.code;
        throw error;
      }
      return "ok";
    };
    assert.equal(codeOf(patched(0, 0xfeedd00d)), "FDT_BAD_MAGIC");
    assert.equal(codeOf(patched(5, 15)), "FDT_BAD_VERSION");
    assert.equal(codeOf(patched(6, 18)), "FDT_BAD_VERSION");
    assert.equal(codeOf(patched(1, blob.length + 4)), "FDT_TRUNCATED");
    assert.equal(codeOf(patched(2, 42)), "FDT_BAD_LAYOUT", "unaligned structure block");
    assert.equal(codeOf(patched(3, blob.length)), "FDT_BAD_LAYOUT", "strings past the end");
    assert.equal(codeOf(patched(4, 4)), "FDT_BAD_LAYOUT", "reservations inside the header");
    let deep: FdtNode = fdtNode("leaf");
    for (let i = 0; i <= MAX_FDT_DEPTH; i++) deep = fdtNode(`n${i}`, {}, [deep]);
    assert.equal(codeOf(writeFdt(fdtNode("", {}, [deep]))), "FDT_BAD_STRUCTURE");
    assert.equal(codeOf(new Uint8Array(8)), "FDT_BAD_MAGIC");
  });

  it("reads a blob that dtc compiled", { skip: dtcMissing }, () => {
    const dts = join(dir, "in.dts");
    writeFileSync(
      dts,
      `/dts-v1/;
/memreserve/ 0x1000 0x2000;
/ {
  #address-cells = <2>;
  #size-cells = <2>;
  chosen { bootargs = "quiet"; };
  memory@80000000 { device_type = "memory"; reg = <0 0x80000000 0 0x4000000>; };
};
`,
    );
    const out = join(dir, "in.dtb");
    const r = spawnSync("dtc", ["-I", "dts", "-O", "dtb", "-o", out, dts], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    const fdt = readFdt(new Uint8Array(readFileSync(out)));
    assert.deepEqual(fdt.reservations, [{ address: 0x1000n, size: 0x2000n }]);
    assert.deepEqual(propStrings(findNode(fdt.root, "/chosen") ?? fdt.root, "bootargs"), ["quiet"]);
    assert.deepEqual(
      propCells(findNode(fdt.root, "/memory@80000000") ?? fdt.root, "reg"),
      [0, 0x8000_0000, 0, 0x400_0000],
    );
  });

  it(
    "reads QEMU's riscv virt tree; rewriting it gives the same DTS in dtc",
    { skip: dtcMissing ?? qemuMissing },
    () => {
      const qemuDtb = join(dir, "qemu.dtb");
      const q = spawnSync(
        "qemu-system-riscv64",
        ["-M", `virt,dumpdtb=${qemuDtb}`, "-nographic", "-bios", "none"],
        {
          encoding: "utf8",
          timeout: 30_000,
        },
      );
      assert.equal(q.status, 0, q.stderr);
      const fdt = readFdt(new Uint8Array(readFileSync(qemuDtb)));
      assert.ok(findNode(fdt.root, "/cpus/cpu@0/interrupt-controller") !== undefined);
      const ours = join(dir, "rewritten.dtb");
      writeFileSync(
        ours,
        writeFdt(fdt.root, { bootCpuId: fdt.bootCpuId, reservations: fdt.reservations }),
      );
      const dts = (file: string): string => {
        const r = spawnSync("dtc", ["-I", "dtb", "-O", "dts", file], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
      };
      const expected = dts(qemuDtb);
      assert.ok(expected.includes("riscv,cpu-intc"));
      assert.equal(dts(ours), expected);
    },
  );
});
