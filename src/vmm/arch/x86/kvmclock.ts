/**
 * The VM-wide kvmclock as one machine device, `kvm.clock` (issue 15 point 3: guest time
 * continues across a snapshot or a migration, never backwards).
 *
 * KVM keeps one clock per VM, `kvmclock_offset` + the host's monotonic raw clock, from which it
 * writes every vCPU's pvclock page (MSR_KVM_SYSTEM_TIME_NEW, arch/x86/kvm/x86.c
 * `kvm_guest_time_update`). It is not a register of any vCPU: without this device a restored
 * guest would find its clock back near 0, where the new VM's started. It is read and set with
 * KVM_GET_CLOCK / KVM_SET_CLOCK (Documentation/virt/kvm/api.rst 4.59, 4.60; `Vm.getClock` /
 * `setClock`).
 *
 * State v1 (32 bytes, little-endian): u64 clock (ns), u32 flags (`KVM_CLOCK_*`; REALTIME when
 * `realtime` holds a value), u32 reserved (0), u64 realtime (host CLOCK_REALTIME ns at
 * `clock`), u64 host_tsc (as KVM_GET_CLOCK gave it; informative).
 *
 * Restore, as QEMU's "kvmclock" migration does: where the destination kernel takes
 * KVM_CLOCK_REALTIME, KVM_SET_CLOCK with the captured realtime, so the kernel adds the real time
 * elapsed since the capture (and never a negative amount, `kvm_vm_ioctl_set_clock`); otherwise
 * the captured clock as it was — it then stands still for the time the guest was stopped, but
 * never goes back. KVM_GET_CLOCK reports a realtime only while the VM uses the master clock
 * (`get_kvmclock`); without one the device reads the host's realtime itself, right after, so
 * the elapsed time it later adds is at most a few microseconds short.
 *
 * The guest's TSC is a register (IA32_TSC, in every vCPU's list): a host write of it sets the
 * vCPU's TSC offset so the guest reads the saved value on (arch/x86/kvm/x86.c
 * `kvm_set_msr_common` → `kvm_synchronize_tsc`), so it also stands still while stopped and
 * never goes back. KVM_SET_CLOCK makes every vCPU rewrite its pvclock page (`tsc_timestamp`,
 * `system_time`) from the new clock and its own TSC before it runs again (KVM_REQ_CLOCK_UPDATE),
 * so the two stay consistent in whichever order they are restored.
 */
import { KVM_CLOCK } from "../../../abi/kvm/constants.js";
import type { Vm, VmClock, VmClockSetting } from "../../../backends/vcpu.js";
import { DeviceStateError } from "../../devices/state.js";
import type { Device, DeviceState } from "../../devices/types.js";

/** The device (and DEVICE section) name of the kvmclock's state. */
export const KVMCLOCK_DEVICE = "kvm.clock";
/** Version of its saved state. */
export const KVMCLOCK_STATE_VERSION = 1;
/** Bytes of state v1. */
const STATE_BYTES = 32;
/** The machine fact that says the kvmclock travels with the machine's state. */
export const KVMCLOCK_FACT = { kvmclock: "saved" } as const;

/** The host's CLOCK_REALTIME in ns (ms precision plus the monotonic clock's fraction). */
function hostRealtimeNs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
}

/** Whether `vm` can carry its kvmclock (KVM_CAP_ADJUST_CLOCK answered non-zero). */
export function hasKvmClock(vm: Vm): boolean {
  return vm.getClock !== undefined && vm.setClock !== undefined && (vm.clockFlags?.() ?? 0) !== 0;
}

/** The kvmclock of `vm`, saved and restored as one device. */
export class KvmClockState implements Device {
  readonly name = KVMCLOCK_DEVICE;
  readonly #get: () => VmClock;
  readonly #set: (setting: VmClockSetting) => void;
  readonly #flags: () => number;

  /** @throws TypeError when `vm` has no `getClock`/`setClock`. */
  constructor(vm: Vm) {
    const get = vm.getClock?.bind(vm);
    const set = vm.setClock?.bind(vm);
    if (get === undefined || set === undefined) {
      throw new TypeError("the kvmclock state needs Vm.getClock() and Vm.setClock()");
    }
    this.#get = get;
    this.#set = set;
    this.#flags = () => vm.clockFlags?.() ?? 0;
  }

  save(): DeviceState {
    const got = this.#get();
    const realtime = (got.flags & KVM_CLOCK.REALTIME) !== 0 ? got.realtime : hostRealtimeNs();
    const bytes = new Uint8Array(STATE_BYTES);
    const view = new DataView(bytes.buffer);
    view.setBigUint64(0, got.clock, true);
    view.setUint32(
      8,
      (got.flags & (KVM_CLOCK.TSC_STABLE | KVM_CLOCK.HOST_TSC)) | KVM_CLOCK.REALTIME,
      true,
    );
    view.setBigUint64(16, realtime, true);
    view.setBigUint64(24, got.hostTsc, true);
    return { version: KVMCLOCK_STATE_VERSION, bytes };
  }

  /** @throws DeviceStateError for another version, length or reserved bits (nothing set). */
  restore(state: DeviceState): void {
    const bad = (detail: string): DeviceStateError => new DeviceStateError(this.name, detail);
    if (state.version !== KVMCLOCK_STATE_VERSION) {
      throw bad(`state version ${state.version} is not ${KVMCLOCK_STATE_VERSION}`);
    }
    if (state.bytes.length !== STATE_BYTES) {
      throw bad(`${state.bytes.length} bytes, not ${STATE_BYTES}`);
    }
    const view = new DataView(state.bytes.buffer, state.bytes.byteOffset, STATE_BYTES);
    const flags = view.getUint32(8, true);
    const known = KVM_CLOCK.TSC_STABLE | KVM_CLOCK.REALTIME | KVM_CLOCK.HOST_TSC;
    if ((flags & ~known) !== 0 || view.getUint32(12, true) !== 0) {
      throw bad(`flags 0x${flags.toString(16)} or the reserved word hold unknown bits`);
    }
    const clock = view.getBigUint64(0, true);
    const takesRealtime = (this.#flags() & KVM_CLOCK.REALTIME) !== 0;
    const realtime =
      (flags & KVM_CLOCK.REALTIME) !== 0 && takesRealtime ? view.getBigUint64(16, true) : undefined;
    this.#set(realtime === undefined ? { clock } : { clock, realtime });
  }
}
