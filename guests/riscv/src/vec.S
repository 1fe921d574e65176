/* Vector table for the vectored-stvec test: entry n notes n in vec_hit, then joins trap_entry. */
    .section .text
    .align  8
    .globl  vec_table
vec_table:
    .option push
    .option norvc
    j       trap_entry
    j       vec1
    j       trap_entry
    j       trap_entry
    j       trap_entry
    j       vec5
    j       trap_entry
    j       trap_entry
    j       trap_entry
    j       vec9
    .option pop
vec1:
    addi    sp, sp, -16
    sd      t0, 0(sp)
    sd      t1, 8(sp)
    li      t0, 1
    j       vec_note
vec5:
    addi    sp, sp, -16
    sd      t0, 0(sp)
    sd      t1, 8(sp)
    li      t0, 5
    j       vec_note
vec9:
    addi    sp, sp, -16
    sd      t0, 0(sp)
    sd      t1, 8(sp)
    li      t0, 9
vec_note:
    la      t1, vec_hit
    sd      t0, 0(t1)
    ld      t0, 0(sp)
    ld      t1, 8(sp)
    addi    sp, sp, 16
    j       trap_entry

    .section .bss
    .align  3
    .globl  vec_hit
vec_hit:
    .dword  0
