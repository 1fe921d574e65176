/**
 * The part of the WebAssembly JS API the wasm tier uses, typed here because the project's
 * TypeScript lib (ES2022 + @types/node) has no WebAssembly declarations. Node 20 provides the
 * global (WebAssembly JS Interface spec, §5 "The WebAssembly namespace").
 */
import { setFlagsFromString } from "node:v8";

/** A linear memory (always created shared here: its buffer is a SharedArrayBuffer). */
export interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}

/** A funcref table. */
export interface WasmTable {
  readonly length: number;
  grow(delta: number): number;
  set(index: number, value: unknown): void;
}

/** An instantiated module's exports. */
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

interface WasmNamespace {
  Memory: new (desc: { initial: number; maximum: number; shared: boolean }) => WasmMemory;
  Table: new (desc: { initial: number; element: "anyfunc" }) => WasmTable;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
}

/**
 * V8's budget before it recompiles a hot wasm function with TurboFan (`--wasm-tiering-budget`,
 * "a rough approximation of bytes executed"; V8 11.3's default 1.8 M). Measured on a Linux 6.1
 * boot to /init (trace-wasm-compilation-times): 44 TurboFan compiles taking ~170 ms at the
 * default, on background threads competing with the boot for the host's 2 cores, against 13 at
 * 20 M: boot regions run a few thousand times and stay in Liftoff. compute.elf's loops run
 * millions of times and still tier up within milliseconds (soft.mips unchanged, 1700-1900).
 */
export const WASM_TIERING_BUDGET = 20_000_000;

// Process-wide and read when a module is compiled, so set before the tier compiles anything;
// a budget given on node's command line wins.
if (!process.execArgv.some((a) => a.startsWith("--wasm-tiering-budget"))) {
  setFlagsFromString(`--wasm-tiering-budget=${String(WASM_TIERING_BUDGET)}`);
}

// The global exists in every Node release regvisor supports; the cast only gives it a type.
const wasm = (globalThis as unknown as { WebAssembly: WasmNamespace }).WebAssembly;

/** The most 64 KiB pages a wasm32 memory holds in Node 20 (4 GiB; memory64 is behind a flag). */
export const WASM_MAX_PAGES = 65536;

/**
 * A new shared memory of `pages` 64 KiB pages that cannot grow (its buffer never changes), so
 * it can be posted to vCPU workers and every module imports it with the same limits.
 */
export function newMemory(pages: number): WasmMemory {
  return new wasm.Memory({ initial: pages, maximum: pages, shared: true });
}

/** A new funcref table of `size` empty entries. */
export function newTable(size: number): WasmTable {
  return new wasm.Table({ initial: size, element: "anyfunc" });
}

/** True if `value` is a WebAssembly.Memory (a posted one arrives as an object of that class). */
export function isMemory(value: unknown): value is WasmMemory {
  return value instanceof (wasm.Memory as unknown as new () => object);
}

/** Compiles and instantiates `bytes` synchronously with `imports` under module name "env". */
export function instantiate(bytes: Uint8Array, imports: Record<string, unknown>): WasmInstance {
  return new wasm.Instance(new wasm.Module(bytes), { env: imports });
}
