/**
 * The vCPU and capability conformance suites (test/conformance) on every soft tier the
 * REGVISOR_SOFT_TIER environment variable selects other than the default one: the suites build
 * their soft VMs with `createSoftVm()`, whose harts (inline, and in each threaded Worker) take
 * the tier from that variable, so a child `node --test` with it set runs both suites' soft
 * targets on that tier. The default tier runs them in the main suite already.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { defaultTierName } from "./tiers.js";

const SUITES = ["vcpu.test.js", "capabilities.test.js"].map((f) =>
  fileURLToPath(new URL(`../../conformance/${f}`, import.meta.url)),
);
const missing = SUITES.filter((f) => !existsSync(f));
const skip = missing.length > 0 ? `conformance suites not built: ${missing.join(", ")}` : false;

/** Tiers REGVISOR_SOFT_TIER can name (hart.ts tierFromEnv). */
const ENV_TIERS = ["js", "wasm"] as const;

describe("conformance suites on every soft tier", { skip }, () => {
  for (const tier of ENV_TIERS.filter((t) => t !== defaultTierName())) {
    it(`vCPU and capability conformance pass with REGVISOR_SOFT_TIER=${tier}`, () => {
      const env: NodeJS.ProcessEnv = { ...process.env, REGVISOR_SOFT_TIER: tier };
      // A nested runner must not think it reports to this one (node:test child protocol).
      delete env.NODE_TEST_CONTEXT;
      const r = spawnSync(
        process.execPath,
        ["--test", "--test-reporter=tap", "--test-concurrency=1", ...SUITES],
        { env, encoding: "utf8", timeout: 120_000 },
      );
      const out = r.stdout;
      const count = (what: string): number =>
        Number(new RegExp(`^# ${what} (\\d+)$`, "m").exec(out)?.[1]);
      assert.equal(r.status, 0, `${out.slice(-3000)}\n${r.stderr}`);
      assert.equal(count("fail"), 0);
      // Both suites' soft targets ran (not skipped): inline and threaded, vCPU and capability.
      for (const mode of ["inline", "threaded"]) {
        const passed = out
          .split("\n")
          .filter((l) => /^\s*ok \d+ - /.test(l) && !l.includes("# SKIP"));
        assert.ok(
          passed.some((l) => l.includes(`soft riscv ${mode}`)),
          `soft riscv ${mode} ran`,
        );
      }
      assert.ok(count("pass") >= 60, `${count("pass")} passed`);
    });
  }
});
