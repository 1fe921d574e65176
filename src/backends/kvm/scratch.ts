/**
 * Growable native scratch space for ioctl arguments. Each KVM object owns one; structs are
 * built in it, the ioctl runs, and results are copied out, so no view of it escapes to callers
 * (which is what makes reusing it across calls safe).
 */
import { KvmError } from "../../abi/kvm/errors.js";
import { mapAnonymous, type NativeMemory } from "./ffi.js";

const PAGE = 4096;

/** A page-rounded native buffer that is replaced by a larger one on demand. */
export class Scratch {
  #mem: NativeMemory | undefined;
  // Prefix views of the current mapping by length, so hot paths copy out without allocating.
  #prefixes = new Map<number, Uint8Array>();
  // The regions of side(), by slot.
  #sides: (NativeMemory | undefined)[] = [];

  constructor(initialBytes = PAGE) {
    this.#mem = Scratch.#map(initialBytes);
  }

  static #map(bytes: number): NativeMemory {
    const size = Math.max(PAGE, Math.ceil(bytes / PAGE) * PAGE);
    const mem = mapAnonymous(size);
    if (typeof mem === "number") throw new KvmError({ ioctl: "mmap", errno: -mem });
    return mem;
  }

  /**
   * Native memory of at least `bytes` bytes (contents unspecified after growth).
   * @throws {KvmError} if mmap fails.
   */
  get(bytes: number): NativeMemory {
    let mem = this.#mem;
    if (mem === undefined || mem.size < bytes) {
      mem?.release();
      mem = Scratch.#map(bytes);
      this.#mem = mem;
      this.#prefixes.clear();
    }
    return mem;
  }

  /** The first `bytes` bytes of the current mapping (call `get(bytes)` first). */
  prefix(bytes: number): Uint8Array {
    let view = this.#prefixes.get(bytes);
    if (view === undefined) {
      view = this.get(bytes).bytes.subarray(0, bytes);
      this.#prefixes.set(bytes, view);
    }
    return view;
  }

  /**
   * Native memory of at least `bytes` bytes that `get()` never hands out: each slot is a
   * region of its own, for data that must outlive the `get()` calls in between (the x86
   * register view keeps rollback copies in one, a slot per nesting level). Contents stay
   * until the slot grows.
   * @throws {KvmError} if mmap fails.
   */
  side(slot: number, bytes: number): NativeMemory {
    let mem = this.#sides[slot];
    if (mem === undefined || mem.size < bytes) {
      mem?.release();
      mem = Scratch.#map(bytes);
      this.#sides[slot] = mem;
    }
    return mem;
  }

  /** Frees the pages (the address ranges go when they are collected). */
  release(): void {
    this.#mem?.release();
    this.#mem = undefined;
    this.#prefixes.clear();
    for (const mem of this.#sides) mem?.release();
    this.#sides = [];
  }
}
