/** JSON helpers for CLI output: bigints as decimal strings or hex, bytes as hex. */
import type { VcpuExit } from "../backends/vcpu.js";

/** Lower-case hex of little-endian bytes as a number (`0x…`), most significant digit first. */
export function leHex(bytes: Uint8Array): string {
  let out = "";
  for (let i = bytes.length - 1; i >= 0; i--) out += (bytes[i] ?? 0).toString(16).padStart(2, "0");
  return "0x" + out;
}

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
