/** JSON helpers for CLI output: bigints as decimal strings or hex, bytes as hex. */
import type { VcpuExit } from "../backends/vcpu.js";

/** A VcpuExit as plain JSON data (bigints → "0x…" strings, byte arrays → hex). */
export function exitToJson(exit: VcpuExit): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(exit)) out[key] = jsonValue(value);
  return out;
}

function jsonValue(value: unknown): unknown {
  if (typeof value === "bigint") return "0x" + BigInt.asUintN(64, value).toString(16);
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (value instanceof BigInt64Array || value instanceof BigUint64Array) {
    return Array.from(value, (v) => "0x" + BigInt.asUintN(64, v).toString(16));
  }
  if (Array.isArray(value)) return value.map(jsonValue);
  return value;
}
