/**
 * MANY_REGS, natively (docs/DESIGN.md §1; not a kernel ABI): one call moves a packed little-endian
 * stream of exactly Σ size(id) bytes, in list order, no padding.
 *
 * `setMany` has all-or-nothing semantics: entries are applied in order with the ONE_REG rules
 * (so an entry may depend on an earlier one, e.g. enabling F then writing `fp_f.f0`); if any
 * entry fails, the vCPU state every class of the batch could have touched is put back exactly
 * (including side effects such as the FS reset of an ISA change, the STIP clear of arming the
 * timer, and the VM-wide time delta) and the error names the failing index.
 */
import { RISCV_REG_TYPE as T } from "../../abi/arch/riscv/index.js";
import type { RegId } from "../../abi/regid.js";
import { GENERAL_CSRS, IRQ } from "./riscv/contract.js";
import { decodeLE, encodeLE } from "../../abi/value.js";
import { Errno, type KernelState } from "./kstate.js";
import { getRegParts, setRegParts, splitId, type IdParts } from "./regs.js";

/** Type 0 is no class: ENOENT. */
const NO_REG = splitId(0n);

/** A batch entry failed: its index and the errno ONE_REG would have returned. */
export class BatchErrno extends Errno {
  readonly index: number;
  constructor(errno: number, index: number) {
    super(errno);
    this.index = index;
  }
}

/** Byte size of each id's value, and their sum. */
export function batchSizes(ids: readonly RegId[]): { sizes: number[]; total: number } {
  let total = 0;
  const sizes = ids.map((id) => {
    const size = splitId(id).size;
    total += size;
    return size;
  });
  return { sizes, total };
}

/**
 * Reads every register (ids already split) into `out`, packed.
 * @throws {BatchErrno} at the first failing entry.
 */
export function getMany(st: KernelState, ids: readonly IdParts[], out: Uint8Array): void {
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  let offset = 0;
  for (let i = 0; i < ids.length; i++) {
    const parts = ids[i] ?? NO_REG;
    let value: bigint;
    try {
      value = getRegParts(st, parts);
    } catch (error) {
      throw error instanceof Errno ? new BatchErrno(error.errno, i) : error;
    }
    // A register the kernel answered for is 4 or 8 bytes (no vector registers here).
    if (parts.size === 8) view.setBigUint64(offset, BigInt.asUintN(64, value), true);
    else if (parts.size === 4) view.setUint32(offset, Number(BigInt.asUintN(32, value)), true);
    else encodeLE(value, out, offset, parts.size);
    offset += parts.size;
  }
}

/**
 * Applies a packed stream (ids already split) all-or-nothing.
 * @throws {BatchErrno} naming the failing entry.
 */
export function setMany(st: KernelState, ids: readonly IdParts[], bytes: Uint8Array): void {
  const checkpoint = new Checkpoint(st, ids);
  let offset = 0;
  for (let i = 0; i < ids.length; i++) {
    const parts = ids[i] ?? NO_REG;
    try {
      setRegParts(st, parts, decodeLE(bytes, offset, parts.size));
    } catch (error) {
      checkpoint.restore();
      throw error instanceof Errno ? new BatchErrno(error.errno, i) : error;
    }
    offset += parts.size;
  }
}

/** The state a batch may change, captured per register class before applying it. */
class Checkpoint {
  private readonly core?: bigint[];
  private readonly csr?: bigint[];
  private readonly fp?: { f: bigint[]; fcsr: number };
  private readonly config?: { isa: Uint8Array; ids: [bigint, bigint, bigint] };
  private readonly timer?: { compare: bigint; armed: boolean; delta: bigint; stip: boolean };
  private readonly sbi?: KernelState["sbi"];

  constructor(
    private readonly st: KernelState,
    ids: readonly IdParts[],
  ) {
    const types = new Set(ids.map((parts) => parts.type));
    const hart = st.hart;
    const isaTouched = types.has(T.CONFIG) || types.has(T.ISA_EXT);
    if (types.has(T.CORE)) {
      this.core = [hart.getPc(), ...range(31).map((i) => hart.getX(i + 1)), BigInt(hart.getMode())];
    }
    if (types.has(T.CSR) || isaTouched) this.csr = GENERAL_CSRS.map((name) => hart.getCsr(name));
    if (types.has(T.FP_F) || types.has(T.FP_D)) {
      this.fp = { f: range(32).map((i) => hart.getF(i)), fcsr: hart.getFcsr() };
    }
    if (isaTouched) {
      const { mvendorid, marchid, mimpid } = st.ids;
      this.config = { isa: st.isa.slice(), ids: [mvendorid, marchid, mimpid] };
    }
    if (types.has(T.TIMER)) {
      const stip = (hart.getCsr("sip") & BigInt(IRQ.STIP)) !== 0n;
      const { compare, armed } = st.timer;
      this.timer = { compare, armed, delta: st.shared.timeDelta, stip };
    }
    if (types.has(T.SBI_EXT)) this.sbi = st.sbi.slice();
  }

  restore(): void {
    const { st } = this;
    const hart = st.hart;
    if (this.config !== undefined) {
      const changed = this.config.isa.some((v, i) => st.isa[i] !== v);
      st.isa.set(this.config.isa);
      [st.ids.mvendorid, st.ids.marchid, st.ids.mimpid] = this.config.ids;
      if (changed) st.isaChanged();
    }
    this.csr?.forEach((value, i) => {
      const name = GENERAL_CSRS[i];
      if (name !== undefined) hart.setCsr(name, value);
    });
    if (this.core !== undefined) {
      hart.setPc(this.core[0] ?? 0n);
      for (let i = 1; i <= 31; i++) hart.setX(i, this.core[i] ?? 0n);
      hart.setMode(this.core[32] === 1n ? 1 : 0);
    }
    if (this.fp !== undefined) {
      this.fp.f.forEach((bits, i) => {
        hart.setF(i, bits);
      });
      hart.setFcsr(this.fp.fcsr);
    }
    if (this.timer !== undefined) {
      st.timer.compare = this.timer.compare;
      st.timer.armed = this.timer.armed;
      st.shared.timeDelta = this.timer.delta;
      hart.setPending(IRQ.STIP, this.timer.stip);
    }
    if (this.sbi !== undefined) st.sbi.splice(0, st.sbi.length, ...this.sbi);
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
