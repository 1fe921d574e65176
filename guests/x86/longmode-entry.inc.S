/*
 * Shared start-up for regvisor's x86 guests (#included by demo.S and exit-loop.S; not built on
 * its own): real mode -> 32-bit protected mode -> 64-bit long mode, then a jump to
 * `long_mode`, which the including file defines. Load the image at guest-physical 0x1000 and
 * start in real mode with CS.base = 0, CS.selector = 0, RIP = 0x1000; RAM must cover 0..2 MiB.
 *
 * The guest needs a CPUID with long mode (the VMM sets KVM_GET_SUPPORTED_CPUID with
 * KVM_SET_CPUID2; without it the EFER.LME write raises #GP). The identity-mapped page tables
 * are built into the image (see longmode-data.inc.S), so no loop runs before paging is on:
 * kvm_pvm emulates real-mode code instruction by instruction, and a CR3 write while still in
 * real mode stops it with KVM_EXIT_INTERNAL_ERROR, so the paging setup happens in protected
 * mode.
 */
        .set MSR_EFER, 0xc0000080
        .set EFER_LME, 0x100
        .set CR4_PAE, 0x20
        .set CR0_PE, 0x1
        .set CR0_PG, 0x80000000
        .set STACK_TOP, 0x1ff000

        .text
        .code16
        .globl start
start:
        cli
        xorw    %ax, %ax
        movw    %ax, %ds
        lgdtl   gdt_desc
        movl    %cr0, %eax
        orl     $CR0_PE, %eax
        movl    %eax, %cr0
        ljmpl   $0x18, $protected_mode

        .code32
protected_mode:
        movw    $0x10, %ax
        movw    %ax, %ds
        movl    $pml4, %eax
        movl    %eax, %cr3
        movl    %cr4, %eax
        orl     $CR4_PAE, %eax
        movl    %eax, %cr4
        movl    $MSR_EFER, %ecx
        rdmsr
        orl     $EFER_LME, %eax
        wrmsr
        movl    %cr0, %eax
        orl     $CR0_PG, %eax
        movl    %eax, %cr0
        ljmpl   $0x08, $long_mode

