/* The Xen PVH ELF note (XEN_ELFNOTE_PHYS32_ENTRY = 18): a 32-bit physical entry point. */
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4                 /* name size */
    .long 4                 /* descriptor size */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .long pvh_entry
    .p2align 2
