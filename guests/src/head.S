/*
 * Entry points, descriptor tables, page tables, the AP trampoline and the
 * interrupt stubs of the test guest.
 *
 * 0x100000  pvh_entry      32-bit protected mode, paging off, %ebx = hvm_start_info (PVH ELF note)
 * 0x100200  linux64_entry  64-bit mode, %rsi = boot_params (Linux 64-bit boot protocol:
 *                          bzImage at code32_start + 0x200, ELF vmlinux at e_entry)
 * Both switch to the guest's own GDT and page tables (identity map of the low 4 GiB with
 * 2 MiB pages, the top GiB uncached for the LAPIC/IOAPIC) and call guest_main(kind, info).
 */
#define BOOT_PVH   1
#define BOOT_LINUX 2
#define CODE64 0x08
#define DATA   0x10
#define CODE32 0x18
#define AP_STACKS 16

    .section .text.head, "ax"
    .code32
    .globl pvh_entry
pvh_entry:
    cli
    cld
    mov %ebx, %esi
    mov $BOOT_PVH, %edi
    lgdt gdt_ptr
    mov %cr4, %eax
    or $0x20, %eax                  /* PAE */
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx           /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax            /* PG | PE */
    mov %eax, %cr0
    ljmp $CODE64, $common64

    .org 0x200
    .code64
    .globl linux64_entry
linux64_entry:
    cli
    cld
    mov $BOOT_LINUX, %edi
    lgdt gdt_ptr
    mov $pml4, %rax
    mov %rax, %cr3
    pushq $CODE64
    movabs $common64, %rax
    pushq %rax
    lretq

common64:
    mov $DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov %edi, %r12d
    mov %esi, %r13d                 /* both info pointers are below 4 GiB */
    lea __bss_start(%rip), %rdi     /* the loaders copy file bytes only: clear .bss */
    lea __bss_end(%rip), %rcx
    sub %rdi, %rcx
    xor %eax, %eax
    rep stosb
    lea bsp_stack_top(%rip), %rsp
    mov %r12, %rdi
    mov %r13, %rsi
    call guest_main
1:  cli
    hlt
    jmp 1b

/* Application processors arrive here from the trampoline, in 32-bit protected mode. */
    .code32
    .globl ap_entry32
ap_entry32:
    mov $DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %cr4, %eax
    or $0x20, %eax
    mov %eax, %cr4
    mov $pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax
    mov %eax, %cr0
    ljmp $CODE64, $ap_entry64

    .code64
ap_entry64:
    mov $DATA, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $1, %eax
    lock xadd %eax, ap_next_stack(%rip)
    and $(AP_STACKS - 1), %eax
    inc %eax
    shl $12, %eax
    lea ap_stacks(%rip), %rsp
    add %rax, %rsp
    call ap_main
1:  cli
    hlt
    jmp 1b

/*
 * Real-mode trampoline, copied by the BSP to TRAMPOLINE_BASE (0x3000, SIPI vector 0x03).
 * It only switches to 32-bit protected mode; everything else happens in ap_entry32.
 */
#define TRAMPOLINE_BASE 0x3000
    .code16
    .globl ap_trampoline, ap_trampoline_end
ap_trampoline:
    cli
    xor %ax, %ax
    mov %ax, %ds
    lgdtl TRAMPOLINE_BASE + (tr_gdt_ptr - ap_trampoline)
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $CODE32, $ap_entry32
    .p2align 2
tr_gdt_ptr:
    .word gdt_end - gdt - 1
    .long gdt
ap_trampoline_end:

    .code64
/* Exception stubs: vectors 0-31 print their number and halt. */
.macro EXC vec, has_err
    .globl exc\vec
exc\vec:
    .if \has_err == 0
    pushq $0
    .endif
    pushq $\vec
    jmp exc_common
.endm
EXC 0,0; EXC 1,0; EXC 2,0; EXC 3,0; EXC 4,0; EXC 5,0; EXC 6,0; EXC 7,0
EXC 8,1; EXC 9,0; EXC 10,1; EXC 11,1; EXC 12,1; EXC 13,1; EXC 14,1; EXC 15,0
EXC 16,0; EXC 17,1; EXC 18,0; EXC 19,0; EXC 20,0; EXC 21,1; EXC 22,0; EXC 23,0
EXC 24,0; EXC 25,0; EXC 26,0; EXC 27,0; EXC 28,0; EXC 29,1; EXC 30,1; EXC 31,0

exc_common:
    mov (%rsp), %rdi                /* vector */
    mov 8(%rsp), %rsi               /* error code */
    mov 16(%rsp), %rdx              /* rip */
    and $-16, %rsp
    call exception_report
1:  cli
    hlt
    jmp 1b

/* Vector 0x30: the ACPI SCI (through the IOAPIC). */
    .globl sci_stub
sci_stub:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    call sci_interrupt
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq

/* Vectors 0x40-0x47 (MSI-X) and 0x50 (LAPIC timer): irq_dispatch(vector), then iretq. */
.macro IRQ vec
    .globl irq\vec
irq\vec:
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    mov $\vec, %edi
    call irq_dispatch
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq
.endm
IRQ 0x40; IRQ 0x41; IRQ 0x42; IRQ 0x43; IRQ 0x44; IRQ 0x45; IRQ 0x46; IRQ 0x47; IRQ 0x50

    .data
    .p2align 3
gdt:
    .quad 0
    .quad 0x00af9a000000ffff        /* 0x08 64-bit code */
    .quad 0x00cf92000000ffff        /* 0x10 data */
    .quad 0x00cf9a000000ffff        /* 0x18 32-bit code */
gdt_end:
    .p2align 3
    .word 0, 0, 0
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt

    .p2align 12
    .globl pml4
pml4:
    .quad pdpt + 0x3
    .fill 511, 8, 0
pdpt:
    .quad pd + 0x0003
    .quad pd + 0x1003
    .quad pd + 0x2003
    .quad pd + 0x3003
    .fill 508, 8, 0
pd:
    .set i, 0
    .rept 1536
    .quad (i << 21) | 0x83          /* present, writable, 2 MiB */
    .set i, i + 1
    .endr
    .rept 512
    .quad (i << 21) | 0x9b          /* + PWT | PCD: MMIO */
    .set i, i + 1
    .endr

    .p2align 2
ap_next_stack:
    .long 0

    .section .stack, "aw", @nobits   /* not cleared at entry: only the stacks live here */
    .p2align 12
bsp_stack:
    .skip 16384
bsp_stack_top:
ap_stacks:
    .skip 4096 * (AP_STACKS + 1)
