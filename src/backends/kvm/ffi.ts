/**
 * The only file that talks to native code: libc's `open`, `close`, `ioctl`, `mmap`, `munmap`,
 * `sched_{get,set}affinity`, `gettid` and `tgkill` through koffi, and the memory the kernel reads and writes.
 *
 * Conventions:
 * - Syscall wrappers return what the kernel returns; on failure `-errno` (read from libc's
 *   thread-local `errno` right after the call, before any other code can run), never a throw.
 *   Callers turn a negative result into a `KvmError` with the ioctl name and register id.
 * - Buffers handed to the kernel live in a `NativeMemory`: an mmap'd range whose address never
 *   moves; its `bytes` view is zero-copy. The one exception is `viewAddress()`: on the addon
 *   path, a struct the kernel copies in or out within one synchronous ioctl (the x86 view's
 *   struct pseudo-registers) may be read or written in place in the caller's JS buffer, which
 *   the addon first pins off V8's heap.
 * - `NativeMemory.release()` unmaps at once when no JS view can reach the range any more: on
 *   the addon path it detaches every ArrayBuffer it made over the range (their typed arrays
 *   then have length 0) and calls munmap(2), so a closed VM leaves no mapping behind. Where
 *   that is impossible (the koffi path: Node marks external buffers untransferable, so plain
 *   JavaScript cannot detach them) it atomically replaces the range with fresh anonymous zero
 *   pages (dropping the old pages and, for a vCPU mapping, the kernel's reference to the vCPU
 *   file) and the range is unmapped when its ArrayBuffers are garbage-collected. Either way a
 *   stale view never crashes the process.
 * - One ArrayBuffer over native memory is at most 4 GiB (`MAX_GUEST_VIEW_BYTES`): Node 20 refuses
 *   larger external buffers (Buffer::New's kMaxLength) and larger typed arrays. A larger range
 *   (guest RAM above 4 GiB) is covered by overlapping 4 GiB windows; `window()` returns a view
 *   of any part of it up to 2 GiB long.
 * - `setIoctlHook()` observes every ioctl (fd, request); tests use it to prove which ioctls
 *   a call issues (e.g. that pseudo-register ids never reach the kernel).
 * - ioctl itself goes through regvisor's own small addon (native/kvm_ioctl.cc, built by
 *   `npm install` when a C++ compiler and Node's headers are there) because it is ~75 ns
 *   cheaper per call than koffi, which matters for KVM_GET_ONE_REG and KVM_RUN loops; without
 *   the addon, or with `REGVISOR_NATIVE=0`, it goes through koffi. `ioctlPath()` says which.
 */
import koffi from "koffi";
import { IOCTLS } from "../../abi/kvm/ioctls.js";
import { MAX_GUEST_VIEW_BYTES, MAX_GUEST_WINDOW_BYTES } from "../vcpu.js";
import { ADDON_FILE, findAddon, requireAddon } from "../../native-addon.js";

/** open(2) flags (asm-generic/fcntl.h, x86-64 values). */
export const O_RDWR = 0o2;
/** Close the fd on exec (asm-generic/fcntl.h). */
export const O_CLOEXEC = 0o2000000;

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;
const MAP_NORESERVE = 0x4000;
// mmap returns MAP_FAILED, (void *)-1, on error (sys/mman.h).
const MAP_FAILED = 0xffffffffffffffffn;

/** Observer of every ioctl issued through this module (tests only; keep it cheap). */
export type IoctlHook = (fd: number, request: number) => void;

interface Libc {
  readonly open: (path: string, flags: number) => number;
  readonly close: (fd: number) => number;
  // FFI: `arg` is an integer or a user address as a number (x86-64 user space is 47 bits, so
  // a JS number holds it exactly); ioctl is variadic in C, and glibc's wrapper only forwards
  // the third integer register, so a fixed three-argument prototype is ABI-correct.
  readonly ioctl: (fd: number, request: number, arg: number) => number;
  readonly mmap: (
    addr: bigint | null,
    length: number,
    prot: number,
    flags: number,
    fd: number,
    offset: number,
  ) => bigint | null;
  readonly munmap: (addr: bigint, length: number) => number;
  readonly schedSetaffinity: (pid: number, size: number, mask: number) => number;
  readonly schedGetaffinity: (pid: number, size: number, mask: number) => number;
  readonly gettid: () => number;
  readonly tgkill: (tgid: number, tid: number, sig: number) => number;
  readonly errno: Int32Array;
}

let libcCache: Libc | undefined;
let hook: IoctlHook | undefined;

// koffi declares its functions as returning `any`; each wrapper below states the real C type.
type Native = (...args: unknown[]) => unknown;

function loadLibc(): Libc {
  const lib = koffi.load("libc.so.6");
  const fn = (decl: string): Native => lib.func(decl) as Native;
  const open = fn("int open(const char *path, int flags)");
  const close = fn("int close(int fd)");
  const ioctl = fn("int ioctl(int fd, unsigned long request, unsigned long arg)");
  const mmap = fn("void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)");
  const munmap = fn("int munmap(void *addr, size_t len)");
  // FFI: the cpu_set_t pointer is passed as an address (see cpuMask()).
  const affinity = fn("int sched_setaffinity(int pid, size_t size, unsigned long mask)");
  const getAffinity = fn("int sched_getaffinity(int pid, size_t size, unsigned long mask)");
  const gettid = fn("int gettid(void)");
  const tgkill = fn("int tgkill(int tgid, int tid, int sig)");
  const errnoLocation = fn("int *__errno_location(void)");
  // FFI: the calling thread's errno lives at a fixed TLS address for the thread's lifetime;
  // this module instance is used only from the thread that loaded it (a Worker loads its own),
  // so a 4-byte view over it stays valid and reading it costs no call.
  const errno = new Int32Array(koffi.view(errnoLocation(), 4));
  return {
    open: open as Libc["open"],
    close: close as Libc["close"],
    ioctl: ioctl as Libc["ioctl"],
    mmap: mmap as Libc["mmap"],
    munmap: munmap as Libc["munmap"],
    schedSetaffinity: affinity as Libc["schedSetaffinity"],
    schedGetaffinity: getAffinity as Libc["schedGetaffinity"],
    gettid: gettid as Libc["gettid"],
    tgkill: tgkill as Libc["tgkill"],
    errno,
  };
}

function libc(): Libc {
  libcCache ??= loadLibc();
  return libcCache;
}

/** ioctl(2) returning the result or `-errno` (both native paths agree on this). */
type RawIoctl = (fd: number, request: number, arg: number) => number;

/** Which native path ioctls take, and why when it is not the addon. */
export interface IoctlPath {
  /** `"addon"`: build/Release/regvisor_kvm.node; `"koffi"`: libc's ioctl through koffi. */
  readonly kind: "addon" | "koffi";
  /** Why the addon is not used (absent when it is). */
  readonly reason?: string;
}

/** The address of a typed array's first byte (the addon's `address`). */
type RawAddress = (view: Uint8Array) => number;
/** Detaches an ArrayBuffer; false when V8 will not (the addon's `detach`). */
type RawDetach = (buffer: ArrayBuffer) => boolean;

interface NativePath {
  readonly path: IoctlPath;
  readonly ioctl: RawIoctl;
  /** Absent on the koffi path: JS buffers are then never handed to the kernel by address. */
  readonly address?: RawAddress;
  /** Absent on the koffi path: released ranges are then unmapped at garbage collection. */
  readonly detach?: RawDetach;
}

let pathCache: NativePath | undefined;

function isRawIoctl(value: unknown): value is RawIoctl {
  return typeof value === "function";
}

function isRawAddress(value: unknown): value is RawAddress {
  return typeof value === "function";
}

function isRawDetach(value: unknown): value is RawDetach {
  return typeof value === "function";
}

function chooseIoctlPath(): NativePath {
  const viaKoffi = (reason: string): NativePath => {
    const c = libc();
    const ioctl: RawIoctl = (fd, request, arg) => {
      const r = c.ioctl(fd, request, arg);
      return r >= 0 ? r : -(c.errno[0] ?? 0);
    };
    return { path: { kind: "koffi", reason }, ioctl };
  };
  if (process.env.REGVISOR_NATIVE === "0") return viaKoffi("REGVISOR_NATIVE=0");
  const file = findAddon();
  if (file === undefined) return viaKoffi(`${ADDON_FILE} was not built at install`);
  try {
    const addon = requireAddon(file) as {
      ioctl?: unknown;
      address?: unknown;
      detach?: unknown;
    };
    if (!isRawIoctl(addon.ioctl)) return viaKoffi(`${file} has no ioctl function`);
    // An addon built before `address` or `detach` existed still serves ioctl; buffers are then
    // copied, and released ranges unmapped at garbage collection.
    const address = isRawAddress(addon.address) ? addon.address : undefined;
    const detach = isRawDetach(addon.detach) ? addon.detach : undefined;
    return {
      path: { kind: "addon" },
      ioctl: addon.ioctl,
      ...(address ? { address } : {}),
      ...(detach ? { detach } : {}),
    };
  } catch (e) {
    // E.g. built for another Node version (NODE_MODULE_VERSION mismatch).
    return viaKoffi(`${file} did not load: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Which native path ioctls take (the addon or koffi), chosen once per thread. */
export function ioctlPath(): IoctlPath {
  pathCache ??= chooseIoctlPath();
  return pathCache.path;
}

// The hot paths call ioctl through this binding: a stub that picks the native path on first
// use and then replaces itself with it, so later calls skip every indirection.
let nativeIoctl: RawIoctl = (fd, request, arg) => {
  pathCache ??= chooseIoctlPath();
  nativeIoctl = pathCache.ioctl;
  return nativeIoctl(fd, request, arg);
};

// Like nativeIoctl: picks the path on first use, then replaces itself.
let nativeAddress: (view: Uint8Array) => number | undefined = (view) => {
  pathCache ??= chooseIoctlPath();
  const address = pathCache.address;
  nativeAddress = address ?? (() => undefined);
  return nativeAddress(view);
};

/**
 * The user address of `view`'s first byte when ioctls go through the addon, so that a kernel
 * struct can be read or written in place in a JS buffer instead of being copied through native
 * scratch; `undefined` on the koffi path, where callers copy. An on-heap typed array is moved
 * off the heap for good by the first call; V8 never moves an off-heap buffer, so the address
 * holds while the buffer is alive and attached — for the synchronous ioctls that follow in the
 * same function, never longer (and an ioctl hook must not detach the buffer meanwhile).
 * @throws {TypeError} if the view's buffer is detached.
 */
export function viewAddress(view: Uint8Array): number | undefined {
  return nativeAddress(view);
}

/**
 * Whether `NativeMemory.release()` unmaps at once (the addon can detach JS views) rather than
 * at garbage collection.
 */
export function releasesAtOnce(): boolean {
  pathCache ??= chooseIoctlPath();
  return pathCache.detach !== undefined;
}

/** Installs (or with `undefined`, removes) the ioctl observer. */
export function setIoctlHook(next: IoctlHook | undefined): void {
  hook = next;
}

/** open(2): an fd, or `-errno`. */
export function openPath(path: string, flags: number): number {
  const c = libc();
  const fd = c.open(path, flags);
  return fd >= 0 ? fd : -(c.errno[0] ?? 0);
}

/** close(2): 0, or `-errno`. */
export function closeFd(fd: number): number {
  const c = libc();
  const r = c.close(fd);
  return r >= 0 ? r : -(c.errno[0] ?? 0);
}

const EINTR = 4;
/** Attempts before an EINTR is given up on and returned (a signal storm, not a stray signal). */
const EINTR_TRIES = 64;
const KVM_RUN_REQUEST = IOCTLS.KVM_RUN.number;

/**
 * Runs an ioctl attempt again while it fails with EINTR — a signal interrupted it before it did
 * anything (e.g. KVM_CREATE_VM under a profiler's timer signals) — except KVM_RUN, whose EINTR
 * is meaningful (immediate_exit, a signal the VMM wants to see). Failure-path only: a call that
 * succeeds first time costs nothing extra.
 */
export function retryOnEintr(request: number, result: number, attempt: () => number): number {
  let r = result;
  for (let i = 1; r === -EINTR && request !== KVM_RUN_REQUEST && i < EINTR_TRIES; i++) {
    r = attempt();
  }
  return r;
}

// The EINTR retries live in their own functions: a closure written inline in ioctlValue or
// ioctlMem makes V8 allocate its context on every call, failing or not (~64 bytes, 54 times
// per snapshot save + restore).
function retryValue(fd: number, request: number, arg: number, r: number): number {
  return retryOnEintr(request, r, () => nativeIoctl(fd, request, arg));
}

function retryMem(
  fd: number,
  request: number,
  mem: NativeMemory,
  offset: number,
  r: number,
): number {
  return retryOnEintr(request, r, () => nativeIoctl(fd, request, mem.address + offset));
}

/** ioctl(2) with an integer argument (or none): the result, or `-errno`. */
export function ioctlValue(fd: number, request: number, arg: number): number {
  if (hook !== undefined) hook(fd, request);
  const r = nativeIoctl(fd, request, arg);
  return r >= 0 ? r : retryValue(fd, request, arg, r);
}

/** ioctl(2) whose argument is `mem` at `offset`: the result, or `-errno`. */
export function ioctlMem(fd: number, request: number, mem: NativeMemory, offset: number): number {
  if (hook !== undefined) hook(fd, request);
  // FFI: `mem` is owned by the caller and outlives this synchronous call; callers check that
  // the struct they pass fits in `mem` from `offset`.
  const r = nativeIoctl(fd, request, mem.address + offset);
  return r >= 0 ? r : retryMem(fd, request, mem, offset, r);
}

/** The calling thread's kernel thread id (gettid(2)). */
export function threadId(): number {
  return libc().gettid();
}

/**
 * Sends signal `sig` to thread `tid` of this process (tgkill(2)): how a vCPU thread blocked in
 * KVM_RUN is made to return EINTR. Returns 0 or `-errno` (ESRCH: the thread is gone).
 */
export function signalThread(tid: number, sig: number): number {
  const c = libc();
  const r = c.tgkill(process.pid, tid, sig);
  return r >= 0 ? r : -(c.errno[0] ?? 0);
}

// A 1024-bit cpu_set_t (sys/sched.h CPU_SETSIZE), kept in one native page.
const CPU_SET_BYTES = 128;
let cpuSet: NativeMemory | undefined;

function cpuSetMemory(): NativeMemory {
  if (cpuSet === undefined) {
    const mem = mapAnonymous(4096);
    if (typeof mem === "number") throw new Error(`mmap failed with errno ${-mem}`);
    cpuSet = mem;
  }
  return cpuSet;
}

/** The CPUs the calling thread may run on (sched_getaffinity), or `-errno`. */
export function threadCpus(): number[] | number {
  const mem = cpuSetMemory();
  mem.bytes.fill(0, 0, CPU_SET_BYTES);
  // FFI: the cpu_set_t lives in `mem` (module lifetime); size is its byte length.
  const r = libc().schedGetaffinity(0, CPU_SET_BYTES, mem.address);
  if (r < 0) return -(libc().errno[0] ?? 0);
  const cpus: number[] = [];
  for (let cpu = 0; cpu < CPU_SET_BYTES * 8; cpu++) {
    if (((mem.bytes[cpu >> 3] ?? 0) >> (cpu & 7)) & 1) cpus.push(cpu);
  }
  return cpus;
}

/**
 * Restricts the calling thread to `cpus` (sched_setaffinity with pid 0 = this thread).
 * Benchmarks pin the TS loop and the C reference to the same CPU so both see the same
 * scheduling. Returns 0 or `-errno`.
 */
export function setThreadCpus(cpus: readonly number[]): number {
  const mem = cpuSetMemory();
  mem.bytes.fill(0, 0, CPU_SET_BYTES);
  for (const cpu of cpus) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= CPU_SET_BYTES * 8) {
      throw new RangeError(`CPU ${cpu} out of range`);
    }
    mem.bytes[cpu >> 3] = (mem.bytes[cpu >> 3] ?? 0) | (1 << (cpu & 7));
  }
  // FFI: as in threadCpus().
  const r = libc().schedSetaffinity(0, CPU_SET_BYTES, mem.address);
  return r >= 0 ? r : -(libc().errno[0] ?? 0);
}

/**
 * Bytes one ArrayBuffer over native memory may span: 4 GiB, Node 20's `buffer.constants
 * .MAX_LENGTH` (the limit of the external buffers koffi makes; above it Node aborts the
 * process) and V8 11.3's largest typed array.
 */
const MAX_VIEW_BYTES = MAX_GUEST_VIEW_BYTES;
/** Distance between the starts of the overlapping windows of a range above MAX_VIEW_BYTES. */
const WINDOW_STRIDE = MAX_GUEST_WINDOW_BYTES;

/** An mmap'd range and how many of its ArrayBuffers are still alive (unmapped at 0). */
interface Mapping {
  readonly pointer: bigint;
  readonly size: number;
  alive: number;
}

const unmapWhenCollected = new FinalizationRegistry<Mapping>((range) => {
  range.alive--;
  if (range.alive === 0) libc().munmap(range.pointer, range.size);
});

/** The start offsets of the windows covering `size` bytes (module header). */
function windowStarts(size: number): number[] {
  if (size <= MAX_VIEW_BYTES) return [0];
  const starts: number[] = [];
  for (let at = 0; at < size - MAX_VIEW_BYTES; at += WINDOW_STRIDE) starts.push(at);
  starts.push(size - MAX_VIEW_BYTES);
  return starts;
}

/**
 * An mmap'd byte range with a stable address: guest RAM, a vCPU's kvm_run mapping, or the
 * scratch space ioctl arguments are built in.
 */
export class NativeMemory {
  readonly size: number;
  /** @internal User address of byte 0 as a number (exact below 2^53). */
  readonly address: number;
  readonly #pointer: bigint;
  readonly #mapping: Mapping;
  /** ArrayBuffers over the range, each at most MAX_VIEW_BYTES, starting at `#starts[i]`. */
  readonly #buffers: ArrayBuffer[];
  readonly #starts: number[];
  readonly #bytes: Uint8Array | undefined;
  readonly #view: DataView | undefined;
  #released = false;

  /** @internal Use `mapAnonymous()` / `mapShared()`. */
  constructor(pointer: bigint, size: number) {
    this.#pointer = pointer;
    this.size = size;
    this.address = Number(pointer);
    this.#starts = windowStarts(size);
    this.#mapping = { pointer, size, alive: this.#starts.length };
    this.#buffers = this.#starts.map((at) => {
      const buffer = koffi.view(pointer + BigInt(at), Math.min(size - at, MAX_VIEW_BYTES));
      // FFI: the range stays mapped while any of its ArrayBuffers can be reached (or until
      // release() has detached them all); the last one collected unmaps it.
      unmapWhenCollected.register(buffer, this.#mapping, this.#mapping);
      return buffer;
    });
    const whole = size <= MAX_VIEW_BYTES ? this.#buffers[0] : undefined;
    this.#bytes = whole === undefined ? undefined : new Uint8Array(whole);
    this.#view = whole === undefined ? undefined : new DataView(whole);
  }

  /**
   * Zero-copy view of the whole range.
   * @throws {RangeError} if the range is larger than 4 GiB (use `window()`).
   */
  get bytes(): Uint8Array {
    return this.#bytes ?? this.#tooBig();
  }

  /**
   * DataView over the same bytes (little-endian accessors for struct codecs).
   * @throws {RangeError} if the range is larger than 4 GiB.
   */
  get view(): DataView {
    return this.#view ?? this.#tooBig();
  }

  #tooBig(): never {
    throw new RangeError(
      `Cannot view ${this.size} bytes of native memory as one array: Node 20 caps one view at ${MAX_VIEW_BYTES} bytes; use window(offset, length)`,
    );
  }

  /** True after `release()`. */
  get released(): boolean {
    return this.#released;
  }

  /**
   * A zero-copy view of bytes `[offset, offset + length)`: anywhere in the range when `length`
   * is at most `MAX_GUEST_WINDOW_BYTES` (2 GiB), and the whole range when it is at most 4 GiB.
   * @throws {RangeError} if the range is outside the mapping or no window holds it.
   * @throws {TypeError} after `release()`.
   */
  window(offset: number, length: number): Uint8Array {
    if (this.#released) throw new TypeError("Cannot view native memory: it was released");
    if (
      !Number.isInteger(offset) ||
      !Number.isInteger(length) ||
      offset < 0 ||
      length < 0 ||
      offset + length > this.size
    ) {
      throw new RangeError(`bytes ${offset}+${length} are outside a ${this.size}-byte range`);
    }
    const i = Math.min(Math.floor(offset / WINDOW_STRIDE), this.#starts.length - 1);
    for (const k of [i, i - 1]) {
      const start = this.#starts[k];
      const buffer = this.#buffers[k];
      if (start === undefined || buffer === undefined || offset < start) continue;
      if (offset + length <= start + buffer.byteLength)
        return new Uint8Array(buffer, offset - start, length);
    }
    throw new RangeError(
      `Cannot view ${length} bytes at offset ${offset} as one array: one view is at most ${MAX_GUEST_WINDOW_BYTES} bytes here`,
    );
  }

  /**
   * The user address of `offset` as a bigint, for kernel structs that carry a pointer
   * (`kvm_one_reg.addr`, `kvm_userspace_memory_region.userspace_addr`).
   * @throws {RangeError} if `offset` is outside the range.
   */
  addressOf(offset: number): bigint {
    if (!Number.isInteger(offset) || offset < 0 || offset > this.size) {
      throw new RangeError(`offset ${offset} outside a ${this.size}-byte native range`);
    }
    return this.#pointer + BigInt(offset);
  }

  /**
   * Drops the range and its contents (and whatever object the mapping pinned, e.g. a vCPU
   * file); idempotent. On the addon path every view is detached (length 0) and the range is
   * unmapped now; otherwise fresh zero pages replace it and views read zeros until collected.
   */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    pathCache ??= chooseIoctlPath();
    const detach = pathCache.detach;
    if (detach !== undefined && this.#buffers.every((buffer) => detach(buffer))) {
      // FFI: no ArrayBuffer over the range is attached any more, so no JS code can touch it.
      unmapWhenCollected.unregister(this.#mapping);
      this.#mapping.alive = -1;
      libc().munmap(this.#pointer, this.size);
      return;
    }
    // FFI: MAP_FIXED over our own range replaces the old mapping atomically; the address
    // range stays ours until the finalizer unmaps it.
    // If the replacement fails (ENOMEM) the old mapping simply stays until the finalizer
    // unmaps it; the kernel object it pins lives that long too, which is harmless.
    libc().mmap(
      this.#pointer,
      this.size,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      -1,
      0,
    );
  }
}

function mapOrErrno(size: number, flags: number, fd: number): NativeMemory | number {
  if (!Number.isInteger(size) || size <= 0) throw new RangeError(`mmap size ${size} is invalid`);
  const c = libc();
  const p = c.mmap(null, size, PROT_READ | PROT_WRITE, flags, fd, 0);
  if (p === null || p === MAP_FAILED) return -(c.errno[0] ?? 0);
  return new NativeMemory(p, size);
}

/** Options of `mapAnonymous()`. */
export interface AnonymousOptions {
  /**
   * MAP_NORESERVE: reserve no swap space up front (mmap(2)), so guest RAM larger than the
   * host's free memory can be mapped and only the pages the guest touches cost memory, as in
   * other VMMs; the kernel's heuristic overcommit check (mm/util.c `__vm_enough_memory`) would
   * refuse such a mapping otherwise.
   */
  readonly noReserve?: boolean;
}

/** Anonymous private zero pages (`mmap(MAP_PRIVATE|MAP_ANONYMOUS)`), or `-errno`. */
export function mapAnonymous(size: number, options: AnonymousOptions = {}): NativeMemory | number {
  const extra = options.noReserve === true ? MAP_NORESERVE : 0;
  return mapOrErrno(size, MAP_PRIVATE | MAP_ANONYMOUS | extra, -1);
}

/** A shared mapping of `fd` from offset 0 (the vCPU's kvm_run pages), or `-errno`. */
export function mapShared(fd: number, size: number): NativeMemory | number {
  return mapOrErrno(size, MAP_SHARED, fd);
}
