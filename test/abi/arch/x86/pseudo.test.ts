import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { X86PseudoName } from "../../../../src/abi/arch/x86/index.js";
import {
  X86_PSEUDO,
  X86_PSEUDO_LIST,
  catalog,
  isKernelX86Id,
  isPseudoRegId,
  pseudoRegById,
  pseudoValueFromStruct,
  structFromPseudoValue,
  x86IdParts,
} from "../../../../src/abi/arch/x86/index.js";
import { LAYOUTS } from "../../../../src/abi/kvm/layouts.js";
import { IOCTLS } from "../../../../src/abi/kvm/ioctls.js";
import { archOf, regId, regSize } from "../../../../src/abi/regid.js";

const EXPECTED: Readonly<Record<X86PseudoName, readonly [structSize: number, size: number]>> = {
  REGS: [144, 256],
  SREGS: [312, 512],
  FPU: [416, 512],
  XSAVE: [4096, 4096],
  XCRS: [392, 512],
  VCPU_EVENTS: [64, 64],
  MP_STATE: [4, 4],
  DEBUGREGS: [128, 128],
  LAPIC: [1024, 1024],
  CPUID: [10248, 16384],
  TSC_KHZ: [8, 8],
};

describe("x86 pseudo-registers", () => {
  it("have type 0xff, zero reserved bits and the expected struct and value sizes", () => {
    assert.deepEqual(Object.keys(X86_PSEUDO).sort(), Object.keys(EXPECTED).sort());
    for (const reg of X86_PSEUDO_LIST) {
      const [structSize, size] = EXPECTED[reg.name];
      const parts = x86IdParts(reg.id);
      assert.equal(archOf(reg.id), "x86");
      assert.equal(parts.type, 0xff, reg.name);
      assert.equal(parts.reserved, 0, reg.name);
      assert.equal(parts.index, reg.index);
      assert.equal(reg.structSize, structSize, reg.name);
      assert.equal(regSize(reg.id), size, reg.name);
      assert.ok(size >= structSize && size / 2 < structSize, `${reg.name}: smallest power of 2`);
    }
  });

  it("struct sizes agree with the layout table and the ioctls exist", () => {
    for (const reg of X86_PSEUDO_LIST) {
      const layout = LAYOUTS[reg.struct];
      if (layout !== undefined && reg.name !== "CPUID") assert.equal(layout.size, reg.structSize);
      assert.ok(reg.get in IOCTLS && reg.set in IOCTLS, `${reg.name} ioctls`);
    }
    const entry = LAYOUTS.kvm_cpuid_entry2;
    assert.equal(
      X86_PSEUDO.CPUID.structSize,
      (LAYOUTS.kvm_cpuid2?.size ?? 0) + 256 * (entry?.size ?? 0),
    );
  });

  it("are catalog rows with class pseudo, never kernel-shaped ids", () => {
    for (const reg of X86_PSEUDO_LIST) {
      const info = catalog.lookup(reg.name);
      assert.equal(info?.id, reg.id);
      assert.equal(info.class, "pseudo");
      assert.equal(info.pseudo, true);
      assert.equal(catalog.decode(reg.id), info);
      assert.ok(isPseudoRegId(reg.id));
      assert.ok(!isKernelX86Id(reg.id), `${reg.name} must not look like a kernel id`);
      assert.equal(pseudoRegById(reg.id), reg);
    }
    const ids = new Set(X86_PSEUDO_LIST.map((r) => r.id));
    assert.equal(ids.size, X86_PSEUDO_LIST.length);
  });

  it("isPseudoRegId() is false for MSR, KVM and foreign-arch ids", () => {
    for (const name of ["IA32_TSC", "EFER", "GUEST_SSP"]) {
      const info = catalog.lookup(name);
      assert.ok(info !== undefined && !isPseudoRegId(info.id), name);
    }
    // Same low bits as REGS but the riscv arch byte.
    const foreign = regId((X86_PSEUDO.REGS.id & ((1n << 56n) - 1n)) | (0x80n << 56n));
    assert.ok(!isPseudoRegId(foreign));
  });

  it("unknown pseudo indexes and wrong sizes decode to undefined", () => {
    const regs = X86_PSEUDO.REGS.id;
    assert.equal(catalog.decode(regId(regs | 0x77n)), undefined);
    const wrongSize = regId((regs & ~(0xfn << 52n)) | (3n << 52n));
    assert.ok(isPseudoRegId(wrongSize));
    assert.equal(catalog.decode(wrongSize), undefined);
  });

  it("values pad and unpad struct bytes (property), rejecting bad lengths and padding", () => {
    const reg = X86_PSEUDO.SREGS;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 312, maxLength: 312 }), (bytes) => {
        const value = pseudoValueFromStruct(reg, bytes);
        assert.equal(value.length, 512);
        assert.deepEqual(structFromPseudoValue(reg, value), bytes);
      }),
    );
    assert.throws(() => pseudoValueFromStruct(reg, new Uint8Array(311)), RangeError);
    assert.throws(() => structFromPseudoValue(reg, new Uint8Array(312)), RangeError);
    const dirty = new Uint8Array(512);
    dirty[400] = 1;
    assert.throws(() => structFromPseudoValue(reg, dirty), RangeError);
  });
});
