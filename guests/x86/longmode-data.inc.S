/*
 * GDT and identity-mapped page tables for longmode-entry.inc.S (#include this last: the
 * tables are page-aligned and would otherwise pad the code).
 */
        .balign 8
gdt:
        .quad   0                       /* null */
        .quad   0x00af9a000000ffff      /* 0x08: 64-bit code, DPL 0 */
        .quad   0x00cf92000000ffff      /* 0x10: data, DPL 0 */
        .quad   0x00cf9a000000ffff      /* 0x18: 32-bit code, DPL 0 */
gdt_end:
gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt

/* Identity map of the first 2 MiB with one large page: PML4[0] -> PDPT[0] -> PD[0]. */
        .balign 4096
pml4:
        .quad   pdpt + 0x3              /* present, writable */
        .fill   511, 8, 0
pdpt:
        .quad   pd + 0x3
        .fill   511, 8, 0
pd:
        .quad   0x0 + 0x83              /* present, writable, 2 MiB page at 0 */
        .fill   511, 8, 0
