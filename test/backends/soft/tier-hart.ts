/**
 * The built-in hart with the options in this module's URL query (`?options=<json>`, written by
 * tiers.ts `tierHartModule`): threaded vCPUs construct `new Hart({ hartId })` in their Worker,
 * so the tier travels in the module URL (each distinct URL is its own module instance).
 */
import { Hart as BuiltinHart, type HartOptions } from "../../../src/backends/soft/riscv/hart.js";

function optionsOf(url: string): HartOptions {
  const text = new URL(url).searchParams.get("options");
  if (text === null) return {};
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed !== "object" || parsed === null) {
    throw new TypeError(`tier-hart: options must be a JSON object, got ${text}`);
  }
  // The query is what tierHartModule serialized from a HartOptions (all fields optional).
  return parsed;
}

const OPTIONS = optionsOf(import.meta.url);

/** The built-in hart on the tier named in the module URL. */
export class Hart extends BuiltinHart {
  constructor(options: { hartId: number }) {
    super({ ...OPTIONS, hartId: options.hartId });
  }
}
