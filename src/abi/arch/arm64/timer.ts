/**
 * The KVM timer ids (arch/arm64/include/uapi/asm/kvm.h; docs/kvm-register-abi.md §7.3).
 *
 * They live in the sysreg group but are rows of their own because two of them lie about
 * their encoding: KVM_REG_ARM_TIMER_CVAL carries CNTVCT_EL0's encoding (3,3,14,0,2) yet
 * accesses CNTV_CVAL_EL0, and KVM_REG_ARM_TIMER_CNT carries CNTV_CVAL_EL0's (3,3,14,3,2) yet
 * accesses CNTVCT_EL0. The swap is frozen ABI: KVM translates the two ids before its sysreg
 * lookup and reports them from KVM_GET_REG_LIST. These rows therefore win over the plain
 * sysreg names for all six encodings, and each row's aliases name what it *accesses*, never
 * what its encoding says: `lookup("CNTVCT_EL0")` is TIMER_CNT, the id that reads the virtual
 * count.
 *
 * `fields` hold the wire encoding (`op0..op2`) plus `accesses`, the register KVM really
 * reads or writes.
 */
import type { RowSpec } from "../table.js";
import type { SysRegEncoding } from "./encoding.js";
import { sysRegId } from "./encoding.js";

/** One timer id: wire encoding and the architectural register behind it. */
interface TimerSpec {
  readonly name: string;
  readonly wire: SysRegEncoding;
  readonly accesses: string;
  /** Where KVM_GET_REG_LIST reports it: the natural encoding of `accesses`. */
  readonly listedAt: SysRegEncoding;
}

const enc = (op0: number, op1: number, crn: number, crm: number, op2: number): SysRegEncoding => ({
  op0,
  op1,
  crn,
  crm,
  op2,
});

/** The six timer ids; the virtual CVAL/CNT pair carries swapped encodings (see above). */
const TIMER_SPECS: readonly TimerSpec[] = [
  {
    name: "TIMER_CTL",
    wire: enc(3, 3, 14, 3, 1),
    accesses: "CNTV_CTL_EL0",
    listedAt: enc(3, 3, 14, 3, 1),
  },
  {
    name: "TIMER_CVAL",
    wire: enc(3, 3, 14, 0, 2),
    accesses: "CNTV_CVAL_EL0",
    listedAt: enc(3, 3, 14, 3, 2),
  },
  {
    name: "TIMER_CNT",
    wire: enc(3, 3, 14, 3, 2),
    accesses: "CNTVCT_EL0",
    listedAt: enc(3, 3, 14, 0, 2),
  },
  {
    name: "PTIMER_CTL",
    wire: enc(3, 3, 14, 2, 1),
    accesses: "CNTP_CTL_EL0",
    listedAt: enc(3, 3, 14, 2, 1),
  },
  {
    name: "PTIMER_CVAL",
    wire: enc(3, 3, 14, 2, 2),
    accesses: "CNTP_CVAL_EL0",
    listedAt: enc(3, 3, 14, 2, 2),
  },
  {
    name: "PTIMER_CNT",
    wire: enc(3, 3, 14, 0, 1),
    accesses: "CNTPCT_EL0",
    listedAt: enc(3, 3, 14, 0, 1),
  },
];

/** A timer row plus the sysreg index KVM_GET_REG_LIST would report it at. */
export interface TimerRow {
  readonly row: RowSpec;
  readonly listedAt: SysRegEncoding;
}

/** The timer rows, aliased by their uapi macro names and by the register each accesses. */
export function arm64TimerRows(): TimerRow[] {
  return TIMER_SPECS.map((spec) => ({
    row: {
      id: sysRegId(spec.wire),
      name: spec.name,
      class: "timer",
      fields: { ...spec.wire, accesses: spec.accesses },
      aliases: [`KVM_REG_ARM_${spec.name}`, spec.accesses],
    },
    listedAt: spec.listedAt,
  }));
}
