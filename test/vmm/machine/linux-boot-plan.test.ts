/**
 * Booting a RISC-V Linux `Image` without --load-addr: the header is recognised
 * (Documentation/arch/riscv/boot.rst), the kernel lands 2 MiB above the RAM base, the device
 * tree describes the machine (harts with their interrupt controllers, PLIC contexts, UART,
 * virtio-mmio, /chosen), and bad input is refused before any VM exists.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { findNode, propCells, propStrings, propValue, readFdt } from "../../../src/vmm/fdt-read.js";
import { isLinuxImage, loadLinuxImage } from "../../../src/vmm/arch/riscv/linux-image.js";
import { riscvMachineDeviceTree } from "../../../src/vmm/arch/riscv/devicetree.js";
import { ImageError } from "../../../src/vmm/image.js";
import { prepareRun } from "../../../src/vmm/runner.js";
import { OptionValueError } from "../../../src/vmm/size.js";

const MiB = 1n << 20n;
const RAM = { base: 0x8000_0000n, size: 64n * MiB };

/** A fake RISC-V Image: the 64-byte header, then `body` bytes; `imageSize` in memory. */
function fakeImage(body = 4096, imageSize = 2n * MiB, magic = "RSC\x05"): Uint8Array {
  const file = new Uint8Array(64 + body);
  const view = new DataView(file.buffer);
  view.setUint32(0, 0x0000_006f, true); // code0: j . (never run here)
  view.setBigUint64(0x08, 0x20_0000n, true); // text_offset
  view.setBigUint64(0x10, imageSize, true); // image_size
  view.setUint32(0x20, 2, true); // version 0.2
  for (let i = 0; i < 4; i++) file[0x38 + i] = magic.charCodeAt(i);
  return file;
}

function u64Cells(cells: readonly number[] | undefined): bigint[] {
  assert.ok(cells);
  const out: bigint[] = [];
  for (let i = 0; i + 1 < cells.length; i += 2)
    out.push((BigInt(cells[i] ?? 0) << 32n) | BigInt(cells[i + 1] ?? 0));
  return out;
}

describe("RISC-V Linux Image", () => {
  it("is recognised by its header and placed 2 MiB above the RAM base", () => {
    const file = fakeImage();
    assert.ok(isLinuxImage(file));
    const image = loadLinuxImage(file, RAM.base);
    assert.equal(image.format, "linux");
    assert.equal(image.entry, 0x8020_0000n);
    assert.equal(image.segments[0]?.memSize, 2n * MiB, "image_size, bss included");
  });

  it("refuses an arm64 Image by name", () => {
    assert.throws(
      () => loadLinuxImage(fakeImage(4096, 2n * MiB, "ARMd"), RAM.base),
      (e: unknown) =>
        e instanceof ImageError && e.code === "IMAGE_WRONG_ARCH" && e.message.includes("arm64"),
    );
  });

  it("refuses an EFI Image whose sections run past the end of the file (truncated)", () => {
    const file = fakeImage(4096);
    const view = new DataView(file.buffer);
    file[0] = 0x4d;
    file[1] = 0x5a;
    view.setUint32(0x3c, 0x40, true); // PE header offset
    view.setUint32(0x40, 0x0000_4550, true); // "PE\0\0"
    view.setUint16(0x40 + 6, 1, true); // one section
    view.setUint16(0x40 + 20, 0, true); // no optional header
    view.setUint32(0x40 + 24 + 16, 0x10_0000, true); // SizeOfRawData
    view.setUint32(0x40 + 24 + 20, 0x1000, true); // PointerToRawData
    assert.throws(
      () => loadLinuxImage(file, RAM.base),
      (e: unknown) => e instanceof ImageError && e.code === "IMAGE_TRUNCATED",
    );
  });

  it("refuses an image_size smaller than the file", () => {
    assert.throws(
      () => loadLinuxImage(fakeImage(8192, 4096n), RAM.base),
      (e: unknown) => e instanceof ImageError && e.code === "IMAGE_BAD_HEADER",
    );
  });

  it("prepareRun() picks RISC-V without --backend and places the initrd clear of the kernel and the device tree", () => {
    const initrd = new Uint8Array(3 * 4096 + 5).fill(7);
    const { plan } = prepareRun({ file: fakeImage(), memSize: RAM.size, initrd, cpus: 2 });
    assert.ok(plan.arch === "riscv");
    const { initrdAddr, dtbAddr, dtbReserve } = plan.riscv;
    assert.ok(initrdAddr !== undefined && initrdAddr % 4096n === 0n);
    const initrdEnd = initrdAddr + BigInt(initrd.length);
    assert.ok(initrdEnd <= dtbAddr || initrdAddr >= dtbAddr + BigInt(dtbReserve), "no overlap");
    assert.ok(initrdEnd <= RAM.base + RAM.size);
    assert.ok(dtbAddr + BigInt(dtbReserve) <= RAM.base + RAM.size);
    assert.ok(initrdAddr >= 0x8020_0000n + 2n * MiB, "clear of the kernel");
  });

  const refusals: [string, () => unknown, (e: unknown) => boolean][] = [
    [
      "an Image larger than RAM",
      () => prepareRun({ file: fakeImage(4096, 80n * MiB), memSize: RAM.size }),
      (e) => e instanceof ImageError,
    ],
    [
      "an initrd that does not fit in RAM",
      () => prepareRun({ file: fakeImage(), memSize: 8n * MiB, initrd: new Uint8Array(7 << 20) }),
      (e) => e instanceof ImageError && e.code === "IMAGE_TOO_BIG" && e.message.includes("initrd"),
    ],
    [
      "--cpus 0",
      () => prepareRun({ file: fakeImage(), memSize: RAM.size, cpus: 0 }),
      (e) => e instanceof OptionValueError,
    ],
    [
      "--cpus above the limit",
      () => prepareRun({ file: fakeImage(), memSize: RAM.size, cpus: 65 }),
      (e) => e instanceof OptionValueError,
    ],
    [
      "a RISC-V Image on --backend kvm",
      () => prepareRun({ file: fakeImage(), memSize: RAM.size, backend: "kvm" }),
      (e) => e instanceof ImageError && e.code === "IMAGE_WRONG_ARCH",
    ],
  ];
  for (const [what, act, check] of refusals) {
    it(`refuses ${what} before any VM exists`, () => {
      assert.throws(act, check);
    });
  }
});

describe("riscvMachineDeviceTree()", () => {
  const dtb = riscvMachineDeviceTree(
    RAM,
    { hartCount: 2, virtio: 2, cmdline: "console=ttyS0" },
    { initrd: { start: 0x8300_0000n, end: 0x8300_1000n } },
  );
  const { root } = readFdt(dtb);

  it("gives each hart a riscv,cpu-intc and the PLIC one S-mode context (9) per hart", () => {
    const intc0 = findNode(root, "/cpus/cpu@0/interrupt-controller");
    const intc1 = findNode(root, "/cpus/cpu@1/interrupt-controller");
    assert.ok(intc0 && intc1);
    assert.deepEqual(propStrings(intc0, "compatible"), ["riscv,cpu-intc"]);
    const plic = findNode(root, "/soc/plic@c000000");
    assert.ok(plic);
    assert.ok(propStrings(plic, "compatible")?.includes("riscv,plic0"));
    const p0 = propCells(intc0, "phandle")?.[0];
    const p1 = propCells(intc1, "phandle")?.[0];
    assert.deepEqual(propCells(plic, "interrupts-extended"), [p0, 9, p1, 9]);
  });

  it("has the ns16550a UART at 0x10000000, IRQ 10, 3686400 Hz, and /chosen points at it", () => {
    const uart = findNode(root, "/soc/serial@10000000");
    assert.ok(uart);
    assert.deepEqual(propStrings(uart, "compatible"), ["ns16550a"]);
    assert.deepEqual(u64Cells(propCells(uart, "reg")), [0x1000_0000n, 0x100n]);
    assert.deepEqual(propCells(uart, "interrupts"), [10]);
    assert.deepEqual(propCells(uart, "clock-frequency"), [3_686_400]);
    const chosen = findNode(root, "/chosen");
    assert.ok(chosen);
    assert.deepEqual(propStrings(chosen, "stdout-path"), ["/soc/serial@10000000"]);
    assert.deepEqual(propStrings(chosen, "bootargs"), ["console=ttyS0"]);
    assert.deepEqual(u64Cells(propCells(chosen, "linux,initrd-start")), [0x8300_0000n]);
    assert.deepEqual(u64Cells(propCells(chosen, "linux,initrd-end")), [0x8300_1000n]);
  });

  it("has virtio-mmio transports at 0x10001000 + n·0x1000 on IRQ 1 + n", () => {
    for (const n of [0, 1]) {
      const base = 0x1000_1000n + BigInt(n) * 0x1000n;
      const node = findNode(root, `/soc/virtio_mmio@${base.toString(16)}`);
      assert.ok(node, `virtio ${n}`);
      assert.deepEqual(propStrings(node, "compatible"), ["virtio,mmio"]);
      assert.deepEqual(u64Cells(propCells(node, "reg")), [base, 0x1000n]);
      assert.deepEqual(propCells(node, "interrupts"), [1 + n]);
    }
    assert.equal(propValue(root, "model") !== undefined, true);
  });
});
