/**
 * Booting regvisor's bundled flat x86 guests (guests/x86/*.S): a VM with 2 MiB of RAM at GPA 0,
 * the image at 0x1000, the supported CPUID (the guests need long mode), and the vCPU in real
 * mode at CS = 0 / RIP = 0x1000 — the contract of guests/x86/longmode-entry.inc.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../../package-root.js";
import type { KvmSystem } from "./system.js";
import type { KvmVcpu } from "./vcpu.js";
import type { KvmVm, KvmVmOptions } from "./vm.js";

/** Guest-physical load address of the flat images. */
export const FLAT_LOAD_ADDRESS = 0x1000;
/** Guest RAM size the images' page tables map. */
export const FLAT_MEMORY_SIZE = 2 * 1024 * 1024;

/** A bundled guest image name. */
export type BundledGuest = "demo" | "exit-loop";

/**
 * Path of a bundled image, under the package root (src/package-root.ts).
 * @throws {Error} if the image is not where the package puts it.
 */
export function bundledGuestPath(name: BundledGuest): string {
  const path = join(packageRoot(), "guests", "x86", `${name}.bin`);
  if (existsSync(path)) return path;
  throw new Error(`guests/x86/${name}.bin is missing from the package (run guests/x86/build.sh)`);
}

/** Reads a bundled image. */
export function bundledGuest(name: BundledGuest): Uint8Array {
  return new Uint8Array(readFileSync(bundledGuestPath(name)));
}

/** A VM and its vCPU, ready to run a flat image. */
export interface FlatGuest extends Disposable {
  readonly vm: KvmVm;
  readonly vcpu: KvmVcpu;
}

/**
 * Creates a VM (with `options`), loads `image` and prepares vCPU 0 to start it.
 * @throws {RangeError} if the image does not fit in guest RAM.
 * @throws {KvmError} if a KVM call fails (the VM is closed again).
 */
export function bootFlatGuest(
  system: KvmSystem,
  image: Uint8Array,
  options: KvmVmOptions = {},
): FlatGuest {
  if (image.length > FLAT_MEMORY_SIZE - FLAT_LOAD_ADDRESS) {
    throw new RangeError(`guest image of ${image.length} bytes does not fit in guest RAM`);
  }
  const vm = system.createVm(options);
  try {
    vm.addMemory({ guestPhysAddr: 0, size: FLAT_MEMORY_SIZE });
    vm.writeGuest(FLAT_LOAD_ADDRESS, image);
    const vcpu = vm.createVcpu();
    vcpu.setCpuidFromSupported();
    const sregs = vcpu.getSregs();
    sregs.cs.base = 0n;
    sregs.cs.selector = 0;
    vcpu.setSregs(sregs);
    const regs = vcpu.getRegs();
    regs.rip = BigInt(FLAT_LOAD_ADDRESS);
    regs.rflags = 2n; // bit 1 of RFLAGS is reserved and always 1
    vcpu.setRegs(regs);
    return {
      vm,
      vcpu,
      [Symbol.dispose]: () => {
        vm.close();
      },
    };
  } catch (error) {
    vm.close();
    throw error;
  }
}
