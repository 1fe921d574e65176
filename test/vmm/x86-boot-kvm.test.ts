/**
 * The x86 start states on real KVM: tiny guests assembled at test time (nothing committed),
 * planned with `planBoot()`, written with `writeBootPlan()`, started with the plan's REGS and
 * SREGS fields, their port I/O served by the x86 machine's devices (src/vmm/arch/x86/devices.ts)
 * — one run per `--x86-mode`.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { KvmSystem, kvmUnavailableReason } from "../../src/backends/kvm/index.js";
import { planBoot, writeBootPlan, type BootRequest } from "../../src/vmm/boot-plan.js";
import { x86Devices } from "../../src/vmm/arch/x86/devices.js";
import { callbackSink } from "../../src/vmm/machine/console-sink.js";
import { noInput } from "../../src/vmm/runner-input.js";
import { serviceIoExit } from "../../src/vmm/io.js";

const kvmMissing = kvmUnavailableReason();
const toolsMissing =
  spawnSync("as", ["--version"]).status === 0 && spawnSync("ld", ["--version"]).status === 0
    ? undefined
    : "GNU as/ld are not installed (binutils)";
const skip = kvmMissing ?? toolsMissing;
const dir = mkdtempSync(join(tmpdir(), "regvisor-x86boot-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Assembles `source` and links it at `address` (an ELF, or a flat binary). */
function build(
  name: string,
  source: string,
  bits: 16 | 32 | 64,
  address: string,
  flat = false,
): Uint8Array {
  const src = join(dir, `${name}.S`);
  writeFileSync(src, source);
  const obj = join(dir, `${name}.o`);
  const out = join(dir, `${name}.out`);
  const emulation = bits === 64 ? "elf_x86_64" : "elf_i386";
  for (const [cmd, args] of [
    ["as", [bits === 64 ? "--64" : "--32", "-o", obj, src]],
    [
      "ld",
      [
        "-m",
        emulation,
        "-Ttext",
        address,
        "--build-id=none",
        ...(flat ? ["--oformat", "binary"] : []),
        "-o",
        out,
        obj,
      ],
    ],
  ] as const) {
    const r = spawnSync(cmd, args, { encoding: "utf8" });
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
  }
  return new Uint8Array(readFileSync(out));
}

interface Outcome {
  readonly status: number;
  readonly output: string;
  readonly cr0: bigint;
  readonly efer: bigint;
}

/** Plans, loads and runs a guest until it writes the exit port. */
function runGuest(request: BootRequest): Outcome {
  const plan = planBoot(request);
  if (plan.arch !== "x86") assert.fail("expected an x86 plan");
  const system = KvmSystem.open();
  const vm = system.createVm();
  try {
    const memory = vm.addMemory({ guestPhysAddr: 0, size: Number(plan.ram.size) });
    writeBootPlan(plan, memory.bytes);
    const vcpu = vm.createVcpu();
    vcpu.setCpuidFromSupported();
    // Read-modify-write: keep apic_base and interrupt_bitmap as KVM has them.
    const sregs = vcpu.getSregs();
    const boot = plan.x86.sregs;
    for (const seg of ["cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt"] as const)
      Object.assign(sregs[seg], boot[seg]);
    Object.assign(sregs.gdt, boot.gdt);
    Object.assign(sregs.idt, boot.idt);
    Object.assign(sregs, {
      cr0: boot.cr0,
      cr2: boot.cr2,
      cr3: boot.cr3,
      cr4: boot.cr4,
      cr8: boot.cr8,
      efer: boot.efer,
    });
    vcpu.setSregs(sregs);
    vcpu.setRegs({ ...plan.x86.regs });
    let output = "";
    const { ports: devices } = x86Devices(
      {
        console: callbackSink((bytes) => (output += String.fromCharCode(...bytes))),
        input: noInput(),
        unclaimed: () => undefined,
      },
      { set: () => undefined },
    );
    for (let n = 0; n < 10_000; n++) {
      const exit = vcpu.run();
      if (exit.kind !== "io")
        assert.fail(
          `unexpected exit ${JSON.stringify(exit, (_k, v: unknown) => (typeof v === "bigint" ? v.toString(16) : v))}`,
        );
      const result = serviceIoExit(devices, exit);
      if (result.exitStatus !== undefined) {
        const after = vcpu.getSregs();
        return { status: result.exitStatus, output, cr0: after.cr0, efer: after.efer };
      }
    }
    assert.fail("the guest never wrote the exit port");
  } finally {
    vm.close();
    system.close();
  }
}

const LONG = `
  .code64
  .globl _start
_start:
  mov $'L', %al
  out %al, $0xe9
  call puts_com1                 # the stack VMM set up, at the top of RAM
  movabs $0xfffff0, %rdi         # near the top of 16 MiB, through the identity map
  movq $0x1234, (%rdi)
  cmpq $0x1234, (%rdi)
  jne fail
  movdqu (%rdi), %xmm0           # SSE needs CR4.OSFXSR
  mov $42, %al
  out %al, $0xf4
fail:
  mov $1, %al
  out %al, $0xf4
puts_com1:
  lea msg(%rip), %rsi
1: cmpb $0, (%rsi)
  je 3f
2: mov $0x3fd, %dx
  in %dx, %al
  test $0x20, %al
  jz 2b
  mov (%rsi), %al
  mov $0x3f8, %dx
  out %al, %dx
  inc %rsi
  jmp 1b
3: ret
msg: .asciz "ong mode\\n"
`;

const PROTECTED = `
  .code32
  .globl _start
_start:
  mov $'P', %al
  out %al, $0xe9
  mov $0x7ffff0, %edi
  movl $0xabcd, (%edi)
  push $7
  pop %eax
  out %al, $0xf4
`;

const REAL = `
  .code16
  .globl _start
_start:
  mov $'R', %al
  out %al, $0xe9
  push $3
  pop %ax
  out %al, $0xf4
`;

const MiB = 1n << 20n;

describe("x86 start states on KVM", { skip }, () => {
  it("long mode (default for ELF64): paging on, COM1 and 0xe9 output, exit status 42", () => {
    const r = runGuest({
      file: build("long", LONG, 64, "0x100000"),
      arch: "x86",
      memSize: 16n * MiB,
    });
    assert.equal(r.output, "Long mode\n");
    assert.equal(r.status, 42);
    assert.equal(r.efer & 0x500n, 0x500n);
    assert.equal(r.cr0 & 0x8000_0001n, 0x8000_0001n);
  });

  it("protected mode (default for ELF32): flat segments, no paging", () => {
    const r = runGuest({
      file: build("prot", PROTECTED, 32, "0x100000"),
      arch: "x86",
      memSize: 16n * MiB,
    });
    assert.deepEqual([r.output, r.status, r.cr0 & 0x8000_0001n, r.efer], ["P", 7, 1n, 0n]);
  });

  it("real mode (default for flat binaries) at 0x7c00", () => {
    const file = build("real", REAL, 16, "0x7c00", true);
    const r = runGuest({ file, arch: "x86", memSize: 16n * MiB, loadAddr: 0x7c00n });
    assert.deepEqual([r.output, r.status, r.cr0 & 1n], ["R", 3, 0n]);
  });
});
