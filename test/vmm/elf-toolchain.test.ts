/**
 * Differential tests against real toolchains: programs compiled at test time (nothing is
 * committed), loaded with `loadElf()`, compared with what binutils says (`readelf -lW`) and
 * with the flat image `objcopy -O binary` makes of the same file.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadElf, type ElfImage } from "../../src/vmm/elf.js";
import { RISCV_RAM_BASE, writeImage, type GuestRam } from "../../src/vmm/guest-memory.js";

const dir = mkdtempSync(join(tmpdir(), "regvisor-elf-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** `undefined` when `tool` runs, else a skip reason. */
function missing(tool: string): string | undefined {
  const r = spawnSync(tool, ["--version"], { encoding: "utf8" });
  return r.status === 0 ? undefined : `${tool} is not installed (scripts/setup.sh installs it)`;
}

function run(cmd: string, args: readonly string[]): string {
  const r = spawnSync(cmd, args, { cwd: dir, encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed:\n${r.stderr}`);
  return r.stdout;
}

function write(name: string, content: string): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

interface LoadLine {
  offset: bigint;
  vaddr: bigint;
  paddr: bigint;
  filesz: bigint;
  memsz: bigint;
}

/** Entry and LOAD program headers as `readelf -hlW` prints them. */
function readelf(file: string): { entry: bigint; loads: LoadLine[] } {
  const out = run("readelf", ["-hlW", file]);
  const entry = /Entry point address:\s+(0x[0-9a-f]+)/.exec(out)?.[1];
  assert.ok(entry !== undefined, out);
  const loads = [...out.matchAll(/^\s+LOAD\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)/gm)].map(
    (m) => ({
      offset: BigInt(m[1] ?? ""),
      vaddr: BigInt(m[2] ?? ""),
      paddr: BigInt(m[3] ?? ""),
      filesz: BigInt(m[4] ?? ""),
      memsz: BigInt(m[5] ?? ""),
    }),
  );
  return { entry: BigInt(entry), loads };
}

/** Our image agrees with readelf on every non-empty LOAD segment and the entry. */
function assertMatchesReadelf(image: ElfImage, file: string, bytes: Uint8Array): void {
  const { entry, loads } = readelf(file);
  assert.equal(image.entry, entry);
  const nonEmpty = loads.filter((l) => l.memsz > 0n);
  assert.ok(nonEmpty.length >= 1);
  assert.equal(image.segments.length, nonEmpty.length);
  nonEmpty.forEach((l, i) => {
    const s = image.segments[i];
    assert.ok(s !== undefined);
    assert.equal(s.addr, l.paddr);
    assert.equal(s.memSize, l.memsz);
    assert.equal(BigInt(s.data.length), l.filesz);
    assert.deepEqual(s.data, bytes.subarray(Number(l.offset), Number(l.offset + l.filesz)));
  });
}

/** RAM after `writeImage()` holds exactly objcopy's flat image at the lowest segment address. */
function assertMatchesObjcopy(objcopy: string, file: string, image: ElfImage, ram: GuestRam): void {
  run(objcopy, ["-O", "binary", file, `${file}.bin`]);
  const flat = readFileSync(`${file}.bin`);
  // objcopy fills gaps between sections with zeros, as fresh guest RAM is.
  const memory = new Uint8Array(Number(ram.size));
  writeImage(ram, memory, image);
  const low = image.segments.reduce(
    (m, s) => (s.addr < m ? s.addr : m),
    image.segments[0]?.addr ?? 0n,
  );
  const at = Number(low - ram.base);
  assert.deepEqual(memory.subarray(at, at + flat.length), new Uint8Array(flat));
}

const RISCV_START = `
  .section .text.init
  .globl _start
_start:
  la sp, __stack_top
  call main
  li a7, 0x53525354
  li a6, 0
  li a0, 0
  li a1, 0
  ecall
1: wfi
  j 1b
`;

const C_MAIN = `
volatile unsigned long counter = 5;
static unsigned long buf[64];
const char message[] = "hello from the guest";
int main(void) {
  for (int i = 0; i < 64; i++) buf[i] = counter * (unsigned long)i + (unsigned long)message[i % 20];
  return (int)buf[3];
}
`;

const LINK = (base: string): string => `
ENTRY(_start)
SECTIONS {
  . = ${base};
  .text : { *(.text.init) *(.text .text.*) }
  .rodata : { *(.rodata .rodata.* .srodata .srodata.*) }
  . = ALIGN(0x1000);
  .data : { *(.data .data.* .sdata .sdata.*) }
  .bss : { *(.sbss .sbss.* .bss .bss.* COMMON) . = ALIGN(16); . += 0x4000; __stack_top = .; }
  /DISCARD/ : { *(.note.* .comment .eh_frame*) }
}
`;

describe("loadElf() on files built by real toolchains", () => {
  it(
    "riscv64-unknown-elf-gcc: RV64 ELF matches readelf and objcopy",
    { skip: missing("riscv64-unknown-elf-gcc") ?? missing("readelf") },
    () => {
      const out = join(dir, "rv.elf");
      run("riscv64-unknown-elf-gcc", [
        "-march=rv64imac_zicsr_zifencei",
        "-mabi=lp64",
        "-mcmodel=medany",
        "-O2",
        "-nostdlib",
        "-nostartfiles",
        "-ffreestanding",
        "-Wl,--no-warn-rwx-segments",
        "-T",
        write("rv.ld", LINK("0x80200000")),
        write("rv-start.S", RISCV_START),
        write("rv-main.c", C_MAIN),
        "-o",
        out,
      ]);
      const bytes = new Uint8Array(readFileSync(out));
      const image = loadElf(bytes);
      assert.equal(image.arch, "riscv");
      assert.equal(image.bits, 64);
      assert.equal(image.entry, 0x8020_0000n);
      assert.ok(
        image.segments.some((s) => s.memSize > BigInt(s.data.length)),
        "a .bss tail is expected",
      );
      assertMatchesReadelf(image, out, bytes);
      assertMatchesObjcopy("riscv64-unknown-elf-objcopy", out, image, {
        base: RISCV_RAM_BASE,
        size: 128n << 20n,
      });
    },
  );

  it(
    "host gcc: x86-64 ELF matches readelf and objcopy",
    { skip: missing("gcc") ?? missing("readelf") },
    () => {
      const out = join(dir, "x64.elf");
      const start = `
      .code64
      .section .text.init, "ax"
      .globl _start
    _start:
      mov $__stack_top, %rsp
      call main
      mov %eax, %edx
      mov $0xf4, %dx
      out %al, %dx
      hlt
    `;
      run("gcc", [
        "-m64",
        "-O2",
        "-nostdlib",
        "-static",
        "-ffreestanding",
        "-fno-pie",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,--no-warn-rwx-segments",
        "-T",
        write("x64.ld", LINK("0x100000")),
        write("x64-start.S", start),
        write("x64-main.c", C_MAIN),
        "-o",
        out,
      ]);
      const bytes = new Uint8Array(readFileSync(out));
      const image = loadElf(bytes);
      assert.equal(image.arch, "x86");
      assert.equal(image.bits, 64);
      assertMatchesReadelf(image, out, bytes);
      assertMatchesObjcopy("objcopy", out, image, { base: 0n, size: 16n << 20n });
    },
  );

  it(
    "host as/ld: i386 ELF32 matches readelf",
    { skip: missing("as") ?? missing("ld") ?? missing("readelf") },
    () => {
      const src = write(
        "i386.S",
        `
      .code32
      .globl _start
    _start:
      mov $0x41, %al
      out %al, $0xe9
      hlt
      .data
    value: .long 0x12345678
      .bss
    scratch: .space 256
    `,
      );
      run("as", ["--32", "-o", join(dir, "i386.o"), src]);
      const out = join(dir, "i386.elf");
      run("ld", [
        "-m",
        "elf_i386",
        "-Ttext",
        "0x100000",
        "--build-id=none",
        "-o",
        out,
        join(dir, "i386.o"),
      ]);
      const bytes = new Uint8Array(readFileSync(out));
      const image = loadElf(bytes);
      assert.equal(image.arch, "x86");
      assert.equal(image.bits, 32);
      assert.equal(image.entry, 0x10_0000n);
      assertMatchesReadelf(image, out, bytes);
    },
  );
});
