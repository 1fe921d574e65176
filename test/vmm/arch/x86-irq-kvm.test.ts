/**
 * COM1's IRQ 4 through KVM's in-kernel irqchip, end to end on /dev/kvm: a long-mode guest
 * (assembled here, nothing committed) loads an IDT, programs the 8259 pair (vectors 0x20…,
 * only IRQ 4 unmasked), enables the UART's THRE and received-data interrupts, and then only
 * halts with interrupts on; its handler loops on IIR as Linux's 8250 driver does. Every byte it
 * sends and every byte of stdin it echoes arrives through an interrupt, so the exit status
 * (THRE count × 10 + received count) is reached only if the host delivers IRQ 4.
 *
 * Measured on kvm_pvm (kernel 6.18): delivered in long mode (and the in-kernel HLT sleeps until
 * the interrupt); the real-mode case of test/conformance/capabilities.test.ts is not.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kvmUnavailableReason } from "../../../src/backends/kvm/index.js";
import { backendPicker } from "../../../src/cli/backends.js";
import { runGuest } from "../../../src/vmm/runner.js";

const kvmMissing = kvmUnavailableReason();
const toolsMissing =
  spawnSync("as", ["--version"]).status === 0 && spawnSync("ld", ["--version"]).status === 0
    ? undefined
    : "GNU as/ld are not installed (binutils)";
const skip = kvmMissing === undefined ? toolsMissing : `/dev/kvm: ${kvmMissing}`;

const GUEST = `
  .code64
  .globl _start
_start:
  cli
  lea isr(%rip), %rax            # IDT entry 0x24: 64-bit interrupt gate to isr, selector 0x08
  mov $0x8000 + 0x24*16, %rdi
  mov %ax, (%rdi)
  movw $0x08, 2(%rdi)
  movw $0x8e00, 4(%rdi)
  shr $16, %rax
  mov %ax, 6(%rdi)
  shr $16, %rax
  mov %eax, 8(%rdi)
  movl $0, 12(%rdi)
  lidt idtr(%rip)
  mov $0x11, %al; out %al, $0x20 # 8259 master: ICW1..4, vectors 0x20.., mask all but IRQ 4
  mov $0x20, %al; out %al, $0x21
  mov $0x04, %al; out %al, $0x21
  mov $0x01, %al; out %al, $0x21
  mov $0xef, %al; out %al, $0x21
  mov $0x11, %al; out %al, $0xa0 # slave: vectors 0x28.., all masked
  mov $0x28, %al; out %al, $0xa1
  mov $0x02, %al; out %al, $0xa1
  mov $0x01, %al; out %al, $0xa1
  mov $0xff, %al; out %al, $0xa1
  mov $0x3fc, %dx; mov $0x0b, %al; out %al, %dx   # MCR: DTR RTS OUT2
  mov $0x3f9, %dx; mov $0x03, %al; out %al, %dx   # IER: ERBFI | ETBEI
  sti
1: hlt
  cmpl $5, tx(%rip)
  jb 1b
  cmpl $3, rx(%rip)
  jb 1b
  cli
  mov tx(%rip), %eax
  imul $10, %eax
  add rx(%rip), %eax
  out %al, $0xf4
isr:
  push %rax
  push %rdx
2: mov $0x3fa, %dx; in %dx, %al  # IIR: loop until "no interrupt pending"
  test $1, %al
  jnz 4f
  and $0x0e, %al
  cmp $0x02, %al
  jne 3f
  incl tx(%rip)                  # THRE: send another 'I' until the fifth
  cmpl $5, tx(%rip)
  jae 2b
  mov $0x3f8, %dx; mov $'I', %al; out %al, %dx
  jmp 2b
3: mov $0x3f8, %dx; in %dx, %al  # received data: echo it on 0xe9
  out %al, $0xe9
  incl rx(%rip)
  jmp 2b
4: mov $0x20, %al; out %al, $0x20 # EOI
  pop %rdx
  pop %rax
  iretq
  .align 8
idtr: .word 0xfff
  .quad 0x8000
tx: .long 0
rx: .long 0
`;

const dir = mkdtempSync(join(tmpdir(), "regvisor-x86irq-"));
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function build(): Uint8Array {
  writeFileSync(join(dir, "irq.S"), GUEST);
  for (const [cmd, args] of [
    ["as", ["--64", "-o", join(dir, "irq.o"), join(dir, "irq.S")]],
    [
      "ld",
      ["-m", "elf_x86_64", "-Ttext", "0x100000", "--build-id=none", "-o", join(dir, "irq.elf")],
    ],
  ] as const) {
    const extra = cmd === "ld" ? [join(dir, "irq.o")] : [];
    const r = spawnSync(cmd, [...args, ...extra], { encoding: "utf8" });
    assert.equal(r.status, 0, `${cmd}: ${r.stderr}`);
  }
  return new Uint8Array(readFileSync(join(dir, "irq.elf")));
}

describe("x86 COM1 interrupts through the in-kernel irqchip", () => {
  it("THRE and received-data interrupts reach a halted long-mode guest", { skip }, async () => {
    using backends = backendPicker();
    let output = "";
    const stdin = [...Buffer.from("abc")];
    const s = await runGuest({
      file: build(),
      backendFor: backends.backendFor,
      memSize: 16n << 20n,
      output: (bytes) => (output += Buffer.from(bytes).toString("latin1")),
      input: { read: (max) => Uint8Array.from(stdin.splice(0, max)) },
      timeoutMs: 10_000,
      collectRegisters: false,
    });
    assert.equal(s.ending.reason, "exit-port", s.ending.message);
    assert.equal(s.ending.status, 53, "5 THRE interrupts, 3 received bytes");
    assert.equal(output.replace(/[^I]/g, ""), "IIII", output);
    assert.equal(output.replace(/I/g, ""), "abc", "stdin echoed in order");
    assert.equal(s.exitKinds.hlt, undefined, "HLT stays in the kernel with its LAPIC");
  });
});
