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
 *
 * The same guest snapshotted inside its interrupt handler (the master 8259 programmed in the
 * kernel, IRQ 4 in service, no EOI yet) after its last 'I', before any input, and restored in a
 * new process ends as an uninterrupted run does: every byte of input reaches it through the
 * restored 8259 (the `kvm.irqchip` DEVICE section carries the PICs and the IOAPIC).
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
import { decodeSnapshot } from "../../../src/vmm/snapshot/index.js";
import { lastLine, regvisor } from "../../cli/run-file-helpers.js";

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

  it(
    "snapshotted in its IRQ 4 handler before any input, it restores in a new process with the irqchip state and ends as an uninterrupted run",
    { skip },
    () => {
      const elf = join(dir, "irq-snap.elf");
      writeFileSync(elf, build());
      const run = ["run", "--backend", "kvm", "--mem", "16M", elf];
      const whole = regvisor(run, "abc");
      assert.equal(whole.status, 53, whole.stderr);
      // Exits 1-2: MCR and IER (the 8259 ports stay in the kernel); 3-10: the handler reads IIR
      // and sends an 'I', four times; 11-12: IIR reads (the fifth THRE, then none). IRQ 4 is in
      // service in the master PIC, no EOI yet; each input byte needs a new interrupt.
      const snap = join(dir, "irq.snap");
      const first = regvisor([...run, "--snapshot-at-exit", "12", "--snapshot-out", snap], "");
      assert.equal(first.status, 0, first.stderr);
      const chip = decodeSnapshot(new Uint8Array(readFileSync(snap))).devices.find(
        (d) => d.name === "kvm.irqchip",
      );
      assert.ok(chip !== undefined, "the snapshot has the kvm.irqchip section");
      // u32 version, then chip 0 (kvm_pic_state: irr, imr at byte 2, isr at 3, irq_base at 5).
      const master = chip.data.subarray(4, 4 + 512);
      assert.equal(master[2], 0xef, "IMR: only IRQ 4 open");
      assert.equal(master[3], 0x10, "ISR: IRQ 4 in service");
      assert.equal(master[5], 0x20, "vector base 0x20");
      const second = regvisor(["restore", snap], "abc");
      assert.equal(second.status, whole.status, second.stderr);
      // Where the echoed input falls between the 'I's depends on when stdin arrives.
      assert.equal(first.stdout, "IIII", "every 'I' before the snapshot");
      const out = first.stdout + second.stdout;
      assert.equal(out.replace(/[^I]/g, ""), whole.stdout.replace(/[^I]/g, ""), out);
      assert.equal(out.replace(/I/g, ""), "abc", "stdin echoed in order");
      assert.match(lastLine(second.stderr), /^regvisor: resumed .* at exit 12; /);
    },
  );
});
