/**
 * The state the soft "kernel" keeps for one vCPU beside the hart itself — the fields of Linux's
 * `struct kvm_vcpu_arch` that ONE_REG and SBI reach (arch/riscv/include/asm/kvm_host.h): the
 * ISA bitmap, mvendorid/marchid/mimpid, `ran_atleast_once`, the SBI extension status array and
 * the timer. regs*.ts and sbi.ts work on this interface; kernel.ts implements it.
 */
import type { HartApi, Memslot } from "./riscv/contract.js";
import type { SbiAvailability } from "./host.js";
import type { RunArea } from "./runarea.js";
import type { VmShared } from "./shared.js";
import type { VcpuTimer } from "./timer.js";

/** CONFIG registers that are per-vCPU values (`vcpu->arch.m*id`). */
export interface ImplIds {
  mvendorid: bigint;
  marchid: bigint;
  mimpid: bigint;
}

/** Everything the register and SBI code may read or change. */
export interface KernelState {
  readonly hart: HartApi;
  readonly shared: VmShared;
  readonly page: RunArea;
  readonly timer: VcpuTimer;
  /** vCPU index = hart id = `vcpu_id`. */
  readonly hartId: number;
  /** `vcpu->arch.ran_atleast_once`, latched by the first `run()`. */
  ranOnce: boolean;
  readonly ids: ImplIds;
  /** Enabled ISA extensions by KVM ISA extension id (1 enabled, 0 disabled or absent). */
  readonly isa: Uint8Array;
  /** SBI extension status by KVM SBI extension id. */
  readonly sbi: SbiAvailability[];
  /** Current memslots (for SBI address checks and console reads). */
  readonly memslots: readonly Memslot[];
  /** Applies the F/D bits of `isa` to the hart (resets sstatus.FS, as every ISA change does). */
  isaChanged(): void;
  /** Marks an SBI exit as pending its return values (`sbi_context.return_handled = 0`). */
  sbiForwarded(): void;
  /** Asks the run loop to wait for an interrupt, as WFI does (HSM retentive suspend). */
  requestWfi(): void;
  /** Asks for a vCPU reset to `pc` with a0 = hart id, a1 = `opaque` before the next entry. */
  requestReset(pc: bigint, opaque: bigint): void;
}

/** A refusal inside the kernel, carrying the errno the ioctl will fail with. */
export class Errno extends Error {
  readonly errno: number;
  constructor(errno: number) {
    super(`errno ${errno}`);
    this.errno = errno;
  }
}
