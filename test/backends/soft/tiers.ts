/**
 * The soft engine's execution tiers as tests select them (issue 13 point 4: every guest test on
 * every tier): the reference interpreter alone, the JS block translator and the wasm tier, each
 * either at its normal hotness or compiling every block on first sight (small test programs
 * never get hot otherwise). Inline VMs get the tier through `hartFactory`; threaded VMs through
 * `hartModule`, a URL of tier-hart.ts whose query carries the same options to each Worker.
 */
import { Hart, tierFromEnv, type HartOptions } from "../../../src/backends/soft/riscv/hart.js";
import type { RunBudget } from "../../../src/backends/soft/kernel.js";
import { SoftVm } from "../../../src/backends/soft/vm.js";
import type { SoftMode } from "../../../src/backends/soft/vcpu.js";

/** An execution tier: a name for test titles and the hart options that select it. */
export interface EngineTier {
  readonly name: "interpreter" | "js" | "wasm";
  readonly options: HartOptions;
}

/** The three tiers at their normal hotness. */
export const ENGINE_TIERS: readonly EngineTier[] = [
  { name: "interpreter", options: { translate: false } },
  { name: "js", options: { translate: true, tier: "js" } },
  { name: "wasm", options: { translate: true, tier: "wasm" } },
];

/** `tier` compiling every block the first time it is reached (the interpreter unchanged). */
export function eager(tier: EngineTier): EngineTier {
  return tier.options.translate === false
    ? tier
    : { name: tier.name, options: { ...tier.options, hotThreshold: 1 } };
}

/** The tier a hart gets with no options (REGVISOR_SOFT_TIER, else the engine's default). */
export function defaultTierName(): EngineTier["name"] {
  return tierFromEnv(process.env.REGVISOR_SOFT_TIER);
}

/** The URL of the hart module a threaded vCPU of `options` imports (tier-hart.ts). */
export function tierHartModule(options: HartOptions): string {
  const url = new URL("./tier-hart.js", import.meta.url);
  url.searchParams.set("options", JSON.stringify(options));
  return url.href;
}

/** A soft VM whose every vCPU (inline or threaded) runs on `tier`. */
export function tierVm(mode: SoftMode, tier: EngineTier, budget?: RunBudget): SoftVm {
  return new SoftVm({
    mode,
    hartFactory: (hartId) => new Hart({ ...tier.options, hartId }),
    hartModule: tierHartModule(tier.options),
    ...(budget === undefined ? {} : { budget }),
  });
}
