/* Trap entry shared by the test guests. Convention: sscratch = 0 while in S-mode; while U-mode
   runs, sscratch holds the kernel stack pointer (set by run_user). Saves x1..x31 and the
   trapped sp into a frame, calls handle_trap(frame), restores and srets. run_user/user_return
   enter U-mode and come back (user_return is called from the C handler on a U-mode ecall). */
    .section .text
    .align  2
    .globl  trap_entry
trap_entry:
    csrrw   sp, sscratch, sp
    bnez    sp, 1f
    csrrw   sp, sscratch, zero      /* from S: sp back, sscratch = 0 */
1:  addi    sp, sp, -288
    sd      x1, 8(sp)
    sd      x3, 24(sp)
    sd      x4, 32(sp)
    sd      x5, 40(sp)
    sd      x6, 48(sp)
    sd      x7, 56(sp)
    sd      x8, 64(sp)
    sd      x9, 72(sp)
    sd      x10, 80(sp)
    sd      x11, 88(sp)
    sd      x12, 96(sp)
    sd      x13, 104(sp)
    sd      x14, 112(sp)
    sd      x15, 120(sp)
    sd      x16, 128(sp)
    sd      x17, 136(sp)
    sd      x18, 144(sp)
    sd      x19, 152(sp)
    sd      x20, 160(sp)
    sd      x21, 168(sp)
    sd      x22, 176(sp)
    sd      x23, 184(sp)
    sd      x24, 192(sp)
    sd      x25, 200(sp)
    sd      x26, 208(sp)
    sd      x27, 216(sp)
    sd      x28, 224(sp)
    sd      x29, 232(sp)
    sd      x30, 240(sp)
    sd      x31, 248(sp)
    csrrw   t0, sscratch, zero      /* user sp (0 if the trap came from S) */
    bnez    t0, 2f
    addi    t0, sp, 288
2:  sd      t0, 16(sp)
    csrr    t0, sepc
    sd      t0, 256(sp)
    csrr    t0, scause
    sd      t0, 264(sp)
    csrr    t0, stval
    sd      t0, 272(sp)
    mv      a0, sp
    call    handle_trap
    ld      t0, 256(sp)
    csrw    sepc, t0
    csrr    t0, sstatus
    andi    t0, t0, 0x100           /* returning to U? then sscratch = kernel sp */
    bnez    t0, 3f
    addi    t0, sp, 288
    csrw    sscratch, t0
3:  ld      x1, 8(sp)
    ld      x3, 24(sp)
    ld      x4, 32(sp)
    ld      x5, 40(sp)
    ld      x6, 48(sp)
    ld      x7, 56(sp)
    ld      x8, 64(sp)
    ld      x9, 72(sp)
    ld      x10, 80(sp)
    ld      x11, 88(sp)
    ld      x12, 96(sp)
    ld      x13, 104(sp)
    ld      x14, 112(sp)
    ld      x15, 120(sp)
    ld      x16, 128(sp)
    ld      x17, 136(sp)
    ld      x18, 144(sp)
    ld      x19, 152(sp)
    ld      x20, 160(sp)
    ld      x21, 168(sp)
    ld      x22, 176(sp)
    ld      x23, 184(sp)
    ld      x24, 192(sp)
    ld      x25, 200(sp)
    ld      x26, 208(sp)
    ld      x27, 216(sp)
    ld      x28, 224(sp)
    ld      x29, 232(sp)
    ld      x30, 240(sp)
    ld      x31, 248(sp)
    ld      x2, 16(sp)
    sret

/* uint64_t run_user(void (*fn)(void), uint64_t user_sp): runs fn in U-mode until it makes an
   ecall that the C handler answers with user_return(value). */
    .globl  run_user
run_user:
    addi    sp, sp, -112
    sd      ra, 0(sp)
    sd      s0, 8(sp)
    sd      s1, 16(sp)
    sd      s2, 24(sp)
    sd      s3, 32(sp)
    sd      s4, 40(sp)
    sd      s5, 48(sp)
    sd      s6, 56(sp)
    sd      s7, 64(sp)
    sd      s8, 72(sp)
    sd      s9, 80(sp)
    sd      s10, 88(sp)
    sd      s11, 96(sp)
    la      t0, kernel_ctx_sp
    sd      sp, 0(t0)
    csrw    sepc, a0
    li      t0, 0x100
    csrc    sstatus, t0             /* SPP = U */
    csrw    sscratch, sp
    mv      sp, a1
    sret

/* void user_return(uint64_t value): abandons the trap frame, back into run_user's caller. */
    .globl  user_return
user_return:
    la      t0, kernel_ctx_sp
    ld      sp, 0(t0)
    csrw    sscratch, zero
    ld      ra, 0(sp)
    ld      s0, 8(sp)
    ld      s1, 16(sp)
    ld      s2, 24(sp)
    ld      s3, 32(sp)
    ld      s4, 40(sp)
    ld      s5, 48(sp)
    ld      s6, 56(sp)
    ld      s7, 64(sp)
    ld      s8, 72(sp)
    ld      s9, 80(sp)
    ld      s10, 88(sp)
    ld      s11, 96(sp)
    addi    sp, sp, 112
    ret

    .section .bss
    .align  3
kernel_ctx_sp:
    .dword  0
