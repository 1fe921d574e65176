/* Entry of every `regvisor run` RISC-V test guest. The VMM starts it as KVM starts a guest:
   S-mode, a0 = hart id, a1 = device tree address; both are passed on to main(hart, dtb).
   main's return value becomes the SBI SRST shutdown reason, which `regvisor run` turns into
   its exit status. */
    .section .text.init
    .globl _start
_start:
    la      sp, __stack_top
    call    main
    mv      a1, a0                  /* reason: main's return value */
    li      a0, 0                   /* type: shutdown */
    li      a6, 0                   /* FID 0: system_reset */
    li      a7, 0x53525354          /* EID "SRST" */
    ecall
1:  j       1b
