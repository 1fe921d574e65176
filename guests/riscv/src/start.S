/* Entry of every test guest: S-mode, a0 = hart id, a1 = DTB (ignored). Sets up the stack,
   turns the FPU on (KVM starts the guest with sstatus.FS = Off), clears .bss, installs the trap
   vector, runs main() and shuts down through SBI SRST (reason 0: OpenSBI rejects others). */
    .section .text.init
    .globl _start
_start:
    la      sp, __stack_top
    li      t0, 0x2000              /* sstatus.FS = Initial */
    csrs    sstatus, t0
    csrw    sscratch, zero
    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:  la      t0, trap_entry
    csrw    stvec, t0
    call    main
    li      a7, 0x53525354          /* SRST */
    li      a6, 0                   /* system_reset */
    li      a0, 0                   /* type: shutdown */
    li      a1, 0                   /* reason: none */
    ecall
3:  wfi
    j       3b
