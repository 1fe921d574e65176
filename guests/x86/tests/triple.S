/* An exception with no IDT: #UD cannot be delivered, nor can the double fault, so the CPU
   triple-faults (KVM_EXIT_SHUTDOWN): a fault the VMM cannot handle (status 125). */
    .code64
    .globl _start
_start:
    mov     $'u', %al
    out     %al, $0xe9
    ud2
