/* Entry of the demo guest: S-mode, a0 = hart id, a1 = DTB address (both ignored). The code
   only uses pc-relative addressing, so the flat demo.bin runs wherever it is loaded; the stack
   lives just past the image (in .bss, which the loader must back with RAM). */
    .section .text.init
    .globl _start
_start:
    lla     sp, __stack_top
    li      t0, 0x2000              /* sstatus.FS = Initial (KVM starts with FPU off) */
    csrs    sstatus, t0
    lla     t0, __bss_start
    lla     t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:  call    main
    li      a7, 0x53525354          /* SBI SRST: shutdown, no reason */
    li      a6, 0
    li      a0, 0
    li      a1, 0
    ecall
3:  wfi
    j       3b
