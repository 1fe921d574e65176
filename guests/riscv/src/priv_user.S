/* U-mode code for priv_user.c. Each routine ends with an ecall whose a0 is the result. */
    .section .text
    .align  2
    .globl  user_sum, user_sum_ecall
user_sum:
    li      a0, 0
    li      t0, 100
1:  add     a0, a0, t0
    addi    t0, t0, -1
    bnez    t0, 1b
user_sum_ecall:
    ecall
    j       .

    .globl  user_privileged
user_privileged:                    /* each privileged instruction traps and is skipped */
    li      a0, 0x55
    csrr    a0, sstatus
    sret
    sfence.vma
    csrw    sscratch, a0
    ecall
    j       .

    .globl  user_rdtime
user_rdtime:
    li      a0, 0x77
    rdtime  a0
    ecall
    j       .

    .globl  user_ebreak, user_ebreak_insn
user_ebreak:
user_ebreak_insn:
    ebreak
    li      a0, 9
    ecall
    j       .

    .globl  user_spin
user_spin:                          /* runs long enough for a pending interrupt to be taken */
    li      t0, 50
1:  addi    t0, t0, -1
    bnez    t0, 1b
    li      a0, 3
    ecall
    j       .
