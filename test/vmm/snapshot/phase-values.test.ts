/**
 * How a cached-shape restore (plan-shape.ts) hands each phase its values: in place when the
 * state's values already lie packed (adjacent views of one buffer, as captureVcpu() leaves
 * them), otherwise packed into a buffer the restore reuses. Whatever the layout of the state,
 * the destination must end up with exactly the state's values.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { regSize, type RegId } from "../../../src/abi/regid.js";
import type { VcpuState } from "../../../src/vmm/snapshot/model.js";
import { captureVcpu, restoreVcpu } from "../../../src/vmm/snapshot/restore.js";
import { FakeVcpu, sameBytes } from "./fake-vcpu.js";

// config.isa goes first on its own; the rest are one phase whose stream indices follow one
// another, so a captured state's values for it are adjacent views (ordering.ts, riscv).
const NAMES = ["config.isa", "core.pc", "core.ra", "core.sp", "csr.sstatus", "csr.sepc"];

function source(seed: bigint): FakeVcpu {
  return new FakeVcpu("riscv").addNamed(NAMES, seed);
}

/** A destination listing the same registers, with other values. */
function destination(): FakeVcpu {
  return source(77n);
}

function assertHolds(vcpu: FakeVcpu, state: VcpuState): void {
  for (const { id, value } of state.regs) {
    const got = vcpu.values.get(id);
    assert.ok(got !== undefined && sameBytes(got, value), `register ${id.toString(16)} differs`);
  }
}

/** The state with every value in one buffer, in reverse order: consecutive, never adjacent. */
function reversedBuffer(state: VcpuState): VcpuState {
  const total = state.regs.reduce((n, r) => n + r.value.length, 0);
  const buffer = new ArrayBuffer(total);
  let end = total;
  const regs = state.regs.map(({ id, value }) => {
    end -= value.length;
    const view = new Uint8Array(buffer, end, value.length);
    view.set(value);
    return { id, value: view };
  });
  return { index: state.index, regs };
}

describe("restoreVcpu() phase values", () => {
  it("restores a captured state (adjacent views) and copies of it alike", () => {
    const captured = captureVcpu(source(3n));
    const copies: VcpuState = {
      index: captured.index,
      regs: captured.regs.map(({ id, value }) => ({ id, value: value.slice() })),
    };
    for (const state of [captured, copies, reversedBuffer(captured)]) {
      const dst = destination();
      restoreVcpu(dst, state, "riscv");
      assertHolds(dst, state);
    }
  });

  it("pads a short value with zeros even when the reused pack buffer held other bytes", () => {
    const dst = destination();
    // The first restore leaves non-zero values in the reused pack buffer.
    restoreVcpu(dst, captureVcpu(source(5n)), "riscv");
    const state = captureVcpu(source(9n));
    // Separate arrays, so every multi-register phase is packed; one of them is cut short.
    const target = state.regs.findIndex((r) => regSize(r.id) === 8 && r.id !== state.regs[0]?.id);
    assert.ok(target > 0);
    const regs = state.regs.map(({ id, value }, i) => ({
      id,
      value: i === target ? value.slice(0, 3) : value.slice(),
    }));
    restoreVcpu(dst, { index: 0, regs }, "riscv");
    const id: RegId | undefined = regs[target]?.id;
    assert.ok(id !== undefined);
    const want = new Uint8Array(8);
    want.set(regs[target]?.value ?? []);
    assert.deepEqual(dst.values.get(id), want);
  });
});
