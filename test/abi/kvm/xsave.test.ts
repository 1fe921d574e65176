import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { XSAVE_AVX_OFFSET, XSAVE_LEGACY_AREA } from "../../../src/abi/kvm/layouts.js";
import { canonicalXsave } from "../../../src/abi/kvm/xsave.js";

const F = XSAVE_LEGACY_AREA.fields;
const BV = 512;

/** A 4096-byte kvm_xsave in the initial configuration (FCW 037FH, MXCSR 1F80H) with `bv`. */
function image(bv: bigint): { bytes: Uint8Array; view: DataView } {
  const bytes = new Uint8Array(4096);
  const view = new DataView(bytes.buffer);
  view.setUint16(F.fcw.offset, 0x037f, true);
  view.setUint32(F.mxcsr.offset, 0x1f80, true);
  view.setBigUint64(BV, bv, true);
  return { bytes, view };
}

const bvOf = (bytes: Uint8Array): bigint =>
  new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(BV, true);

describe("canonicalXsave()", () => {
  it("clears XSTATE_BV bits 0-2 of components in their initial configuration, nothing else", () => {
    const { bytes } = image(0b1111n);
    const out = canonicalXsave(bytes);
    assert.equal(bvOf(out), 0b1000n, "bit 3 is not one of the components it knows");
    assert.equal(bvOf(bytes), 0b1111n, "the input is not changed");
    out.set(bytes.subarray(BV, BV + 8), BV);
    assert.deepEqual(out, bytes, "only XSTATE_BV changes");
  });

  it("makes the SSE-in-use and SSE-not-in-use forms of one state equal (the e2e-restore flake)", () => {
    assert.deepEqual(canonicalXsave(image(0n).bytes), canonicalXsave(image(2n).bytes));
  });

  it("keeps the bit of a component that holds state", () => {
    const cases: [string, bigint, (v: DataView) => void][] = [
      [
        "an XMM register",
        2n,
        (v) => {
          v.setUint8(F.xmm.offset + 17, 1);
        },
      ],
      [
        "MXCSR",
        2n,
        (v) => {
          v.setUint32(F.mxcsr.offset, 0x1fc0, true);
        },
      ],
      [
        "FCW",
        1n,
        (v) => {
          v.setUint16(F.fcw.offset, 0x027f, true);
        },
      ],
      [
        "FSW",
        1n,
        (v) => {
          v.setUint16(F.fsw.offset, 0x0001, true);
        },
      ],
      [
        "ST7",
        1n,
        (v) => {
          v.setUint8(F.fpr.offset + 127, 1);
        },
      ],
      [
        "YMM15_H",
        4n,
        (v) => {
          v.setUint8(XSAVE_AVX_OFFSET + 255, 1);
        },
      ],
    ];
    for (const [what, bit, poke] of cases) {
      const { bytes, view } = image(bit);
      poke(view);
      assert.equal(bvOf(canonicalXsave(bytes)), bit, what);
    }
  });

  it("refuses an image without the AVX component's bytes", () => {
    assert.throws(() => canonicalXsave(new Uint8Array(831)), RangeError);
  });
});
