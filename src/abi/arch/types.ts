/**
 * The shape every architecture catalog exports (src/abi/arch/<arch>/index.ts).
 *
 * A catalog answers three questions about a namespace: which registers have names (its table),
 * what an arbitrary id means (structured decoding, even for ids with no name), and which id a
 * name stands for. Arch differences stay behind this interface; shared code never branches on a
 * specific arch.
 */
import type { ArchName, RegId } from "../regid.js";

/** Structured parts of an id, e.g. `{ op0: 3, op1: 0, crn: 1, crm: 0, op2: 0 }`. */
export type RegFields = Readonly<Record<string, number | string>>;

/** What a catalog knows about one id. */
export interface RegInfo {
  readonly id: RegId;
  readonly arch: ArchName;
  /** Value size in bytes, always `regSize(id)`. */
  readonly size: number;
  /**
   * Name, unique within the arch. Table rows carry their architectural name (`"MIDR_EL1"`,
   * `"core.ra"`, `"IA32_TSC"`); ids that decode structurally but have no row get an exact
   * generic name (`"ARM64_SYS_REG(3,0,1,0,0)"`, `"MSR(0x12345678)"`) that `lookup()` accepts.
   */
  readonly name: string;
  /** Register class within the arch, e.g. `"core"`, `"csr"`, `"sysreg"`, `"msr"`. */
  readonly class: string;
  /** True when the ABI makes the register read-only (a SET of a different value fails). */
  readonly readOnly: boolean;
  /** True for table rows, false for structurally decoded ids with a generic name. */
  readonly named: boolean;
  /** Structured fields of the id (see each catalog's header comment). */
  readonly fields: RegFields;
  /** Other names `lookup()` accepts for this register (e.g. `"x1"` for riscv `core.ra`). */
  readonly aliases?: readonly string[];
  /** Set on regvisor-private pseudo-register ids that never reach a kernel. */
  readonly pseudo?: boolean;
}

/** One architecture's register catalog. */
export interface ArchCatalog {
  readonly arch: ArchName;
  /** Human title, e.g. `"RISC-V (RV64)"`. */
  readonly title: string;
  /** Class names in table order, for `regs list --class`. */
  readonly classes: readonly string[];
  /** Every named register, in the order the kernel would list them where it lists them. */
  readonly entries: readonly RegInfo[];
  /**
   * Decodes any id whose arch byte is this catalog's: the table row when there is one, a
   * generic structured decoding otherwise, or `undefined` when the id fits no namespace of
   * this arch (never a guess).
   */
  decode(id: RegId): RegInfo | undefined;
  /** Finds a register by name, alias or generic name (case-insensitive); `undefined` if none. */
  lookup(name: string): RegInfo | undefined;
}
