/* `regvisor run` x86 test guest, 32-bit protected mode (the default for an ELF32; also built as
   a flat binary for --x86-mode protected): prints on port 0xe9, checks CR0.PE = 1 and
   CR0.PG = 0 (flat segments, no paging), then halts with interrupts disabled (status 0). */
    .code32
    .globl _start
_start:
    mov     $msg, %esi
1:  lodsb
    test    %al, %al
    jz      2f
    out     %al, $0xe9
    jmp     1b
2:  mov     %cr0, %eax
    test    $1, %eax
    jz      bad
    test    $0x80000000, %eax
    jnz     bad
    cli
    hlt
bad:
    mov     $98, %al
    out     %al, $0xf4
    hlt

msg: .asciz "protected mode, paging off\n"
