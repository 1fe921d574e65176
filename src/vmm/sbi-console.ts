/**
 * The RISC-V guest console on the VMM side: the SBI calls KVM forwards to userspace as
 * KVM_EXIT_RISCV_SBI (`VcpuExit` kind "riscv_sbi"; docs/soft-riscv-notes.md §1.4) — the legacy
 * v0.1 console and the Debug Console extension.
 *
 *   legacy CONSOLE_PUTCHAR (EID 0x01): a0 = byte                    → a0 = 0
 *   legacy CONSOLE_GETCHAR (EID 0x02):                              → a0 = byte or -1
 *   DBCN (EID 0x4442434E, SBI spec ch. 12), a0..a2 = args:
 *     FID 0 write(num_bytes, base_addr_lo, base_addr_hi)           → a0 = 0, a1 = bytes written
 *     FID 1 read(num_bytes, base_addr_lo, base_addr_hi)            → a0 = 0, a1 = bytes read
 *     FID 2 write_byte(byte)                                       → a0 = 0, a1 = 0
 *
 * Legacy calls return only a0 and must preserve every other register (SBI spec ch. 5), but
 * KVM writes both ret[0] and ret[1] back to a0/a1, so a1 is handed back unchanged. DBCN
 * buffers are guest-*physical*; on RV64 `base_addr_hi` must be 0. Writes and reads may be
 * partial (the spec allows it), bounded by `DBCN_MAX_CHUNK` per call. DBCN is disabled in KVM
 * by default: enable `sbi_ext.dbcn` before the first run for `earlycon=sbi` to use it.
 */
import { SBI_EID, SBI_ERR, SBI_LEGACY } from "../abi/sbi.js";
import type { VcpuExit } from "../backends/vcpu.js";

/** The "riscv_sbi" variant of `VcpuExit`. */
export type SbiExit = Extract<VcpuExit, { kind: "riscv_sbi" }>;

/** Guest-physical memory as the console needs it; `undefined` / `false` when not RAM. */
export interface PhysMemory {
  read(gpa: bigint, length: number): Uint8Array | undefined;
  write(gpa: bigint, bytes: Uint8Array): boolean;
}

/** Extension ids (SBI spec ch. 5 and ch. 12). */
export const SBI_CONSOLE_EID = {
  PUTCHAR: SBI_LEGACY.CONSOLE_PUTCHAR,
  GETCHAR: SBI_LEGACY.CONSOLE_GETCHAR,
  DBCN: SBI_EID.DBCN,
} as const;
/** Bytes moved per DBCN call at most; the guest loops on partial writes. */
export const DBCN_MAX_CHUNK = 4096;
const SBI_SUCCESS = SBI_ERR.SUCCESS;
const SBI_ERR_NOT_SUPPORTED = SBI_ERR.NOT_SUPPORTED;
const SBI_ERR_INVALID_PARAM = SBI_ERR.INVALID_PARAM;
/** Queued input bytes kept at most. */
const INPUT_LIMIT = 4096;

/** Serves the forwarded SBI console calls of one VM. */
export class SbiConsole {
  private readonly input: number[] = [];

  /**
   * @param sink receives guest output.
   * @param memory guest-physical memory for DBCN buffers.
   */
  constructor(
    private readonly sink: (bytes: Uint8Array) => void,
    private readonly memory: PhysMemory,
  ) {}

  /** Queues bytes for the guest to read (stdin). */
  pushInput(bytes: Uint8Array): void {
    for (const b of bytes) {
      if (this.input.length >= INPUT_LIMIT) return;
      this.input.push(b);
    }
  }

  /**
   * Answers a forwarded SBI call if it is a console call, setting `exit.ret`.
   * @returns false (and leaves `ret` alone) when the call is not a console call.
   */
  handle(exit: SbiExit): boolean {
    const { extensionId: eid, functionId: fid, args, ret } = exit;
    // PUTCHAR first, without a closure: a Linux 6.1 boot prints one byte per call (~5 K).
    if (eid === SBI_CONSOLE_EID.PUTCHAR) {
      this.sink(Uint8Array.of(Number((args[0] ?? 0n) & 0xffn)));
      setRet(ret, 0n, args[1] ?? 0n);
    } else if (eid === SBI_CONSOLE_EID.GETCHAR) {
      setRet(ret, BigInt(this.input.shift() ?? -1), args[1] ?? 0n);
    } else if (eid === SBI_CONSOLE_EID.DBCN) {
      this.dbcn(fid, (i) => args[i] ?? 0n, ret);
    } else {
      return false;
    }
    return true;
  }

  private dbcn(fid: bigint, a: (i: number) => bigint, ret: BigInt64Array): void {
    if (fid === 2n) {
      this.sink(Uint8Array.of(Number(a(0) & 0xffn)));
      setRet(ret, SBI_SUCCESS, 0n);
      return;
    }
    if (fid !== 0n && fid !== 1n) {
      setRet(ret, SBI_ERR_NOT_SUPPORTED, 0n);
      return;
    }
    const total = a(0);
    const length = Number(total > BigInt(DBCN_MAX_CHUNK) ? BigInt(DBCN_MAX_CHUNK) : total);
    const gpa = a(1);
    if (a(2) !== 0n) {
      setRet(ret, SBI_ERR_INVALID_PARAM, 0n);
      return;
    }
    if (fid === 0n) {
      const bytes = length === 0 ? new Uint8Array(0) : this.memory.read(gpa, length);
      if (bytes === undefined) {
        setRet(ret, SBI_ERR_INVALID_PARAM, 0n);
        return;
      }
      if (bytes.length > 0) this.sink(bytes.slice());
      setRet(ret, SBI_SUCCESS, BigInt(bytes.length));
      return;
    }
    const n = Math.min(length, this.input.length);
    const bytes = Uint8Array.from(this.input.slice(0, n));
    if (n > 0 && !this.memory.write(gpa, bytes)) {
      setRet(ret, SBI_ERR_INVALID_PARAM, 0n);
      return;
    }
    this.input.splice(0, n);
    setRet(ret, SBI_SUCCESS, BigInt(n));
  }
}

function setRet(ret: BigInt64Array, a0: bigint, a1: bigint): void {
  ret[0] = BigInt.asIntN(64, a0);
  ret[1] = BigInt.asIntN(64, a1);
}
