/**
 * `KvmSystem`: the `/dev/kvm` fd. Opens the device (with a fix hint when it is missing or not
 * permitted), checks the API version, answers capability queries and the system-level x86
 * lists (MSR indices, supported CPUID), and creates VMs.
 */
import { ERRNO } from "../../abi/kvm/errno.js";
import { KvmError } from "../../abi/kvm/errors.js";
import { IOCTLS, KVM_API_VERSION, KVM_CAP, type KvmCapName } from "../../abi/kvm/ioctls.js";
import { KVM_CPUID2, KVM_CPUID_ENTRY2, KVM_MSR_LIST } from "../../abi/kvm/layouts.js";
import { decodeCpuid, type CpuidEntry } from "./cpuid.js";
import { KvmApiVersionError, KvmClosedError, kvmFail } from "./errors.js";
import { O_CLOEXEC, O_RDWR, closeFd, ioctlMem, ioctlValue, openPath } from "./ffi.js";
import { Scratch } from "./scratch.js";
import { KvmVm, type KvmVmOptions } from "./vm.js";

/** Where the device lives unless told otherwise. */
export const KVM_DEVICE_PATH = "/dev/kvm";

/** Options for `KvmSystem.open()`. */
export interface KvmOpenOptions {
  /** Device path; `/dev/kvm` by default. */
  readonly path?: string;
}

function openHint(errno: number, path: string): string | undefined {
  if (errno === ERRNO.ENOENT || errno === ERRNO.ENODEV || errno === ERRNO.ENXIO) {
    return `${path} does not exist: load the KVM module (modprobe kvm_intel, kvm_amd or kvm_pvm) or use a host or VM with virtualization enabled; 'regvisor run --backend soft' needs no KVM`;
  }
  if (errno === ERRNO.EACCES || errno === ERRNO.EPERM) {
    return `no permission to open ${path}: add your user to its group (e.g. 'sudo usermod -aG kvm $USER', then log in again) or ask an administrator`;
  }
  return undefined;
}

// KVM_GET_SUPPORTED_CPUID refuses with E2BIG until the capacity is large enough; 6.18 returns
// well under 100 entries, and the kernel caps it at KVM_MAX_CPUID_ENTRIES (256).
const CPUID_MAX_ENTRIES = 256;

/**
 * The KVM device `KvmSystem.open(options)` opens: `options.path`, else the
 * `REGVISOR_KVM_DEVICE` environment variable, else `/dev/kvm`.
 */
export function kvmDevicePath(options: KvmOpenOptions = {}): string {
  const fromEnv = process.env.REGVISOR_KVM_DEVICE;
  return options.path ?? (fromEnv === undefined || fromEnv === "" ? KVM_DEVICE_PATH : fromEnv);
}

/** An open `/dev/kvm`. */
export class KvmSystem implements Disposable {
  readonly path: string;
  /** What KVM_GET_API_VERSION returned (always 12 on an open system). */
  readonly apiVersion: number;
  #fd: number;
  #scratch: Scratch | undefined = new Scratch();
  #mmapSize: number | undefined;
  #msrIndices: readonly number[] | undefined;
  #vms = new Set<KvmVm>();

  private constructor(path: string, fd: number, apiVersion: number) {
    this.path = path;
    this.#fd = fd;
    this.apiVersion = apiVersion;
  }

  /**
   * Opens the KVM device and checks its API version. The path is `options.path`, else the
   * `REGVISOR_KVM_DEVICE` environment variable, else `/dev/kvm`.
   * @throws {KvmError} if the device cannot be opened (with a fix hint for ENOENT / EACCES).
   * @throws {KvmApiVersionError} if the API version is not 12.
   */
  static open(options: KvmOpenOptions = {}): KvmSystem {
    const path = kvmDevicePath(options);
    const fd = openPath(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      const hint = openHint(-fd, path);
      throw new KvmError({
        action: `Cannot open ${path}`,
        ioctl: "open",
        errno: -fd,
        ...(hint === undefined ? {} : { hint }),
      });
    }
    const version = ioctlValue(fd, IOCTLS.KVM_GET_API_VERSION.number, 0);
    if (version !== KVM_API_VERSION) {
      closeFd(fd);
      if (version < 0) throw kvmFail("KVM_GET_API_VERSION", version);
      throw new KvmApiVersionError(version, KVM_API_VERSION);
    }
    return new KvmSystem(path, fd, version);
  }

  /** True once `close()` ran. */
  get closed(): boolean {
    return this.#fd < 0;
  }

  /** @internal The fd, checked open. */
  fd(action: string): number {
    if (this.#fd < 0) throw new KvmClosedError(this.path, action);
    return this.#fd;
  }

  /**
   * KVM_CHECK_EXTENSION on /dev/kvm: 0 when absent, else the capability's value.
   * @throws {KvmError} if the ioctl fails.
   */
  checkExtension(cap: KvmCapName | number): number {
    const number = typeof cap === "number" ? cap : KVM_CAP[cap];
    const r = ioctlValue(this.fd("check an extension"), IOCTLS.KVM_CHECK_EXTENSION.number, number);
    if (r < 0) throw kvmFail("KVM_CHECK_EXTENSION", r);
    return r;
  }

  /** Size of each vCPU's mmap (kvm_run + PIO page + coalesced-MMIO ring on x86). */
  vcpuMmapSize(): number {
    if (this.#mmapSize === undefined) {
      const r = ioctlValue(
        this.fd("query the vCPU mmap size"),
        IOCTLS.KVM_GET_VCPU_MMAP_SIZE.number,
        0,
      );
      if (r < 0) throw kvmFail("KVM_GET_VCPU_MMAP_SIZE", r);
      this.#mmapSize = r;
    }
    return this.#mmapSize;
  }

  /**
   * KVM_GET_MSR_INDEX_LIST: every MSR index KVM saves/restores (probe with 0, then exact).
   * @throws {KvmError} if the ioctl fails.
   */
  getMsrIndexList(): readonly number[] {
    if (this.#msrIndices !== undefined) return this.#msrIndices;
    const fd = this.fd("list MSRs");
    const scratch = this.#scratchOrThrow();
    const indicesAt = KVM_MSR_LIST.fields.indices.offset;
    let count = 0;
    for (;;) {
      const mem = scratch.get(indicesAt + 4 * count);
      mem.view.setUint32(KVM_MSR_LIST.fields.nmsrs.offset, count, true);
      // FFI: system scratch with room for `count` u32 indices, the capacity passed in nmsrs.
      const r = ioctlMem(fd, IOCTLS.KVM_GET_MSR_INDEX_LIST.number, mem, 0);
      const reported = mem.view.getUint32(KVM_MSR_LIST.fields.nmsrs.offset, true);
      if (r === -ERRNO.E2BIG && reported > count) {
        count = reported;
        continue;
      }
      if (r < 0) throw kvmFail("KVM_GET_MSR_INDEX_LIST", r);
      const list: number[] = [];
      for (let i = 0; i < reported; i++) list.push(mem.view.getUint32(indicesAt + 4 * i, true));
      this.#msrIndices = Object.freeze(list);
      return this.#msrIndices;
    }
  }

  /**
   * KVM_GET_SUPPORTED_CPUID as raw `struct kvm_cpuid2` bytes (header + entries).
   * @throws {KvmError} if the ioctl fails.
   */
  getSupportedCpuidBytes(): Uint8Array {
    const fd = this.fd("read the supported CPUID");
    const entrySize = KVM_CPUID_ENTRY2.size;
    const head = KVM_CPUID2.fields.entries.offset;
    const mem = this.#scratchOrThrow().get(head + entrySize * CPUID_MAX_ENTRIES);
    mem.bytes.fill(0, 0, head + entrySize * CPUID_MAX_ENTRIES);
    mem.view.setUint32(KVM_CPUID2.fields.nent.offset, CPUID_MAX_ENTRIES, true);
    // FFI: system scratch sized for the nent capacity passed in; the kernel writes no more.
    const r = ioctlMem(fd, IOCTLS.KVM_GET_SUPPORTED_CPUID.number, mem, 0);
    if (r < 0) throw kvmFail("KVM_GET_SUPPORTED_CPUID", r);
    const nent = mem.view.getUint32(KVM_CPUID2.fields.nent.offset, true);
    return mem.bytes.slice(0, head + entrySize * nent);
  }

  /** KVM_GET_SUPPORTED_CPUID decoded into entries. */
  getSupportedCpuid(): CpuidEntry[] {
    return decodeCpuid(this.getSupportedCpuidBytes());
  }

  /**
   * KVM_CREATE_VM.
   * @throws {KvmError} if the kernel refuses.
   */
  createVm(options: KvmVmOptions = {}): KvmVm {
    const r = ioctlValue(this.fd("create a VM"), IOCTLS.KVM_CREATE_VM.number, 0);
    if (r < 0) throw kvmFail("KVM_CREATE_VM", r, { action: "Cannot create a VM" });
    const vm = new KvmVm(this, r, options, () => this.#vms.delete(vm));
    this.#vms.add(vm);
    return vm;
  }

  #scratchOrThrow(): Scratch {
    if (this.#scratch === undefined) throw new KvmClosedError(this.path, "use scratch memory");
    return this.#scratch;
  }

  /** Closes every VM created here, then the device fd; a second call is a no-op. */
  close(): void {
    if (this.#fd < 0) return;
    for (const vm of [...this.#vms]) vm.close();
    closeFd(this.#fd);
    this.#fd = -1;
    this.#scratch?.release();
    this.#scratch = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
