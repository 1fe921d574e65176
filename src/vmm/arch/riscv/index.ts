/**
 * The RISC-V part of the machine (`archMachine`), started as a KVM VMM starts a guest (kvmtool
 * riscv/kvm-cpu.c and riscv/fdt.c; Documentation/arch/riscv/boot.rst): RAM at 0x8000_0000,
 * S-mode, hart 0 at the entry with a0 = 0 and a1 = the device tree; the other harts start
 * stopped and come up through SBI HSM `hart_start`, which the backend serves "in kernel" as KVM
 * does (arch/riscv/kvm/vcpu_sbi_hsm.c). The tree's `riscv,isa` comes from vCPU 0's enabled
 * ISA_EXT registers and `timebase-frequency` from its TIMER `frequency` register, as kvmtool
 * asks the vCPU rather than assuming.
 *
 * Exits served here: the SBI calls KVM forwards to userspace — legacy console and DBCN (enabled
 * through `sbi_ext.dbcn` before the first run, since KVM leaves it off) by ../../sbi-console.ts;
 * any other forwarded call is reported unclaimed and answered with KVM's preset NOT_SUPPORTED —
 * and SRST, which arrives as a SYSTEM_EVENT exit with the reason in `data[0]`
 * (arch/riscv/kvm/vcpu_sbi_system.c, vcpu_sbi_replace.c).
 */
import { KVM_SYSTEM_EVENT } from "../../../abi/kvm/constants.js";
import {
  RISCV_EXT_SUBTYPE,
  RISCV_ISA_EXT_NAMES,
  RISCV_REG_TYPE,
  RISCV_SBI_EXT_NAMES,
  riscvRegId,
  riscvRegParts,
} from "../../../abi/arch/riscv/index.js";
import { lookupReg } from "../../../abi/catalog.js";
import type { RegId } from "../../../abi/regid.js";
import { SBI_DBCN } from "../../../abi/sbi.js";
import { leValue } from "../../../abi/value.js";
import type { GuestMemory, Vcpu, VcpuExit, Vm } from "../../../backends/vcpu.js";
import type { BootPlan } from "../../boot-plan.js";
import { ramAccess, writeImage } from "../../guest-memory.js";
import { ImageError, hex } from "../../image.js";
import { faultEnding, srstEnding } from "../../runner-status.js";
import { SBI_CONSOLE_EID, SbiConsole, type SbiExit } from "../../sbi-console.js";
import type { MachineBackend } from "../../machine/backend.js";
import { addLayoutMemory } from "../../snapshot/memslot-flags.js";
import type {
  ArchDefinition,
  ArchMachine,
  ExitAction,
  MachineDevice,
  MachineIo,
  MachineLayout,
  MachineShape,
} from "../../machine/types.js";
import { riscvBootRegs, riscvIsaString } from "./boot.js";
import { riscvDevices, type RiscvDevices } from "./devices.js";
import {
  PLIC_BASE,
  UART0_BASE,
  UART0_IRQ,
  VIRTIO_MMIO_FIRST_IRQ,
  riscvMachineDeviceTree,
  virtioMmioBase,
} from "./devicetree.js";

/** Bytes of stdin pulled into the SBI console at a time (its queue holds 4096). */
const INPUT_CHUNK = 4096;

const { CORE, TIMER, SBI_EXT, ISA_EXT } = RISCV_REG_TYPE;
/** Bytes of an RV64 `unsigned long` (CORE, ISA_EXT, SBI_EXT) and of the u64 TIMER registers. */
const ULONG = 8;
const U64 = 8;

/**
 * The registers a start reads and writes, by catalog name, with their ids from the codec:
 * `struct kvm_riscv_core` (regs.pc, a0 = x10, a1 = x11, then mode), `struct kvm_riscv_timer`
 * (frequency first) and `enum KVM_RISCV_SBI_EXT_ID` (arch/riscv/include/uapi/asm/kvm.h). A boot
 * then never builds the catalog's name index (2-4 ms before the first instruction);
 * test/vmm/riscv-boot.test.ts pins each id to the catalog's.
 */
export const RISCV_START_REGS: Readonly<Record<string, RegId>> = {
  "core.pc": riscvRegId(CORE, 0, 0, ULONG),
  "core.a0": riscvRegId(CORE, 0, 10, ULONG),
  "core.a1": riscvRegId(CORE, 0, 11, ULONG),
  "core.mode": riscvRegId(CORE, 0, 32, ULONG),
  "timer.frequency": riscvRegId(TIMER, 0, 0, U64),
  "sbi_ext.dbcn": riscvRegId(
    SBI_EXT,
    RISCV_EXT_SUBTYPE.SINGLE,
    RISCV_SBI_EXT_NAMES.indexOf("dbcn"),
    ULONG,
  ),
};

function idOf(name: string): RegId {
  return RISCV_START_REGS[name] ?? lookupReg("riscv", name).id;
}

function readU64(vcpu: Vcpu, name: string): bigint {
  return leValue(vcpu.getOneReg(idOf(name)));
}

function writeReg(vcpu: Vcpu, name: string, value: bigint): void {
  vcpu.setOneReg(idOf(name), value);
}

/**
 * Names of the single-extension ISA_EXT registers that read 1 (kvmtool riscv/fdt.c), in
 * register-list order; ids past the names this codec knows are skipped.
 */
export function enabledIsaExtensions(vcpu: Vcpu): string[] {
  const names: string[] = [];
  for (const id of vcpu.regList()) {
    const { type, subtype, index, sizeBytes, high } = riscvRegParts(id);
    if (type !== ISA_EXT || subtype !== RISCV_EXT_SUBTYPE.SINGLE || high !== 0) continue;
    const ext = RISCV_ISA_EXT_NAMES[index];
    if (ext === undefined || sizeBytes !== ULONG) continue;
    if (leValue(vcpu.getOneReg(id)) === 1n) names.push(ext);
  }
  return names;
}

class RiscvMachine implements ArchMachine {
  readonly pcName = "pc";
  private readonly console: SbiConsole;
  /** Bytes handed to the console and not yet read by the guest. */
  private queued = 0;
  /** The last SBI call's output could not all be taken by the host. */
  private congested = false;
  readonly devices: readonly MachineDevice[];

  constructor(
    readonly vm: Vm,
    readonly vcpus: readonly Vcpu[],
    readonly facts: Readonly<Record<string, string>>,
    memory: ReturnType<typeof ramAccess>,
    private readonly io: MachineIo,
    private readonly wired: RiscvDevices,
  ) {
    this.console = new SbiConsole((bytes) => {
      if (!io.console.write(bytes)) this.congested = true;
    }, memory);
    this.devices = wired.all.map(describeDevice);
  }

  handle(exit: VcpuExit): ExitAction {
    if (exit.kind === "mmio") {
      const { bus } = this.wired;
      const claimed = exit.isWrite
        ? bus.write(exit.address, exit.data)
        : bus.read(exit.address, exit.data);
      return claimed ? "continue" : undefined;
    }
    if (exit.kind === "riscv_sbi") {
      this.congested = false;
      this.serveSbi(exit);
      return this.takeCongested() ? "congested" : "continue";
    }
    if (exit.kind !== "system_event") return undefined;
    const reason = exit.data[0] ?? 0n;
    if (exit.type === KVM_SYSTEM_EVENT.SHUTDOWN) return srstEnding(false, reason);
    if (exit.type === KVM_SYSTEM_EVENT.RESET) return srstEnding(true, reason);
    return faultEnding(`system event ${exit.typeName}`);
  }

  private serveSbi(exit: SbiExit): void {
    const getchar = exit.extensionId === SBI_CONSOLE_EID.GETCHAR;
    const read =
      getchar || (exit.extensionId === SBI_CONSOLE_EID.DBCN && exit.functionId === SBI_DBCN.READ);
    // A guest reading the console may be waiting for an answer to what it just printed.
    if (read) this.io.console.flush?.();
    if (read && this.queued === 0) {
      const bytes = this.io.input.read(INPUT_CHUNK);
      if (bytes !== null && bytes.length > 0) {
        this.console.pushInput(bytes);
        this.queued += bytes.length;
      }
    }
    if (!this.console.handle(exit)) {
      this.io.unclaimed("sbi extension", exit.extensionId, "answered NOT_SUPPORTED");
      return;
    }
    if (getchar && (exit.ret[0] ?? -1n) >= 0n) this.queued--;
    else if (read && !getchar && exit.ret[0] === 0n) this.queued -= Number(exit.ret[1] ?? 0n);
  }

  /** Whether output since the last call found the host side full (and clears it). */
  private takeCongested(): boolean {
    const congested = this.congested;
    this.congested = false;
    return congested;
  }

  poll(): void {
    this.wired.pollInput();
  }

  pc(vcpu: Vcpu): bigint {
    return readU64(vcpu, "core.pc");
  }

  [Symbol.dispose](): void {
    this.vm.close();
  }
}

/** Builds the device tree from vCPU 0's registers and writes image, tree and initrd. */
function loadGuest(
  plan: Extract<BootPlan, { arch: "riscv" }>,
  vcpu: Vcpu,
  memory: Uint8Array,
): Record<string, string> {
  const { riscv } = plan;
  // RV64: the soft hart is RV64 only, as are the catalog's U64 core registers.
  const isa = riscvIsaString(64, enabledIsaExtensions(vcpu));
  const timebase = readU64(vcpu, "timer.frequency");
  const initrd =
    riscv.initrdAddr === undefined || riscv.initrd === undefined
      ? undefined
      : { start: riscv.initrdAddr, end: riscv.initrdAddr + BigInt(riscv.initrd.length) };
  const dtb = riscvMachineDeviceTree(plan.ram, riscv, {
    isa,
    timebaseFrequency: Number(timebase),
    initrd,
  });
  if (dtb.length > riscv.dtbReserve) {
    throw new ImageError(
      "IMAGE_TOO_BIG",
      `Cannot place the device tree: it grew to ${dtb.length} bytes, ${riscv.dtbReserve} were reserved`,
    );
  }
  const blobs = [{ label: "the device tree", addr: riscv.dtbAddr, bytes: dtb }];
  if (initrd !== undefined && riscv.initrd !== undefined) {
    blobs.push({ label: "the initrd", addr: initrd.start, bytes: riscv.initrd });
  }
  writeImage(plan.ram, memory, plan.image, { blobs });
  for (const reg of riscvBootRegs(plan.image.entry, riscv.dtbAddr)) {
    writeReg(vcpu, reg.name, reg.value);
  }
  return { dtbAddress: hex(riscv.dtbAddr), isa, timebaseHz: String(timebase) };
}

/** Where the guest finds each device (the addresses of ./devicetree.ts). */
function describeDevice(device: RiscvDevices["all"][number]): MachineDevice {
  const blk = /^virtio-blk(\d+)$/.exec(device.name);
  if (blk !== null) {
    const n = Number(blk[1]);
    return {
      device,
      kind: "virtio-blk",
      address: virtioMmioBase(n),
      irq: VIRTIO_MMIO_FIRST_IRQ + n,
    };
  }
  if (device.name === "plic") return { device, kind: "riscv,plic0", address: PLIC_BASE };
  if (device.name === "uart0") {
    return { device, kind: "ns16550a", address: UART0_BASE, irq: UART0_IRQ };
  }
  return { device, kind: device.name };
}

/** vCPUs with the backend's set-up and DBCN enabled (KVM leaves it off). */
function createVcpus(vm: Vm, cpus: number, backend: MachineBackend): Vcpu[] {
  const vcpus: Vcpu[] = [];
  for (let i = 0; i < cpus; i++) {
    const vcpu = vm.createVcpu();
    backend.prepareVcpu?.(vcpu);
    writeReg(vcpu, "sbi_ext.dbcn", 1n);
    vcpus.push(vcpu);
  }
  if (vcpus.length === 0) throw new RangeError("a machine needs at least one vCPU");
  return vcpus;
}

/** Wires the devices to the VM's RAM (`ram`: the region DMA and the SBI console reach). */
function assemble(
  vm: Vm,
  vcpus: readonly Vcpu[],
  ram: GuestMemory,
  shape: MachineShape,
  io: MachineIo,
  facts: Readonly<Record<string, string>>,
): RiscvMachine {
  const access = ramAccess({ base: ram.guestPhysAddr, size: BigInt(ram.size) }, ram.bytes);
  const dma = {
    slice: (gpa: bigint, length: number) => access.read(gpa, length),
    wrote: (gpa: bigint, length: number) => {
      vm.markDirty?.(gpa, length);
    },
  };
  const devices = riscvDevices(vcpus, io, {
    dma,
    disks: shape.disks ?? [],
    virtioConsole: shape.virtioConsole === true,
  });
  return new RiscvMachine(vm, vcpus, facts, access, io, devices);
}

/** RISC-V: boot, device tree and exit handling. */
export const archMachine: ArchDefinition = {
  arch: "riscv",
  check() {
    // --x86-mode is refused by planBoot(); every other option applies.
  },
  start(plan: BootPlan, shape: MachineShape, backend: MachineBackend, io: MachineIo) {
    if (plan.arch !== "riscv") throw new TypeError("the RISC-V machine needs a RISC-V plan");
    backend.check?.();
    const vm = backend.createVm();
    try {
      const ram = vm.addMemory({
        guestPhysAddr: plan.ram.base,
        size: Number(plan.ram.size),
        logDirty: shape.logDirty === true,
      });
      const vcpus = createVcpus(vm, shape.cpus, backend);
      const [boot] = vcpus;
      if (boot === undefined) throw new RangeError("a machine needs at least one vCPU");
      const facts = loadGuest(plan, boot, ram.bytes);
      return assemble(vm, vcpus, ram, shape, io, facts);
    } catch (error) {
      vm.close();
      throw error;
    }
  },
  build(layout: MachineLayout, backend: MachineBackend, io: MachineIo) {
    backend.check?.();
    const vm = backend.createVm();
    try {
      const regions = addLayoutMemory(vm, layout.ram);
      const [ram] = regions;
      if (ram === undefined) throw new RangeError("a machine needs guest RAM");
      const vcpus = createVcpus(vm, layout.cpus, backend);
      return assemble(vm, vcpus, ram, layout, io, layout.facts ?? {});
    } catch (error) {
      vm.close();
      throw error;
    }
  },
};
