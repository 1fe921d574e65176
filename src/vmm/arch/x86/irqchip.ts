/**
 * The x86 in-kernel irqchip's state as one machine device, `kvm.irqchip` (issue 11 point 7):
 * the 8259 pair and the IOAPIC KVM_CREATE_IRQCHIP made, read and written with
 * KVM_GET_IRQCHIP / KVM_SET_IRQCHIP (`Vm.getIrqchip` / `setIrqchip`).
 *
 * State v1: chip 0 (PIC master), chip 1 (PIC slave), chip 2 (IOAPIC), each the 512-byte
 * `kvm_irqchip.chip` union as the kernel fills it (arch/x86/include/uapi/asm/kvm.h), back to
 * back: 1536 bytes.
 *
 * What the rest of the interrupt path keeps: each LAPIC is the LAPIC pseudo register
 * (KVM_GET/SET_LAPIC) and the vCPU's power state the MP_STATE one, both in every vCPU's register
 * list; a pending event is VCPU_EVENTS. The machine creates no PIT (no KVM_CREATE_PIT2: guests
 * time with the TSC or the LAPIC timer), so there is no KVM_GET_PIT2 state to carry.
 */
import { KVM_IRQCHIP_ID } from "../../../abi/kvm/constants.js";
import { IRQCHIP_STATE_BYTES, type Vm } from "../../../backends/vcpu.js";
import { DeviceStateError } from "../../devices/state.js";
import type { Device, DeviceState } from "../../devices/types.js";

/** The device (and DEVICE section) name of the in-kernel irqchip's state. */
export const IRQCHIP_DEVICE = "kvm.irqchip";
/** Version of its saved state. */
export const IRQCHIP_STATE_VERSION = 1;

const CHIPS = [KVM_IRQCHIP_ID.PIC_MASTER, KVM_IRQCHIP_ID.PIC_SLAVE, KVM_IRQCHIP_ID.IOAPIC];

/** The in-kernel PIC pair and IOAPIC of `vm`, saved and restored as one device. */
export class IrqchipState implements Device {
  readonly name = IRQCHIP_DEVICE;
  readonly #get: (chip: number) => Uint8Array;
  readonly #set: (chip: number, state: Uint8Array) => void;

  /** @throws TypeError when `vm` has no `getIrqchip`/`setIrqchip`. */
  constructor(vm: Vm) {
    const get = vm.getIrqchip?.bind(vm);
    const set = vm.setIrqchip?.bind(vm);
    if (get === undefined || set === undefined) {
      throw new TypeError("the irqchip state needs Vm.getIrqchip() and Vm.setIrqchip()");
    }
    this.#get = get;
    this.#set = set;
  }

  save(): DeviceState {
    const bytes = new Uint8Array(CHIPS.length * IRQCHIP_STATE_BYTES);
    CHIPS.forEach((chip, i) => {
      bytes.set(this.#get(chip), i * IRQCHIP_STATE_BYTES);
    });
    return { version: IRQCHIP_STATE_VERSION, bytes };
  }

  /** @throws DeviceStateError for another version or length (nothing written). */
  restore(state: DeviceState): void {
    if (state.version !== IRQCHIP_STATE_VERSION) {
      throw new DeviceStateError(
        this.name,
        `state version ${state.version} is not ${IRQCHIP_STATE_VERSION}`,
      );
    }
    const want = CHIPS.length * IRQCHIP_STATE_BYTES;
    if (state.bytes.length !== want) {
      throw new DeviceStateError(this.name, `${state.bytes.length} bytes, not ${want}`);
    }
    CHIPS.forEach((chip, i) => {
      const at = i * IRQCHIP_STATE_BYTES;
      this.#set(chip, state.bytes.slice(at, at + IRQCHIP_STATE_BYTES));
    });
  }
}
