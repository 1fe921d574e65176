/**
 * The fast tier's priming (fast-warm.ts): after `primeFastTier`, the paths a Linux boot takes
 * in `runFast` must not deoptimize it, even after the priming's objects could have been
 * collected. A deoptimized runFast cost a boot ~100-200 ms (V8 recompiles it, and once left
 * the loop in baseline code for the rest of the boot).
 *
 * V8's optimization status is only visible with --allow-natives-syntax, so the check runs in a
 * child Node: prime, collect garbage, compile runFast now (`%OptimizeFunctionOnNextCall`), run a
 * guest that takes those paths, and report whether runFast is still TurboFan code.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { deoptsOf, PROBE_GCS, PROBE_MARK, probeAfterMark, TURBOFANNED } from "./v8-probe.js";

/**
 * The child's script: prints a marker before the guest runs (V8's --trace-deopt lines follow it
 * on stdout), then `{ after, stop, a0 }` (runFast's optimization status after the run) as JSON.
 */
function probe(): string {
  const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);
  return `
    const { primeFastTier } = await import(${url("../../../src/backends/soft/riscv/fast-warm.js")});
    const { runFast } = await import(${url("../../../src/backends/soft/riscv/fast.js")});
    const { hartWith } = await import(${url("./harness.js")});
    const { guest } = await import(${url("./fast-warm-guest.js")});
    primeFastTier();
    // Enough full collections for V8 to drop maps no live object uses (it retains them a few).
    for (let i = 0; i < ${String(PROBE_GCS)}; i++) globalThis.gc();
    const { hart, ram } = hartWith([], { translate: true, hotThreshold: 1e9 });
    guest(ram);
    // The Hart's priming started a concurrent compile of runFast (heatFastTier): it lands first.
    %FinalizeOptimization();
    %OptimizeFunctionOnNextCall(runFast);
    console.log("${PROBE_MARK}");
    const stop = hart.run(10000);
    const after = %GetOptimizationStatus(runFast);
    console.log(JSON.stringify({ after, stop: stop.kind, a0: Number(hart.getX(10)) }));
  `;
}

/**
 * The child's script for the heating: `primeEngine()` alone (no guest) must leave runFast
 * compiled by TurboFan once the background compile it started lands, and a soft VM's memory
 * and vCPU set-up (RAM in a wasm memory, the time source, the wake word) must not throw that
 * code away. Prints `{ heated, afterSetup }` (runFast's status after each) as JSON.
 */
function heatProbe(): string {
  const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);
  return `
    const { primeEngine } = await import(${url("../../../src/backends/soft/riscv/hart.js")});
    const { runFast } = await import(${url("../../../src/backends/soft/riscv/fast.js")});
    const { createSoftVm } = await import(${url("../../../src/backends/soft/create.js")});
    primeEngine();
    %FinalizeOptimization();
    const heated = %GetOptimizationStatus(runFast);
    const vm = createSoftVm({ mode: "inline" });
    vm.addMemory({ guestPhysAddr: 0x80000000n, size: 1 << 20 });
    vm.createVcpu();
    %FinalizeOptimization();
    console.log("${PROBE_MARK}");
    console.log(JSON.stringify({ heated, afterSetup: %GetOptimizationStatus(runFast) }));
  `;
}

describe("fast-tier priming (fast-warm.ts)", () => {
  it("primeEngine() has runFast compiled before any guest runs, and a VM's set-up keeps it", () => {
    const after = probeAfterMark(heatProbe());
    const out = JSON.parse(after.pop() ?? "") as { heated: number; afterSetup: number };
    assert.notEqual(out.heated & TURBOFANNED, 0, `runFast not compiled (status ${out.heated})`);
    assert.notEqual(
      out.afterSetup & TURBOFANNED,
      0,
      `a VM's set-up threw runFast's code away (status ${out.afterSetup})`,
    );
  });

  it("runFast is not deoptimized by a boot's rare paths after primeFastTier() and GCs", () => {
    const after = probeAfterMark(probe());
    assert.deepEqual(deoptsOf(after, ["runFast"]), [], "runFast deoptimized while the guest ran");
    const out = JSON.parse(after.pop() ?? "") as { after: number; stop: string; a0: number };
    assert.equal(out.stop, "ecall");
    assert.equal(out.a0, 1, "sltiu 3 < 5");
    assert.notEqual(out.after & TURBOFANNED, 0, `runFast is not optimized (status ${out.after})`);
  });
});
