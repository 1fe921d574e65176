/**
 * The SBI "firmware" of a soft vCPU: what Linux 6.18 KVM does when the guest executes `ecall`
 * in S-mode (arch/riscv/kvm/vcpu_sbi.c `kvm_riscv_vcpu_sbi_ecall` and the vcpu_sbi_*.c
 * handlers; docs/kvm-register-abi.md §4.5, docs/soft-riscv-notes.md §1.4). Calling convention
 * (SBI spec ch. 3): a7 = extension id, a6 = function id, a0..a5 = arguments; a0 = error, a1 =
 * value.
 *
 * In kernel: BASE, legacy v0.1 (except the console), TIME, IPI, RFENCE, HSM, SRST (→
 * KVM_EXIT_SYSTEM_EVENT, pc left on the ecall). Forwarded as KVM_EXIT_RISCV_SBI (pc left on the
 * ecall; the next `run()` sets a0 = ret[0], a1 = ret[1] and pc += 4, exactly once — legacy calls
 * included, as `kvm_riscv_vcpu_sbi_return` writes both): legacy putchar/getchar, DBCN, SUSP after
 * its checks, BASE probe_extension of an experimental/vendor id, and every experimental (0x08xxxxxx)
 * or vendor (0x09xxxxxx) call. A disabled or unknown extension gets a0 = -2 (NOT_SUPPORTED),
 * a1 = 0, pc += 4, no exit. In-kernel legacy calls leave a1 alone.
 *
 * Limitation: legacy SEND_IPI / REMOTE_FENCE* take a pointer to a hart mask; KVM reads it through
 * the guest's page tables. The soft kernel reads it only when the guest runs with satp = Bare
 * (or the pointer is 0, meaning all harts); otherwise the call returns NOT_SUPPORTED.
 */
import { KVM_SYSTEM_EVENT } from "../../abi/kvm/constants.js";
import { IRQ } from "./riscv/contract.js";
import { SBI_IMPL_ID, SBI_IMPL_VERSION, SBI_SPEC_VERSION, sbiExtId } from "./host.js";
import type { SbiExtName } from "./host.js";
import type { KernelState } from "./kstate.js";
import { readPhysU64, slotFor } from "./guestmem.js";
import { FENCE, MP } from "./shared.js";
import { SBI_EID, SBI_ERR, SBI_LEGACY } from "../../abi/sbi.js";

export { SBI_EID, SBI_ERR, SBI_LEGACY } from "../../abi/sbi.js";

type Result = { readonly exit: true } | { readonly exit: false; err: bigint; out: bigint };
type Handler = (st: KernelState, fid: bigint, a: readonly bigint[], eid: bigint) => Result;

const EXIT: Result = { exit: true };
const ok = (out = 0n): Result => ({ exit: false, err: 0n, out });
const err = (code: bigint): Result => ({ exit: false, err: code, out: 0n });
const U64_MAX = (1n << 64n) - 1n;
const u32 = (v: bigint): bigint => v & 0xffffffffn;

/** What the run loop does after an `ecall`: keep running, or return the exit in the page. */
export type EcallOutcome = "continue" | "exit";

/**
 * Handles the S-mode `ecall` the hart stopped on (pc points at it).
 * `kvm_riscv_vcpu_sbi_ecall`: a0 = error, a1 = value (not for legacy), pc += 4 unless exiting.
 */
export function handleEcall(st: KernelState): EcallOutcome {
  const hart = st.hart;
  const eid = hart.getX(17);
  const fid = hart.getX(16);
  // a0..a5 written out: a Linux 6.1 boot makes ~5 K calls (one per console byte).
  const args = [
    hart.getX(10),
    hart.getX(11),
    hart.getX(12),
    hart.getX(13),
    hart.getX(14),
    hart.getX(15),
  ];
  const ext = findExtension(st, eid);
  const result = ext === undefined ? err(SBI_ERR.NOT_SUPPORTED) : ext(st, fid, args, eid);
  if (result.exit) return "exit";
  hart.setX(10, BigInt.asUintN(64, result.err));
  const legacy = ext !== undefined && eid <= SBI_EID.LEGACY_END;
  if (!legacy) hart.setX(11, BigInt.asUintN(64, result.out));
  hart.setPc(BigInt.asUintN(64, hart.getPc() + 4n));
  return "continue";
}

/** `kvm_vcpu_sbi_find_ext`: the handler for `eid` if its extension is enabled. */
function findExtension(st: KernelState, eid: bigint): Handler | undefined {
  if (eid === SBI_EID.BASE) return base; // BASE cannot be disabled
  const entry = lookup(eid);
  if (entry === undefined) return undefined;
  return st.sbi[entry.ext] === "enabled" ? entry.handler : undefined;
}

/** An extension's SBI_EXT register index and its handler. */
interface Extension {
  readonly ext: number;
  readonly handler: Handler;
}

const extension = (name: SbiExtName, handler: Handler): Extension => ({
  ext: sbiExtId(name),
  handler,
});

// Made once: every ecall looks its extension up (a Linux 6.1 boot: ~5 K console calls).
const EXTENSIONS = {
  v01: extension("v01", legacy),
  experimental: extension("experimental", forward),
  vendor: extension("vendor", forward),
  time: extension("time", time),
  ipi: extension("ipi", ipi),
  rfence: extension("rfence", rfence),
  srst: extension("srst", srst),
  hsm: extension("hsm", hsm),
  dbcn: extension("dbcn", dbcn),
  susp: extension("susp", susp),
} as const;

function lookup(eid: bigint): Extension | undefined {
  if (eid <= SBI_EID.LEGACY_END) return EXTENSIONS.v01;
  if (eid >= SBI_EID.EXPERIMENTAL_START && eid <= SBI_EID.EXPERIMENTAL_END) {
    return EXTENSIONS.experimental;
  }
  if (eid >= SBI_EID.VENDOR_START && eid <= SBI_EID.VENDOR_END) return EXTENSIONS.vendor;
  switch (eid) {
    case SBI_EID.TIME:
      return EXTENSIONS.time;
    case SBI_EID.IPI:
      return EXTENSIONS.ipi;
    case SBI_EID.RFENCE:
      return EXTENSIONS.rfence;
    case SBI_EID.SRST:
      return EXTENSIONS.srst;
    case SBI_EID.HSM:
      return EXTENSIONS.hsm;
    case SBI_EID.DBCN:
      return EXTENSIONS.dbcn;
    case SBI_EID.SUSP:
      return EXTENSIONS.susp;
    default:
      return undefined; // PMU, STA and FWFT are unavailable on this host
  }
}

/** `kvm_riscv_vcpu_sbi_forward`: a KVM_EXIT_RISCV_SBI with ret = [-2, 0]. */
function forward(st: KernelState, fid: bigint, a: readonly bigint[], eid: bigint): Result {
  st.page.writeSbi(eid, fid, a);
  st.sbiForwarded();
  return EXIT;
}

function base(st: KernelState, fid: bigint, a: readonly bigint[], eid: bigint): Result {
  switch (fid) {
    case 0n:
      return ok(SBI_SPEC_VERSION);
    case 1n:
      return ok(SBI_IMPL_ID);
    case 2n:
      return ok(SBI_IMPL_VERSION);
    case 3n: {
      const probed = a[0] ?? 0n;
      const outside =
        (probed >= SBI_EID.EXPERIMENTAL_START && probed <= SBI_EID.EXPERIMENTAL_END) ||
        (probed >= SBI_EID.VENDOR_START && probed <= SBI_EID.VENDOR_END);
      if (outside) return forward(st, fid, a, eid);
      return ok(findExtension(st, probed) === undefined ? 0n : 1n);
    }
    case 4n:
      return ok(st.ids.mvendorid);
    case 5n:
      return ok(st.ids.marchid);
    case 6n:
      return ok(st.ids.mimpid);
    default:
      return err(SBI_ERR.NOT_SUPPORTED);
  }
}

function time(st: KernelState, fid: bigint, a: readonly bigint[]): Result {
  if (fid !== 0n) return err(SBI_ERR.INVALID_PARAM); // vcpu_sbi_replace.c: only set_timer
  st.timer.nextEvent(st.hart, a[0] ?? 0n);
  return ok();
}

/** Calls `fn` for each vCPU selected by (hmask, hbase); returns false if a bit names none. */
function forTargets(
  st: KernelState,
  hmask: bigint,
  hbase: bigint,
  fn: (n: number) => void,
): boolean {
  let sent = 0n;
  const count = st.shared.vcpuCount;
  for (let n = 0; n < count; n++) {
    let bit = 0n;
    if (hbase !== U64_MAX) {
      if (BigInt(n) < hbase) continue;
      bit = BigInt(n) - hbase;
      if (bit >= 64n) break;
      if (((hmask >> bit) & 1n) === 0n) continue;
    }
    fn(n);
    sent |= 1n << bit;
  }
  return hbase === U64_MAX || (hmask ^ sent) === 0n;
}

function ipi(st: KernelState, fid: bigint, a: readonly bigint[]): Result {
  if (fid !== 0n) return err(SBI_ERR.NOT_SUPPORTED);
  const all = forTargets(st, a[0] ?? 0n, a[1] ?? 0n, (n) => {
    st.shared.raiseIpi(n);
  });
  return all ? ok() : err(SBI_ERR.INVALID_PARAM);
}

/**
 * What a fence drops on one hart: fence.i re-checks translated code page by page (Linux 6.1
 * sends remote fence.i to every online hart, itself included, at each kernel text patch: a
 * whole flush each time re-translated the working set); sfence.vma in any form (all, a range,
 * an ASID) drops every cached address translation, a superset of what it names.
 */
function fenceHart(hart: KernelState["hart"], kinds: number): void {
  if ((kinds & FENCE.CODE) !== 0) {
    if (hart.syncCode !== undefined) hart.syncCode();
    else hart.flushCaches();
  }
  if ((kinds & FENCE.MAP) !== 0) {
    if (hart.flushTranslations !== undefined) hart.flushTranslations();
    else hart.flushCaches();
  }
}

/**
 * Honours the remote fences other vCPUs asked of this one (`kvm_riscv_fence_i_process`,
 * `kvm_riscv_hfence_process` on entry): the kernel's poll, and a vCPU waiting for its own
 * targets (shared.ts `awaitFence`).
 */
export function takeRemoteFences(st: Pick<KernelState, "hart" | "shared" | "hartId">): void {
  const pending = st.shared.takeFence(st.hartId);
  if (pending === undefined) return;
  fenceHart(st.hart, pending.kinds);
  st.shared.ackFence(st.hartId, pending.req);
}

/**
 * RFENCE (or a legacy remote fence) on the harts `targets` selects: the calling hart fences
 * at once; every other one is asked to, and the call returns only once each running target
 * has done it (KVM_REQUEST_WAIT), so no named hart runs stale code or translations after the
 * caller resumes — the caller typically publishes the new code with a plain store next.
 */
function fence(st: KernelState, kinds: number, targets: (fn: (n: number) => void) => void): void {
  const asked: [number, number][] = [];
  targets((n) => {
    if (n === st.hartId) fenceHart(st.hart, kinds);
    else asked.push([n, st.shared.requestFence(n, kinds)]);
  });
  for (const [n, req] of asked) {
    st.shared.awaitFence(n, req, () => {
      takeRemoteFences(st);
    });
  }
}

function rfence(st: KernelState, fid: bigint, a: readonly bigint[]): Result {
  if (fid <= 2n) {
    // remote fence.i, sfence.vma, sfence.vma.asid (kvm_sbi_ext_rfence_handler: always success).
    fence(st, fid === 0n ? FENCE.CODE : FENCE.MAP, (fn) => {
      forTargets(st, a[0] ?? 0n, a[1] ?? 0n, fn);
    });
    return ok();
  }
  // The HFENCE functions are no-ops without nested virtualization.
  return fid <= 6n ? ok() : err(SBI_ERR.NOT_SUPPORTED);
}

/** `kvm_riscv_vcpu_sbi_system_reset`: stop every vCPU, report the event. */
function systemEvent(st: KernelState, type: number, reason: bigint): Result {
  for (let n = 0; n < st.shared.vcpuCount; n++) st.shared.setMpState(n, MP.STOPPED);
  st.page.writeSystemEvent(type, [reason]);
  return EXIT;
}

function srst(st: KernelState, fid: bigint, a: readonly bigint[]): Result {
  if (fid !== 0n) return err(SBI_ERR.NOT_SUPPORTED);
  const type = u32(a[0] ?? 0n);
  const reason = u32(a[1] ?? 0n);
  if (type === 0n) return systemEvent(st, KVM_SYSTEM_EVENT.SHUTDOWN, reason);
  if (type === 1n || type === 2n) return systemEvent(st, KVM_SYSTEM_EVENT.RESET, reason);
  return err(SBI_ERR.NOT_SUPPORTED);
}

function hsm(st: KernelState, fid: bigint, a: readonly bigint[]): Result {
  const target = a[0] ?? 0n;
  const valid = target < BigInt(st.shared.vcpuCount);
  switch (fid) {
    case 0n: // hart_start(hartid, start_addr, opaque)
      if (!valid) return err(SBI_ERR.INVALID_PARAM);
      return st.shared.requestStart(Number(target), a[1] ?? 0n, a[2] ?? 0n)
        ? ok()
        : err(SBI_ERR.ALREADY_AVAILABLE);
    case 1n: // hart_stop
      st.shared.setMpState(st.hartId, MP.STOPPED);
      return ok();
    case 2n: // hart_get_status: 0 STARTED, 1 STOPPED
      if (!valid) return err(SBI_ERR.INVALID_PARAM);
      return ok(st.shared.mpState(Number(target)) === MP.STOPPED ? 1n : 0n);
    case 3n: // hart_suspend(type): only the default retentive suspend, which is a WFI
      if (u32(target) === 0n) {
        st.requestWfi();
        return ok();
      }
      return err(u32(target) === 0x80000000n ? SBI_ERR.NOT_SUPPORTED : SBI_ERR.INVALID_PARAM);
    default:
      return err(SBI_ERR.NOT_SUPPORTED);
  }
}

function dbcn(st: KernelState, fid: bigint, a: readonly bigint[], eid: bigint): Result {
  // console write, read, write_byte go to the VMM; anything else is not supported.
  return fid <= 2n ? forward(st, fid, a, eid) : err(SBI_ERR.NOT_SUPPORTED);
}

function susp(st: KernelState, fid: bigint, a: readonly bigint[], eid: bigint): Result {
  if (fid !== 0n) return err(SBI_ERR.NOT_SUPPORTED);
  if (u32(a[0] ?? 0n) !== 0n) return err(SBI_ERR.INVALID_PARAM); // only SUSPEND_TO_RAM
  if (st.hart.getMode() !== 1) return err(SBI_ERR.FAILED);
  const resume = a[1] ?? 0n;
  if (slotFor(st.memslots, resume, 1) === undefined) return err(SBI_ERR.INVALID_ADDRESS);
  for (let n = 0; n < st.shared.vcpuCount; n++) {
    if (n !== st.hartId && st.shared.mpState(n) !== MP.STOPPED) return err(SBI_ERR.DENIED);
  }
  st.requestReset(resume, a[2] ?? 0n);
  return forward(st, fid, a, eid);
}

/** The hart mask a legacy call points at (0 = all harts), or undefined if unreadable. */
function legacyMask(st: KernelState, pointer: bigint): bigint | undefined {
  if (pointer === 0n) return (1n << BigInt(st.shared.vcpuCount)) - 1n;
  const bare = st.hart.getCsr("satp") >> 60n === 0n;
  return bare ? readPhysU64(st.memslots, pointer) : undefined;
}

function legacy(st: KernelState, fid: bigint, a: readonly bigint[], eid: bigint): Result {
  switch (eid) {
    case SBI_LEGACY.SET_TIMER:
      st.timer.nextEvent(st.hart, a[0] ?? 0n);
      return ok();
    case SBI_LEGACY.CONSOLE_PUTCHAR:
    case SBI_LEGACY.CONSOLE_GETCHAR:
      return forward(st, fid, a, eid);
    case SBI_LEGACY.CLEAR_IPI:
      st.hart.setPending(IRQ.SSIP, false);
      return ok();
    case SBI_LEGACY.SHUTDOWN:
      return systemEvent(st, KVM_SYSTEM_EVENT.SHUTDOWN, 0n);
    default: {
      const mask = legacyMask(st, a[0] ?? 0n);
      if (mask === undefined) return err(SBI_ERR.NOT_SUPPORTED);
      if (eid === SBI_LEGACY.SEND_IPI) {
        forTargets(st, mask, 0n, (n) => {
          st.shared.raiseIpi(n);
        });
      } else {
        const kinds = eid === SBI_LEGACY.REMOTE_FENCE_I ? FENCE.CODE : FENCE.MAP;
        fence(st, kinds, (fn) => {
          forTargets(st, mask, 0n, fn);
        });
      }
      return ok();
    }
  }
}
