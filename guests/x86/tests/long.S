/* `regvisor run` x86 test guest, long mode (the default for an ELF64): prints on port 0xe9 and
   on COM1 (polling the 16550's line status), checks that an unclaimed port and unclaimed MMIO
   read as all-ones (twice each, to show they are reported once), echoes whatever COM1 receives,
   then writes 42 to the exit port 0xf4. Runs on the stack the VMM set up (top of RAM). */
    .code64
    .globl _start
_start:
    lea     msg_long(%rip), %rsi
    call    puts_e9
    lea     msg_com1(%rip), %rsi
    call    puts_com1
    mov     %cr0, %rax                  /* paging must be on */
    bt      $31, %rax
    jnc     bad
    in      $0x60, %al                  /* nothing lives at port 0x60 */
    cmp     $0xff, %al
    jne     bad
    in      $0x60, %al
    cmp     $0xff, %al
    jne     bad
    lea     msg_port(%rip), %rsi
    call    puts_e9
    movabs  $0xd0000000, %rdi           /* above RAM, inside the 4 GiB identity map */
    movl    (%rdi), %eax
    cmp     $0xffffffff, %eax
    jne     bad
    movl    (%rdi), %eax
    cmp     $0xffffffff, %eax
    jne     bad
    movl    $0x1234, (%rdi)
    lea     msg_mmio(%rip), %rsi
    call    puts_e9
    lea     msg_input(%rip), %rsi
    call    puts_e9
1:  mov     $0x3fd, %dx                 /* LSR: data ready? */
    in      %dx, %al
    test    $0x01, %al
    jz      2f
    mov     $0x3f8, %dx                 /* RBR */
    in      %dx, %al
    out     %al, $0xe9
    jmp     1b
2:  mov     $'\n', %al
    out     %al, $0xe9
    mov     $42, %al
    out     %al, $0xf4
bad:
    mov     $99, %al
    out     %al, $0xf4
    hlt

puts_e9:                                /* rsi: NUL-terminated string */
    lodsb
    test    %al, %al
    jz      1f
    out     %al, $0xe9
    jmp     puts_e9
1:  ret

puts_com1:
    mov     $0x3fd, %dx                 /* wait for THRE */
    in      %dx, %al
    test    $0x20, %al
    jz      puts_com1
    lodsb
    test    %al, %al
    jz      1f
    mov     $0x3f8, %dx
    out     %al, %dx
    jmp     puts_com1
1:  ret

msg_long:   .asciz "long mode: port 0xe9\n"
msg_com1:   .asciz "long mode: COM1\n"
msg_port:   .asciz "unclaimed port reads all-ones\n"
msg_mmio:   .asciz "unclaimed mmio reads all-ones\n"
msg_input:  .asciz "COM1 input: "
