/*
 * regvisor x86 benchmark guest (GNU as). Regenerate exit-loop.bin with ./build.sh.
 *
 * After longmode-entry.inc.S, it loops on a one-byte OUT to port 0x10 forever, so every
 * KVM_RUN returns one KVM_EXIT_IO; nothing in the loop touches a general-purpose register, so
 * a VMM may change any of them between exits (bench/kvm.ts counts in RAX).
 */
        .set LOOP_PORT, 0x10
#include "longmode-entry.inc.S"

        .code64
long_mode:
1:      outb    %al, $LOOP_PORT
        jmp     1b

#include "longmode-data.inc.S"
