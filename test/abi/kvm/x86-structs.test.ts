import { describe, it } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeKvmRegs,
  decodeKvmSregs,
  decodeKvmSyncRegs,
  decodeKvmVcpuEvents,
  encodeKvmRegs,
  encodeKvmSregs,
  encodeKvmVcpuEvents,
  zeroKvmRegs,
  zeroKvmSregs,
  zeroKvmVcpuEvents,
} from "../../../src/abi/kvm/x86-structs.js";
import { KVM_REGS, KVM_SREGS, KVM_VCPU_EVENTS, SYNC_AREA } from "../../../src/abi/kvm/layouts.js";
import { offsetOf } from "../../../src/abi/kvm/layout.js";

function le64(bytes: Uint8Array, offset: number, value: bigint): void {
  new DataView(bytes.buffer, bytes.byteOffset).setBigUint64(offset, value, true);
}

describe("x86 struct codecs", () => {
  it("encode(decode(bytes)) is byte-exact for kvm_regs, kvm_sregs and kvm_vcpu_events", () => {
    const cases = [
      [KVM_REGS.size, (b: Uint8Array) => encodeKvmRegs(decodeKvmRegs(b))],
      [KVM_SREGS.size, (b: Uint8Array) => encodeKvmSregs(decodeKvmSregs(b))],
      [KVM_VCPU_EVENTS.size, (b: Uint8Array) => encodeKvmVcpuEvents(decodeKvmVcpuEvents(b))],
    ] as const;
    for (const [size, roundTrip] of cases) {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: size, maxLength: size }), (bytes) => {
          assert.deepEqual(roundTrip(bytes), bytes);
        }),
      );
    }
  });

  it("decodeKvmRegs() reads rip at 128 and rflags at 136, little-endian", () => {
    const bytes = new Uint8Array(144);
    le64(bytes, 128, 0xfff0n);
    le64(bytes, 136, 0x2n);
    le64(bytes, 0, 0x1122334455667788n);
    const regs = decodeKvmRegs(bytes);
    assert.equal(regs.rip, 0xfff0n);
    assert.equal(regs.rflags, 0x2n);
    assert.equal(regs.rax, 0x1122334455667788n);
    assert.equal(bytes[0], 0x88);
  });

  it("encodeKvmSregs() places segment and dtable fields at the kernel offsets", () => {
    const sregs = zeroKvmSregs();
    sregs.cs.selector = 0xf000;
    sregs.cs.base = 0xffff0000n;
    sregs.cs.present = 1;
    sregs.idt.limit = 0x3ff;
    sregs.efer = 0x500n;
    sregs.interrupt_bitmap[1] = 1n;
    const bytes = encodeKvmSregs(sregs);
    const view = new DataView(bytes.buffer);
    assert.equal(view.getUint16(12, true), 0xf000);
    assert.equal(view.getBigUint64(0, true), 0xffff0000n);
    assert.equal(bytes[15], 1);
    assert.equal(view.getUint16(offsetOf(KVM_SREGS, "idt.limit"), true), 0x3ff);
    assert.equal(view.getBigUint64(264, true), 0x500n);
    assert.equal(view.getBigUint64(288, true), 1n);
  });

  it("encodeKvmVcpuEvents() places nested fields and the payload", () => {
    const events = zeroKvmVcpuEvents();
    events.exception.error_code = 0xdeadbeef;
    events.interrupt.shadow = 2;
    events.flags = 0x10;
    events.exception_payload = 0x1234n;
    const bytes = encodeKvmVcpuEvents(events);
    const view = new DataView(bytes.buffer);
    assert.equal(view.getUint32(4, true), 0xdeadbeef);
    assert.equal(bytes[11], 2);
    assert.equal(view.getUint32(20, true), 0x10);
    assert.equal(view.getBigUint64(56, true), 0x1234n);
  });

  it("encoders write into a caller buffer at an offset", () => {
    const run = new Uint8Array(4096);
    const regs = zeroKvmRegs();
    regs.rip = 0x1000n;
    encodeKvmRegs(regs, run, SYNC_AREA.x86.s);
    assert.equal(decodeKvmSyncRegs(run).regs.rip, 0x1000n);
    assert.equal(new DataView(run.buffer).getBigUint64(304 + 128, true), 0x1000n);
  });

  it("decoders reject a short buffer with RangeError", () => {
    assert.throws(() => decodeKvmRegs(new Uint8Array(143)), RangeError);
    assert.throws(() => decodeKvmSregs(new Uint8Array(312), 1), RangeError);
    assert.throws(() => decodeKvmSyncRegs(new Uint8Array(823)), RangeError);
  });

  it("encoders reject wrong types and out-of-range values", () => {
    const regs = zeroKvmRegs();
    assert.throws(() => encodeKvmRegs({ ...regs, rax: 1 as unknown as bigint }), TypeError);
    assert.throws(() => encodeKvmRegs({ ...regs, rax: 1n << 64n }), RangeError);
    const sregs = zeroKvmSregs();
    assert.throws(() => encodeKvmSregs({ ...sregs, interrupt_bitmap: [0n] }), RangeError);
    assert.throws(() => encodeKvmSregs({ ...sregs, cs: { ...sregs.cs, type: 256 } }), RangeError);
    const events = zeroKvmVcpuEvents();
    assert.throws(
      () => encodeKvmVcpuEvents({ ...events, reserved: new Uint8Array(25) }),
      RangeError,
    );
    assert.throws(() => encodeKvmRegs(regs, new Uint8Array(100)), RangeError);
  });
});
