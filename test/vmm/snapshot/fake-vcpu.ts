/**
 * An in-memory `Vcpu` for snapshot/restore tests: a map of id → bytes, a configurable
 * regList, read-only ids, ids accepted but not listed, and injectable failures. Writes are
 * logged so tests can check the order restore used. `setManyRegs` is all-or-nothing, as the
 * Vcpu contract requires (DESIGN.md §1): a failing entry undoes the entries before it.
 */
import { lookupReg } from "../../../src/abi/catalog.js";
import { ERRNO } from "../../../src/abi/kvm/errno.js";
import { KvmError } from "../../../src/abi/kvm/errors.js";
import type { ArchName, RegId } from "../../../src/abi/regid.js";
import { regSize } from "../../../src/abi/regid.js";
import type { Vcpu, VcpuExit } from "../../../src/backends/vcpu.js";
import type { Snapshot } from "../../../src/vmm/snapshot/format.js";
import { captureVcpu } from "../../../src/vmm/snapshot/restore.js";

/** A write the fake received. */
export interface WriteRecord {
  readonly op: "many" | "one";
  readonly ids: readonly RegId[];
}

/** Returns an error to make the access fail, or undefined to let it through. */
export type FailureHook = (op: "get" | "set", id: RegId) => Error | undefined;

/** The fake vCPU. */
export class FakeVcpu implements Vcpu {
  readonly values = new Map<RegId, Uint8Array>();
  /** Ids `regList()` returns, in order. */
  listed: RegId[] = [];
  /** Ids whose writes of a different value fail with EINVAL. */
  readonly readOnly = new Set<RegId>();
  readonly writes: WriteRecord[] = [];
  fail: FailureHook | undefined;
  closed = false;

  constructor(
    readonly arch: ArchName,
    readonly index = 0,
  ) {}

  /** Adds a listed register with a value (a bigint is stored little-endian). */
  add(id: RegId, value: Uint8Array | bigint, listed = true): this {
    this.values.set(id, toBytes(id, value));
    if (listed) this.listed.push(id);
    return this;
  }

  /** Adds registers by catalog name, each valued from `seed` and its position. */
  addNamed(names: readonly string[], seed = 1n): this {
    names.forEach((name, i) => {
      const id = lookupReg(this.arch, name).id;
      this.add(id, pattern(id, seed + BigInt(i)));
    });
    return this;
  }

  /** A deep copy of every value, for byte-identical comparisons. */
  dump(): Map<RegId, Uint8Array> {
    return new Map([...this.values].map(([id, v]) => [id, v.slice()]));
  }

  regList(): RegId[] {
    return [...this.listed];
  }

  private check(op: "get" | "set", id: RegId, index?: number): Uint8Array {
    const injected = this.fail?.(op, id);
    if (injected !== undefined) throw injected;
    const v = this.values.get(id);
    const ioctl = op === "get" ? "KVM_GET_ONE_REG" : "KVM_SET_ONE_REG";
    if (v === undefined) {
      throw new KvmError({
        action: `Cannot ${op} register`,
        ioctl,
        errno: ERRNO.ENOENT,
        regId: id,
        ...(index === undefined ? {} : { index }),
      });
    }
    return v;
  }

  getOneReg(id: RegId): Uint8Array {
    return this.check("get", id).slice();
  }

  private write(id: RegId, bytes: Uint8Array, index?: number): void {
    const old = this.check("set", id, index);
    if (this.readOnly.has(id) && !sameBytes(old, bytes)) {
      throw new KvmError({
        action: "Cannot set register",
        ioctl: "KVM_SET_ONE_REG",
        errno: ERRNO.EINVAL,
        regId: id,
        ...(index === undefined ? {} : { index }),
      });
    }
    this.values.set(id, bytes.slice());
  }

  setOneReg(id: RegId, value: Uint8Array | bigint): void {
    this.write(id, toBytes(id, value));
    this.writes.push({ op: "one", ids: [id] });
  }

  getManyRegs(ids: readonly RegId[]): Uint8Array {
    const parts = ids.map((id) => this.check("get", id));
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  setManyRegs(ids: readonly RegId[], bytes: Uint8Array): void {
    const total = ids.reduce((n, id) => n + regSize(id), 0);
    if (bytes.length !== total)
      throw new RangeError(`setManyRegs: ${bytes.length} bytes for ${total}`);
    const undo: [RegId, Uint8Array | undefined][] = [];
    let at = 0;
    try {
      ids.forEach((id, index) => {
        undo.push([id, this.values.get(id)]);
        this.write(id, bytes.subarray(at, at + regSize(id)), index);
        at += regSize(id);
      });
    } catch (e) {
      for (const [id, v] of undo.reverse()) if (v !== undefined) this.values.set(id, v);
      throw e;
    }
    this.writes.push({ op: "many", ids: [...ids] });
  }

  run(): VcpuExit {
    return { kind: "hlt" };
  }

  close(): void {
    this.closed = true;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Little-endian bytes of `value` at the id's size. */
export function toBytes(id: RegId, value: Uint8Array | bigint): Uint8Array {
  const size = regSize(id);
  if (value instanceof Uint8Array) {
    if (value.length !== size)
      throw new RangeError(`value of ${value.length} bytes for a ${size}-byte register`);
    return value.slice();
  }
  const out = new Uint8Array(size);
  let v = value;
  for (let i = 0; i < size && v > 0n; i++) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** A deterministic non-zero value for `id`, different for each seed. */
export function pattern(id: RegId, seed: bigint): Uint8Array {
  const out = new Uint8Array(regSize(id));
  for (let i = 0; i < out.length; i++) out[i] = Number((seed * 31n + BigInt(i) * 7n + 1n) & 0xffn);
  return out;
}

/** True when two arrays hold the same bytes. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A riscv snapshot of `vcpus` as captured now, with no memory or devices. */
export function snapshotOf(...vcpus: FakeVcpu[]): Snapshot {
  return {
    arch: "riscv",
    backend: "soft-inline",
    flags: 0,
    meta: {},
    vcpus: vcpus.map((v) => captureVcpu(v)),
    memory: [],
    devices: [],
  };
}
