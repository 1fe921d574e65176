/**
 * The V8 settings of the `regvisor` executable (src/cli/v8-flags.ts). V8 has no API that reads
 * a flag back, but `--help` given through v8.setFlagsFromString() prints every flag with its
 * current value (on the "default:" line) and ends the process, so each case runs in a child
 * node and reads that listing. The inlining case shows a flag set at run time really changes
 * what TurboFan does (--trace-turbo-inlining), which is why the module can set it at all.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { V8_FLAGS } from "../../src/cli/v8-flags.js";

const MODULE = fileURLToPath(new URL("../../src/cli/v8-flags.js", import.meta.url));
const BIN = fileURLToPath(new URL("../../bin/regvisor.js", import.meta.url));

/** Runs `code` (an ES module) in a child node with `nodeArgs`; returns its stdout. */
function child(code: string, nodeArgs: readonly string[] = []): string {
  const r = spawnSync(process.execPath, [...nodeArgs, "--input-type=module", "-e", code], {
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

/** The current value of every V8 flag in a child that first runs `setup` (V8's --help). */
function flagValues(setup: string, nodeArgs: readonly string[] = []): Map<string, string> {
  const out = child(
    `import { setFlagsFromString } from "node:v8";\n${setup}\nsetFlagsFromString("--help");`,
    nodeArgs,
  );
  const values = new Map<string, string>();
  for (const m of out.matchAll(/default: --([a-z0-9-]+)=(\S*)/g)) {
    values.set(m[1] ?? "", m[2] ?? "");
  }
  return values;
}

const APPLY = `const { setV8Flags } = await import(${JSON.stringify(MODULE)}); setV8Flags();`;

describe("the regvisor executable's V8 flags", () => {
  it("setV8Flags() sets every flag of V8_FLAGS, each away from V8's default", () => {
    const before = flagValues("");
    const after = flagValues(APPLY);
    assert.ok(V8_FLAGS.length > 0);
    for (const { name, value } of V8_FLAGS) {
      assert.ok(before.has(name), `V8 has no flag --${name}`);
      assert.notEqual(before.get(name), String(value), `--${name} is already V8's default`);
      assert.equal(after.get(name), String(value), `--${name}`);
    }
  });

  it("a flag given on node's command line wins over setV8Flags()", () => {
    const [first] = V8_FLAGS;
    assert.ok(first !== undefined);
    const after = flagValues(APPLY, [`--${first.name}=4242`]);
    assert.equal(after.get(first.name), "4242");
  });

  it("the inlining budget set at run time changes what TurboFan inlines", () => {
    // helper's bytecode (~300 bytes) is over the budget V8_FLAGS sets and under V8's default
    // (920); synchronous compiles, so the trace is complete when the loop ends.
    const steps = Array.from(
      { length: 24 },
      (_, i) => `s = (s * ${String(i + 3)} + (x >> ${String(i % 7)})) | 0;`,
    );
    const program = (setup: string): string => `${setup}
      const { setFlagsFromString } = await import("node:v8");
      setFlagsFromString("--trace-turbo-inlining");
      function helper(x) { let s = x | 0; ${steps.join(" ")} return s; }
      function caller(x) { return helper(x) + helper(x + 1); }
      let t = 0;
      for (let i = 0; i < 200000; i++) t = (t + caller(i)) | 0;
      console.log("sum", t);`;
    const inlined = (setup: string): boolean =>
      /Inlining .*helper/.test(child(program(setup), ["--no-concurrent-recompilation"]));
    assert.equal(inlined(""), true, "V8's default inlines helper");
    assert.equal(inlined(APPLY), false, "after setV8Flags() helper is not inlined");
  });

  it("regvisor --version prints only its version (no V8 flag error on stdout)", () => {
    const r = spawnSync(process.execPath, [BIN, "--version"], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^\d+\.\d+\.\d+\S*\n$/);
    assert.equal(r.stderr, "");
  });
});
