/* `regvisor run --mem 8G` x86 test guest, long mode: RAM above 4 GiB. Checks the word the VMM
   copied from this ELF's segment at 5 GiB, writes and reads back a word at 7 GiB, calls a
   function (its return address goes on the stack the VMM put at the top of RAM, 8 GiB), then
   prints on port 0xe9 and writes 42 to the exit port 0xf4 — or 99 on a mismatch. */
    .code64
    .globl _start
_start:
    movabs  $magic, %rdi                /* 0x140000000, placed by the VMM */
    mov     (%rdi), %rax
    movabs  $0x1122334455667788, %rbx
    cmp     %rbx, %rax
    jne     bad
    movabs  $0x1c0000000, %rdi          /* 7 GiB */
    movabs  $0x0123456789abcdef, %rax
    mov     %rax, (%rdi)
    mov     (%rdi), %rbx
    cmp     %rax, %rbx
    jne     bad
    call    say_ok
    mov     $42, %al
    out     %al, $0xf4
    hlt
bad:
    mov     $99, %al
    out     %al, $0xf4
    hlt

say_ok:
    lea     msg_ok(%rip), %rsi
1:  lodsb
    test    %al, %al
    jz      2f
    out     %al, $0xe9
    jmp     1b
2:  ret

msg_ok: .asciz "RAM above 4 GiB: ok\n"

    .section .high, "aw"
magic:  .quad 0x1122334455667788
