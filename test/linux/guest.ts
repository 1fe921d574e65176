/**
 * Test helper for the Linux guest (scripts/build-linux.sh, guests/linux/init.c): finding the
 * cached Image, booting it on regvisor or on QEMU (the differential reference), picking out
 * /init's `init: ` lines, and the disk layout /init reads and writes.
 *
 * Variants of the machine are options of one call, so a test adds `{ cpus: 2 }` or
 * `{ disks: [{ path }] }` rather than a new spawn: `bootLinux({ cmdline, cpus?, disks? })`.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root (from dist/test/linux or test/linux). */
export const REPO = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, "scripts", "build-linux.sh"))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
})();

// The shipped executable (package.json "bin"), bundled by scripts/bundle.mjs.
const BIN = join(REPO, "dist", "bin", "regvisor.js");

/** Where the kernel sits in guest RAM today: 2 MiB above the RAM base (Linux's RV64 rule). */
export const LINUX_LOAD_ADDR = "0x80200000";

/** Bytes /init hashes at the start of every disk (guests/linux/init.c DISK_READ_LEN). */
export const DISK_READ_LEN = 4096;
/** Where /init writes its pattern on every disk (init.c DISK_WRITE_OFFSET). */
export const DISK_WRITE_OFFSET = 8192;
/** How many bytes it writes there (init.c DISK_WRITE_LEN). */
export const DISK_WRITE_LEN = 512;
/** The text it repeats over those bytes (init.c DISK_PATTERN). */
export const DISK_PATTERN = "regvisor /init wrote this sector\n";

/** The cached Image for the current inputs, or why there is none (a visible skip reason). */
export function linuxImage(): { readonly image: string } | { readonly skip: string } {
  const r = spawnSync("bash", [join(REPO, "scripts", "build-linux.sh"), "--path"], {
    encoding: "utf8",
  });
  if (r.status === 0) return { image: r.stdout.trim() };
  const reason = r.stderr.trim().split("\n")[0] ?? "";
  return { skip: reason.replace(/^build-linux: /, "") || "scripts/build-linux.sh --path failed" };
}

/** Whether `cmd` is on PATH. */
export function hasCommand(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
}

/** One disk attached to the guest: a raw image file. */
export interface Disk {
  readonly path: string;
  readonly readonly?: boolean;
}

/** A machine to boot the Image on. */
export interface BootOptions {
  readonly cmdline: string;
  /** regvisor: `--load-addr` for the Image as a flat binary (default LINUX_LOAD_ADDR); null
   * leaves it out, for a machine that loads an Image by its header. */
  readonly loadAddr?: string | null;
  /** vCPUs; omitted means the machine's default (one). */
  readonly cpus?: number;
  readonly disks?: readonly Disk[];
  /** regvisor only: more `run` options (`--virtio-console`, `--stats`). */
  readonly extraArgs?: readonly string[];
  /** Milliseconds before the process is killed (default 240 s: a loaded 2-core CI box). */
  readonly timeoutMs?: number;
}

/** What one boot printed and how it ended. */
export interface Boot {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  /** /init's lines without the `init: ` prefix, in order. */
  readonly init: readonly string[];
  /** Milliseconds from spawn to the first `init: ` line on stdout (undefined: never seen). */
  readonly firstInitMs: number | undefined;
  /** CPU seconds (user + system, all threads) the process had used by then, from /proc. */
  readonly firstInitCpuS: number | undefined;
  readonly timedOut: boolean;
}

/** /init's lines of a console transcript, `init: ` and any carriage return removed. */
export function initLines(stdout: string): string[] {
  return stdout
    .split("\n")
    .map((l) => l.replace(/\r$/, ""))
    .filter((l) => l.startsWith("init: "))
    .map((l) => l.slice("init: ".length));
}

/**
 * CPU seconds a live process has used, all threads (proc(5): /proc/PID/stat fields 14 utime
 * and 15 stime, in clock ticks; USER_HZ is 100 on every Linux ABI Node runs on).
 */
function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, "utf8");
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Spawns a command and collects its output, noting when /init's first line arrives. */
export function runGuest(cmd: string, args: readonly string[], timeoutMs: number): Promise<Boot> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let firstInitMs: number | undefined;
    let firstInitCpuS: number | undefined;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk: string) => {
      stdout += chunk;
      // At a line start: the kernel's own "mem auto-init: …" also contains "init: ".
      if (firstInitMs === undefined && `\n${stdout}`.includes("\ninit: ")) {
        firstInitMs = Number(process.hrtime.bigint() - start) / 1e6;
        firstInitCpuS = child.pid === undefined ? undefined : cpuSeconds(child.pid);
      }
    });
    child.stderr.on("data", (chunk: string) => {
      stderr += chunk;
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      const init = initLines(stdout);
      resolve({ status, signal, stdout, stderr, init, firstInitMs, firstInitCpuS, timedOut });
    });
  });
}

/** The `regvisor run …` arguments that boot `image` on the soft backend. */
export function regvisorArgs(image: string, opts: BootOptions): string[] {
  const args = ["run", "--backend", "soft", "--mem", "256M", "--cmdline", opts.cmdline];
  const loadAddr = opts.loadAddr === undefined ? LINUX_LOAD_ADDR : opts.loadAddr;
  if (loadAddr !== null) args.push("--load-addr", loadAddr);
  if (opts.cpus !== undefined) args.push("--cpus", String(opts.cpus));
  for (const d of opts.disks ?? []) args.push("--disk", d.readonly ? `${d.path},readonly` : d.path);
  args.push(...(opts.extraArgs ?? []), image);
  return args;
}

/** Boots `image` on regvisor's soft backend (`node dist/bin/regvisor.js run …`). */
export function bootLinux(image: string, opts: BootOptions): Promise<Boot> {
  return runGuest(process.execPath, [BIN, ...regvisorArgs(image, opts)], opts.timeoutMs ?? 240_000);
}

/** The `qemu-system-riscv64 -M virt` arguments that boot `image` the same way. */
export function qemuArgs(image: string, opts: BootOptions): string[] {
  const args = ["-M", "virt", "-smp", String(opts.cpus ?? 1), "-m", "256M", "-nographic"];
  args.push("-bios", "default", "-kernel", image, "-append", opts.cmdline);
  (opts.disks ?? []).forEach((d, i) => {
    const ro = d.readonly ? ",readonly=on" : "";
    args.push("-drive", `file=${d.path},format=raw,if=none,id=hd${i}${ro}`);
    args.push("-device", `virtio-blk-device,drive=hd${i}`);
  });
  return args;
}

/** Boots `image` under QEMU TCG (`-M virt`, OpenSBI), the differential reference. */
export function bootQemu(image: string, opts: BootOptions): Promise<Boot> {
  return runGuest("qemu-system-riscv64", qemuArgs(image, opts), opts.timeoutMs ?? 120_000);
}

/**
 * /init's lines that must be equal on every machine booting this Image with these disks: the
 * command line and interrupt counts are the machine's own, and so is which errno a read-only
 * disk answers a write with (EPERM at write() when the device says VIRTIO_BLK_F_RO, EIO at
 * fsync() when the host refuses the request), so only the failure itself is compared.
 */
export function machineIndependent(init: readonly string[]): string[] {
  return init
    .filter((l) => !l.startsWith("cmdline ") && !l.startsWith("irq "))
    .map((l) => l.replace(/ write failed: .*$/, " write failed"));
}

/** Whether `regvisor run --help` documents `option` (a feature probe for newer machines). */
export function runHasOption(option: string): boolean {
  const r = spawnSync(process.execPath, [BIN, "run", "--help"], { encoding: "utf8" });
  return r.status === 0 && r.stdout.includes(option);
}

/** FNV-1a 32-bit, as /init prints it (8 lowercase hex digits). */
export function fnv1a32(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/** The bytes /init writes at DISK_WRITE_OFFSET. */
export function diskPattern(): Buffer {
  const unit = Buffer.from(DISK_PATTERN, "latin1");
  const out = Buffer.alloc(DISK_WRITE_LEN);
  for (let i = 0; i < out.length; i++) out[i] = unit[i % unit.length] ?? 0;
  return out;
}

/** A deterministic disk image: `size` bytes of a simple byte sequence seeded by `seed`. */
export function diskImage(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    // xorshift32 (Marsaglia 2003): any fixed byte stream works; this one is cheap.
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** Kernel messages that mean something went wrong even if /init ran. */
const KERNEL_TROUBLE =
  /Oops|Kernel panic|BUG:|WARNING:|Unable to handle|unable to open an initial console/;

/** The release the build recorded beside `image` (scripts/build-linux.sh's inputs.txt). */
export function builtRelease(image: string): string {
  const inputs = readFileSync(join(dirname(image), "inputs.txt"), "utf8");
  return /^release (\S+)$/m.exec(inputs)?.[1] ?? "unknown";
}

/** /init started first, saw this release and command line, and reached its last line. */
export function assertInitRan(boot: Boot, image: string, cmdline: string): void {
  assert.equal(boot.timedOut, false, `timed out; last output:\n${boot.stdout.slice(-2000)}`);
  const head = ["started", `release ${builtRelease(image)}`];
  assert.deepEqual(boot.init.slice(0, 2), head, boot.stdout.slice(-2000));
  assert.ok(boot.init.includes(`cmdline ${cmdline}`), boot.init.join("\n"));
  assert.equal(boot.init.at(-1), "power off");
  assert.doesNotMatch(boot.stdout, KERNEL_TROUBLE);
}

/** Size of the disks the tests attach: room for /init's read and its write. */
export const DISK_SIZE = 64 * 1024;

/** A writable and a read-only disk in `dir`, with the bytes each starts with. */
export interface TestDisks {
  readonly disks: readonly Disk[];
  readonly rw: { readonly path: string; readonly bytes: Buffer };
  readonly ro: { readonly path: string; readonly bytes: Buffer };
}

/** Writes two fresh disk images into `dir` (`seed` keeps them apart between boots). */
export function makeTestDisks(dir: string, seed: number): TestDisks {
  const rw = { path: join(dir, `rw-${seed}.img`), bytes: diskImage(DISK_SIZE, seed) };
  const ro = { path: join(dir, `ro-${seed}.img`), bytes: diskImage(DISK_SIZE, seed + 1) };
  writeFileSync(rw.path, rw.bytes);
  writeFileSync(ro.path, ro.bytes);
  return { disks: [{ path: rw.path }, { path: ro.path, readonly: true }], rw, ro };
}

/** /init read `name`'s first bytes (its checksum line matches the host's file). */
function assertDiskRead(boot: Boot, name: string, original: Buffer): void {
  const line = `${name} size ${original.length} sum ${fnv1a32(original.subarray(0, DISK_READ_LEN))}`;
  assert.ok(boot.init.includes(line), `no "${line}" in:\n${boot.init.join("\n")}`);
}

/** /init read, wrote and fsynced the writable disk; the host file holds exactly that write. */
export function assertDiskWritten(boot: Boot, name: string, disk: TestDisks["rw"]): void {
  assertDiskRead(boot, name, disk.bytes);
  assert.ok(boot.init.includes(`${name} disk ok`), boot.init.join("\n"));
  const want = Buffer.from(disk.bytes);
  diskPattern().copy(want, DISK_WRITE_OFFSET);
  const now = readFileSync(disk.path);
  assert.ok(now.equals(want), `${disk.path} is not the original plus /init's write`);
  const sector = now.subarray(DISK_WRITE_OFFSET, DISK_WRITE_OFFSET + DISK_WRITE_LEN);
  assert.match(sector.toString("latin1"), /^(regvisor \/init wrote this sector\n)+regv/);
}

/** /init read the read-only disk, its write failed with an errno, the host file is unchanged. */
export function assertDiskRefused(boot: Boot, name: string, disk: TestDisks["ro"]): void {
  assertDiskRead(boot, name, disk.bytes);
  const failed = boot.init.find((l) => l.startsWith(`${name} write failed: `));
  assert.ok(failed, boot.init.join("\n"));
  assert.match(failed, /^vd[a-h] write failed: (open|write|fsync) E[A-Z]+ \(\d+\)$/);
  assert.ok(!boot.init.includes(`${name} disk ok`));
  assert.ok(readFileSync(disk.path).equals(disk.bytes), `${disk.path} changed`);
}

/**
 * The interrupts /init's read of /proc/interrupts counted for ttyS0 (all CPUs), after checking
 * that the line names a PLIC source: the 8250 driver requested an IRQ (a polled port, irq 0,
 * has no line).
 */
export function uartInterruptCount(boot: Boot): number {
  const uart = boot.init.find((l) => l.startsWith("irq ") && l.endsWith(" ttyS0"));
  assert.ok(uart, `no ttyS0 interrupt line in:\n${boot.init.join("\n")}`);
  const counts = /^irq \d+:((?: \d+)+) SiFive PLIC \d+ \w+ ttyS0$/.exec(uart);
  assert.ok(counts?.[1], uart);
  return counts[1]
    .trim()
    .split(" ")
    .reduce((n, c) => n + Number(c), 0);
}

/** The UART's line from /proc/interrupts: it took interrupts through the PLIC. */
export function assertUartInterrupts(boot: Boot): void {
  const total = uartInterruptCount(boot);
  const uart = boot.init.find((l) => l.startsWith("irq ") && l.endsWith(" ttyS0")) ?? "";
  assert.ok(total > 0, `the UART took no interrupts: ${uart}`);
}
