/**
 * The reference paths' priming (ref-warm.ts): after a Hart is made (which primes them and the
 * fast tier), what a Linux boot does when /init starts (Sv39 user pages, SUM, sret to U, user
 * loads, stores, AMOs, LR/SC, rdtime, FP CSRs, RVC FP loads, a page fault, ecall from U) must
 * not deoptimize the functions that run it, even after the priming's objects could have been
 * collected. Without the priming, a boot deoptimized fetchPage, csrRead, csrWrite, amoFast,
 * walk, fill, exec and others there and ended in their baseline code.
 *
 * As fast-warm.test.ts: V8's optimization status needs --allow-natives-syntax, so a child Node
 * primes, collects garbage, compiles the functions now (`%OptimizeFunctionOnNextCall`), runs the
 * guest and reports; --trace-deopt lines after the marker name any deoptimization.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { deoptsOf, PROBE_GCS, PROBE_MARK, probeAfterMark, TURBOFANNED } from "./v8-probe.js";

/** The functions checked, by module (src/backends/soft/riscv/) and export. */
const WATCHED = {
  "access.js": ["fetchPage", "loadSlow", "storeSlow"],
  "csr.js": ["csrRead", "csrWrite"],
  "amo.js": ["amoFast"],
  "interp.js": ["step", "exec"],
  "mmu.js": ["translate"],
  "fast.js": ["runFast"],
} as const;

/** Of WATCHED, the functions the guest calls (compiled before it runs, so TurboFan after it). */
const CALLED = ["fetchPage", "csrRead", "csrWrite", "amoFast", "runFast"] as const;

/** The child's script: prints PROBE_MARK, runs the guest, then `{ status, stop, cause, sc }` as JSON. */
function probe(): string {
  const url = (path: string): string => JSON.stringify(new URL(path, import.meta.url).href);
  const src = (m: string): string => url(`../../../src/backends/soft/riscv/${m}`);
  const imports = Object.entries(WATCHED)
    .map(
      ([m, names], k) =>
        `const m${String(k)} = await import(${src(m)}); fns.push(${names.map((n) => `["${n}", m${String(k)}.${n}]`).join(", ")});`,
    )
    .join("\n");
  return `
    const fns = [];
    ${imports}
    const { hartWith } = await import(${url("./harness.js")});
    const { guest } = await import(${url("./ref-warm-guest.js")});
    const { hart, ram } = hartWith([], { translate: true, hotThreshold: 1e9 });
    guest(ram);
    // Enough full collections for V8 to drop maps no live object uses (it retains them a few).
    for (let i = 0; i < ${String(PROBE_GCS)}; i++) globalThis.gc();
    // The Hart's priming started a concurrent compile of runFast (heatFastTier): it lands first.
    %FinalizeOptimization();
    for (const [, f] of fns) %OptimizeFunctionOnNextCall(f);
    console.log("${PROBE_MARK}");
    const stop = hart.run(10000);
    const status = Object.fromEntries(fns.map(([n, f]) => [n, %GetOptimizationStatus(f)]));
    console.log(JSON.stringify({ status, stop: stop.kind, cause: Number(hart.getX(17)), sc: Number(hart.getX(15)) }));
  `;
}

describe("reference-path priming (ref-warm.ts)", () => {
  it("a user-mode start does not deoptimize the reference paths after priming and GCs", () => {
    const after = probeAfterMark(probe());
    const deopts = deoptsOf(after, Object.values(WATCHED).flat());
    assert.deepEqual(deopts, [], "a reference path deoptimized while the guest ran");
    const out = JSON.parse(after.pop() ?? "") as {
      status: Record<string, number>;
      stop: string;
      cause: number;
      sc: number;
    };
    assert.equal(out.stop, "ecall");
    assert.equal(out.cause, 8, "the run ended at the user ecall (scause 8)");
    assert.equal(out.sc, 0, "sc.d after lr.d succeeded");
    // The ones the guest surely calls (the fast tier runs the rest of it).
    for (const name of CALLED) {
      const status = out.status[name] ?? 0;
      assert.notEqual(
        status & TURBOFANNED,
        0,
        `${name} is not optimized (status ${String(status)})`,
      );
    }
  });
});
