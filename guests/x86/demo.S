/*
 * regvisor x86 demo guest (GNU as, AT&T syntax). Regenerate demo.bin with ./build.sh.
 *
 * Contract with the VMM (src/backends/kvm/demo.ts), on top of longmode-entry.inc.S's:
 *   - port 0xE9 OUT (1 byte): console text;
 *   - port 0xEA IN (4 bytes): the VMM answers n, the index of the Fibonacci number to compute;
 *   - the guest ends with HLT, leaving fib(n) in RBX and n in R12.
 */
        .set CONSOLE_PORT, 0xe9
        .set INPUT_PORT, 0xea
#include "longmode-entry.inc.S"
        .code64
long_mode:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %ss
        movq    $STACK_TOP, %rsp

        leaq    greeting(%rip), %rsi
        call    puts

        /* n comes from the VMM. */
        movw    $INPUT_PORT, %dx
        inl     %dx, %eax
        movl    %eax, %r12d

        /* fib(n) in 64-bit arithmetic: rbx = fib(i), rcx = fib(i + 1). */
        xorl    %ebx, %ebx
        movl    $1, %ecx
        movq    %r12, %rdi
1:      testq   %rdi, %rdi
        jz      2f
        leaq    (%rbx, %rcx), %rax
        movq    %rcx, %rbx
        movq    %rax, %rcx
        decq    %rdi
        jmp     1b
2:
        leaq    fib_open(%rip), %rsi
        call    puts
        movq    %r12, %rax
        call    put_u64
        leaq    fib_close(%rip), %rsi
        call    puts
        movq    %rbx, %rax
        call    put_u64
        movb    $'\n', %al
        call    putc
        hlt
        /* Not reached unless the VMM resumes after HLT. */
        jmp     .

/* putc: writes AL to the console port. Clobbers DX. */
putc:
        movw    $CONSOLE_PORT, %dx
        outb    %al, %dx
        ret

/* puts: writes the NUL-terminated string at RSI. Clobbers RAX, RDX, RSI. */
puts:
        lodsb
        testb   %al, %al
        jz      1f
        call    putc
        jmp     puts
1:      ret

/* put_u64: writes RAX in decimal through a 32-byte buffer on the stack. Clobbers RAX, RDX,
 * RSI, R8, R9. */
put_u64:
        subq    $32, %rsp
        leaq    31(%rsp), %r9
        movb    $0, (%r9)
        movq    $10, %r8
1:      xorl    %edx, %edx
        divq    %r8
        addb    $'0', %dl
        decq    %r9
        movb    %dl, (%r9)
        testq   %rax, %rax
        jnz     1b
        movq    %r9, %rsi
        call    puts
        addq    $32, %rsp
        ret

greeting:
        .asciz  "Hello from the regvisor demo guest, running in 64-bit long mode.\n"
fib_open:
        .asciz  "fib("
fib_close:
        .asciz  ") = "

#include "longmode-data.inc.S"
