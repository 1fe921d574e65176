/* `regvisor run` x86 test guest, real mode (the default for a flat binary), loaded at 0x7c00:
   prints on COM1, checks CR0.PE = 0, then writes 0 to the exit port (status 0). */
    .code16
    .globl _start
_start:
    mov     $msg, %si
1:  mov     $0x3fd, %dx
    in      %dx, %al
    test    $0x20, %al
    jz      1b
    lodsb
    test    %al, %al
    jz      2f
    mov     $0x3f8, %dx
    out     %al, %dx
    jmp     1b
2:  mov     %cr0, %eax
    test    $1, %eax
    jnz     bad
    mov     $0, %al
    out     %al, $0xf4
bad:
    mov     $97, %al
    out     %al, $0xf4
    hlt

msg: .asciz "real mode: COM1\n"
