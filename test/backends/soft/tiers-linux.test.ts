/**
 * The Linux guest (scripts/build-linux.sh) boots to /init and powers off on every soft tier
 * (issue 13 point 4). test/linux/boot.test.ts boots it through the CLI on the default tier;
 * here each other tier boots it once, in this process, on the same machine `regvisor run
 * --backend soft` builds (runGuest with a soft backend whose harts are on that tier, inline,
 * 1 vCPU, console=hvc0), and /init's transcript is checked the same way.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Hart } from "../../../src/backends/soft/riscv/hart.js";
import { softBackend } from "../../../src/cli/backends.js";
import type { MachineBackend } from "../../../src/vmm/machine/backend.js";
import { runGuest } from "../../../src/vmm/runner.js";
import { assertInitRan, initLines, LINUX_LOAD_ADDR, linuxImage } from "../../linux/guest.js";
import { defaultTierName, ENGINE_TIERS, type EngineTier } from "./tiers.js";

const found = linuxImage();
const imageSkip = "skip" in found ? found.skip : undefined;
const CMDLINE = "console=hvc0 earlycon=sbi";

/** The soft backend of `regvisor run`, its harts on `tier`. */
function softOn(tier: EngineTier): MachineBackend {
  return softBackend("inline", (id) => new Hart({ ...tier.options, hartId: id }));
}

describe("Linux boots to /init on every soft tier", { skip: imageSkip ?? false }, () => {
  const others = ENGINE_TIERS.filter((t) => t.name !== defaultTierName());
  for (const tier of others) {
    it(`the ${tier.name} tier: /init runs to its last line, SRST power-off, status 0`, async (t) => {
      const image = "image" in found ? found.image : "";
      let stdout = "";
      const decoder = new TextDecoder();
      const start = performance.now();
      let firstInitMs: number | undefined;
      const summary = await runGuest({
        file: readFileSync(image),
        backendFor: () => softOn(tier),
        backend: "soft",
        memSize: 256n << 20n,
        loadAddr: BigInt(LINUX_LOAD_ADDR),
        cmdline: CMDLINE,
        timeoutMs: 120_000,
        collectRegisters: false,
        output: (bytes) => {
          stdout += decoder.decode(bytes, { stream: true });
          if (firstInitMs === undefined && `\n${stdout}`.includes("\ninit: ")) {
            firstInitMs = performance.now() - start;
          }
        },
      });
      stdout += decoder.decode();
      const boot = {
        status: summary.ending.status,
        signal: null,
        stdout,
        stderr: summary.ending.message,
        init: initLines(stdout),
        firstInitMs,
        firstInitCpuS: undefined,
        timedOut: summary.ending.reason === "timeout",
      };
      assertInitRan(boot, image, CMDLINE);
      assert.ok(boot.init.includes("cpus online 0 count 1"), boot.init.join("\n"));
      assert.equal(summary.ending.reason, "shutdown", summary.ending.message);
      assert.equal(summary.ending.status, 0, summary.ending.message);
      const secs = (ms: number | undefined): string => ((ms ?? NaN) / 1000).toFixed(2);
      t.diagnostic(
        `${tier.name} tier: /init after ${secs(firstInitMs)} s, power-off after ${secs(performance.now() - start)} s`,
      );
    });
  }
});
