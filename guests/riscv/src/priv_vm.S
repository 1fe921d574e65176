/* Position-independent routines that priv_vm.c copies into mapped pages. */
    .section .text
    .align  2
    .globl  pic_ret42, pic_ret42_end
pic_ret42:                          /* S-mode code on an execute-only page */
    li      a0, 42
    ret
pic_ret42_end:

    .align  5
    .globl  user_code, user_code_end
user_code:                          /* U-mode, at VA 0x204000; entry offsets below */
    li      t0, 0x203000            /* +0: load and store through a U page */
    ld      a0, 0(t0)
    li      t1, 0x1234
    sd      t1, 8(t0)
    ld      t1, 8(t0)
    add     a0, a0, t1
    ecall
    .align  5
    li      t0, 0x80200000          /* +32: touch a supervisor page: page fault, skipped */
    li      a0, 0x66
    ld      a0, 0(t0)
    ecall
    .align  5
    li      t0, 0x205000            /* +64: unmapped page */
    li      a0, 0x67
    sd      a0, 0(t0)
    ecall
user_code_end:
