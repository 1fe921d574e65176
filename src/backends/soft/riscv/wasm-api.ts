/**
 * The part of the WebAssembly JS API the wasm tier uses, typed here because the project's
 * TypeScript lib (ES2022 + @types/node) has no WebAssembly declarations. Node 20 provides the
 * global (WebAssembly JS Interface spec, §5 "The WebAssembly namespace").
 */

/** A linear memory. */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

/** An instantiated module's exports. */
export interface WasmInstance {
  readonly exports: Record<string, unknown>;
}

interface WasmNamespace {
  Memory: new (desc: { initial: number; maximum?: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => WasmInstance;
}

// The global exists in every Node release regvisor supports; the cast only gives it a type.
const wasm = (globalThis as unknown as { WebAssembly: WasmNamespace }).WebAssembly;

/** A new memory of `pages` 64 KiB pages that cannot grow (its buffer never detaches). */
export function newMemory(pages: number): WasmMemory {
  return new wasm.Memory({ initial: pages, maximum: pages });
}

/** Compiles and instantiates `bytes` synchronously with `imports` under module name "env". */
export function instantiate(bytes: Uint8Array, imports: Record<string, unknown>): WasmInstance {
  return new wasm.Instance(new wasm.Module(bytes), { env: imports });
}
