/**
 * RISC-V guests on the soft backend for `regvisor run FILE`, started as a KVM VMM starts one
 * (kvmtool riscv/kvm-cpu.c and riscv/fdt.c; Documentation/arch/riscv/boot.rst): RAM at
 * 0x8000_0000, S-mode, pc = entry, a0 = hart id 0, a1 = the device tree, whose `riscv,isa` is
 * built from the vCPU's enabled ISA_EXT registers and whose `timebase-frequency` is the vCPU's
 * TIMER `frequency` register — asked of the vCPU, as kvmtool does, not assumed.
 *
 * The SBI calls KVM forwards to userspace are served here: the legacy console and DBCN (enabled
 * through `sbi_ext.dbcn` before the first run, since KVM leaves it off) by ./sbi-console.ts;
 * any other forwarded call is reported as unclaimed and answered with the NOT_SUPPORTED that
 * KVM presets. SRST arrives as a SYSTEM_EVENT exit with the reason in `data[0]`
 * (arch/riscv/kvm/vcpu_sbi_system.c / vcpu_sbi_replace.c `kvm_riscv_vcpu_sbi_system_reset`).
 */
import { KVM_SYSTEM_EVENT } from "../abi/kvm/constants.js";
import { decodeReg, lookupReg } from "../abi/catalog.js";
import {
  SOFT_MAX_SLOT_BYTES,
  allocGuestMemory,
  createSoftVm,
  type SoftVcpu,
  type SoftVm,
} from "../backends/soft/index.js";
import type { VcpuExit } from "../backends/vcpu.js";
import { RegvisorError } from "../errors.js";
import type { BootPlan } from "./boot-plan.js";
import { imageRegions, ramAccess, writeImage } from "./guest-memory.js";
import { hex } from "./image.js";
import { placeDeviceTree, riscvBootRegs, riscvDeviceTree, riscvIsaString } from "./riscv-boot.js";
import { SBI_CONSOLE_EID, SbiConsole, type SbiExit } from "./sbi-console.js";
import { faultEnding, srstEnding } from "./runner-status.js";
import type { ArchRunner, GuestMachine, MachineOptions, RunEnding } from "./runner-types.js";
import { OptionValueError, formatSize } from "./size.js";

/** Bytes of stdin pulled into the SBI console at a time (its queue holds 4096). */
const INPUT_CHUNK = 4096;
/** DBCN function ids (SBI spec ch. 12). */
const DBCN_READ = 1n;

function readU64(vcpu: SoftVcpu, name: string): bigint {
  const bytes = vcpu.getOneReg(lookupReg("riscv", name).id);
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] ?? 0);
  return value;
}

function writeReg(vcpu: SoftVcpu, name: string, value: bigint): void {
  vcpu.setOneReg(lookupReg("riscv", name).id, value);
}

/** Names of the single-extension ISA_EXT registers that read 1 (kvmtool riscv/fdt.c). */
export function enabledIsaExtensions(vcpu: SoftVcpu): string[] {
  const names: string[] = [];
  for (const id of vcpu.regList()) {
    const info = decodeReg(id);
    if (!info.known || info.class !== "isa_ext") continue;
    const ext = info.name.slice("isa_ext.".length);
    // Skip the MULTI bitmap words and numbered extensions this catalog does not name.
    if (!/^[a-z][a-z0-9]*$/.test(ext)) continue;
    if (readU64(vcpu, info.name) === 1n) names.push(ext);
  }
  return names;
}

/** Guest RAM could not be allocated on the host. */
export class GuestRamError extends RegvisorError {
  constructor(size: bigint, cause: unknown) {
    super(
      "GUEST_RAM",
      `Cannot allocate ${formatSize(size)} of guest RAM on this host; use a smaller --mem`,
      { cause },
    );
  }
}

function allocateRam(size: bigint): Uint8Array {
  try {
    return allocGuestMemory(Number(size));
  } catch (error) {
    // V8 reports a failed SharedArrayBuffer allocation as a RangeError.
    if (error instanceof RangeError) throw new GuestRamError(size, error);
    throw error;
  }
}

class RiscvMachine implements GuestMachine {
  readonly pcName = "pc";
  readonly facts: Readonly<Record<string, string>>;
  private readonly console: SbiConsole;
  /** Bytes handed to the console and not yet read by the guest. */
  private queued = 0;

  constructor(
    private readonly vm: SoftVm,
    readonly vcpu: SoftVcpu,
    facts: Record<string, string>,
    memory: ReturnType<typeof ramAccess>,
    private readonly options: MachineOptions,
  ) {
    this.facts = facts;
    this.console = new SbiConsole(options.output, memory);
  }

  handle(exit: VcpuExit): RunEnding | "continue" | undefined {
    if (exit.kind === "riscv_sbi") {
      this.serveSbi(exit);
      return "continue";
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
      getchar || (exit.extensionId === SBI_CONSOLE_EID.DBCN && exit.functionId === DBCN_READ);
    if (read && this.queued === 0) {
      const bytes = this.options.input.read(INPUT_CHUNK);
      if (bytes !== null && bytes.length > 0) {
        this.console.pushInput(bytes);
        this.queued += bytes.length;
      }
    }
    if (!this.console.handle(exit)) {
      this.options.unclaimed("sbi extension", exit.extensionId, "answered NOT_SUPPORTED");
      return;
    }
    if (getchar && (exit.ret[0] ?? -1n) >= 0n) this.queued--;
    else if (read && !getchar && exit.ret[0] === 0n) this.queued -= Number(exit.ret[1] ?? 0n);
  }

  pc(): bigint {
    return readU64(this.vcpu, "core.pc");
  }

  instructions(): bigint {
    return this.vcpu.instructionsRetired();
  }

  faultDetail(exit: VcpuExit): string | undefined {
    if (exit.kind !== "internal_error") return undefined;
    const text = this.vcpu.faultReason();
    return text === "" ? undefined : text;
  }

  armDeadline(): Disposable {
    // Every soft run() returns within its time slice (100 ms), so the loop sees the deadline.
    return { [Symbol.dispose]: () => undefined };
  }

  [Symbol.dispose](): void {
    this.vm.close();
  }
}

/** RISC-V on the soft backend. */
export const riscvRunner: ArchRunner = {
  arch: "riscv",
  backend: "soft",
  check(options) {
    // --x86-mode is refused by planBoot(); every other option applies, --mem up to what one
    // soft memslot holds.
    const size = options.memSize ?? 0n;
    if (size > BigInt(SOFT_MAX_SLOT_BYTES)) {
      throw new OptionValueError(
        "--mem",
        `${formatSize(size)} is more than the soft backend holds: it keeps guest RAM in one typed array, at most ${formatSize(BigInt(SOFT_MAX_SLOT_BYTES))} in Node 20; use --mem 4G or less`,
      );
    }
  },
  start(plan: BootPlan, options: MachineOptions): GuestMachine {
    if (plan.arch !== "riscv") throw new TypeError("riscvRunner.start() needs a RISC-V plan");
    const vm = createSoftVm({ mode: options.mode ?? "inline" });
    try {
      const memory = allocateRam(plan.ram.size);
      vm.setUserMemoryRegion({ slot: 0, guestPhysAddr: plan.ram.base, memory });
      const vcpu = vm.createVcpu();
      writeReg(vcpu, "sbi_ext.dbcn", 1n);
      // RV64: the soft hart is RV64 only, as are the catalog's U64 core registers.
      const isa = riscvIsaString(64, enabledIsaExtensions(vcpu));
      const timebase = readU64(vcpu, "timer.frequency");
      const dtb = riscvDeviceTree({
        memBase: plan.ram.base,
        memSize: plan.ram.size,
        isa,
        timebaseFrequency: Number(timebase),
        ...(options.cmdline === undefined ? {} : { bootargs: options.cmdline }),
      });
      const dtbAddr = placeDeviceTree(plan.ram, dtb.length, imageRegions(plan.image));
      const blobs = [{ label: "the device tree", addr: dtbAddr, bytes: dtb }];
      writeImage(plan.ram, memory, plan.image, { blobs });
      for (const reg of riscvBootRegs(plan.image.entry, dtbAddr)) {
        writeReg(vcpu, reg.name, reg.value);
      }
      const facts = { dtbAddress: hex(dtbAddr), isa, timebaseHz: String(timebase) };
      return new RiscvMachine(vm, vcpu, facts, ramAccess(plan.ram, memory), options);
    } catch (error) {
      vm.close();
      throw error;
    }
  },
};
