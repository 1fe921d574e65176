/**
 * `Atomics.waitAsync` (ES2024; in Node since 16) for both backends' `runAsync()`: the caller's
 * thread awaits a shared word written by the vCPU's thread without blocking its event loop.
 */

/** What `Atomics.waitAsync` returns (ES2024 §25.4.14). */
interface WaitAsyncResult {
  readonly async: boolean;
  readonly value: Promise<"ok" | "timed-out"> | "not-equal" | "timed-out";
}

type WaitAsync = (array: Int32Array, index: number, value: number) => WaitAsyncResult;

// The project's lib is ES2022, which lacks the declaration; Node 20's V8 has the function.
const waitAsyncFn = (Atomics as unknown as { readonly waitAsync?: WaitAsync }).waitAsync;

/** Resolves once `array[index]` is no longer `value` (at once if it already is not). */
export async function waitForChange(
  array: Int32Array,
  index: number,
  value: number,
): Promise<void> {
  if (waitAsyncFn === undefined)
    throw new Error("Atomics.waitAsync is missing: use Node 20 or later");
  const result = waitAsyncFn(array, index, value);
  if (result.async && typeof result.value !== "string") await result.value;
}
