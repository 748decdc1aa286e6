/*
 * A minimal bzImage setup area (boot sector + one setup sector) whose header tells a loader
 * that the protected-mode payload behind it supports the 64-bit boot protocol
 * (XLF_KERNEL_64: entry at code32_start + 0x200, %rsi = boot_params).
 * There is no real-mode setup code: this image boots only through the 64-bit protocol.
 */
    .section .text
    .code16
    .globl _start
_start:
    .org 0x1f1
    .byte 1                 /* setup_sects */
    .word 0                 /* root_flags */
    .long 0                 /* syssize (unused by the 64-bit protocol) */
    .word 0                 /* ram_size */
    .word 0                 /* vid_mode */
    .word 0                 /* root_dev */
    .word 0xAA55            /* boot_flag */
    .org 0x200
    .byte 0xeb, 0xfe        /* jump: spin (no real-mode code) */
    .ascii "HdrS"           /* header */
    .word 0x020f            /* version 2.15 */
    .long 0                 /* realmode_swtch */
    .word 0                 /* start_sys_seg */
    .word 0                 /* kernel_version */
    .byte 0                 /* type_of_loader */
    .byte 0x01              /* loadflags: LOADED_HIGH */
    .word 0                 /* setup_move_size */
    .long 0x100000          /* code32_start */
    .long 0                 /* ramdisk_image */
    .long 0                 /* ramdisk_size */
    .long 0                 /* bootsect_kludge */
    .word 0                 /* heap_end_ptr */
    .byte 0                 /* ext_loader_ver */
    .byte 0                 /* ext_loader_type */
    .long 0                 /* cmd_line_ptr */
    .long 0x7fffffff        /* initrd_addr_max */
    .long 0x200000          /* kernel_alignment */
    .byte 0                 /* relocatable_kernel */
    .byte 0                 /* min_alignment */
    .word 0x0001            /* xloadflags: XLF_KERNEL_64 */
    .long 2047              /* cmdline_size */
    .long 0                 /* hardware_subarch */
    .quad 0                 /* hardware_subarch_data */
    .long 0                 /* payload_offset */
    .long 0                 /* payload_length */
    .quad 0                 /* setup_data */
    .quad 0x100000          /* pref_address */
    .long 0x400000          /* init_size */
    .long 0                 /* handover_offset */
    .long 0                 /* kernel_info_offset */
    .org 0x400
