/* IDT, local APIC, IOAPIC and the legacy PIC: just enough to take the SCI. */
#include "guest.h"

struct idt_gate {
    u16 off_lo, sel;
    u8 ist, type;
    u16 off_mid;
    u32 off_hi, zero;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));

extern char exc0[], exc1[], exc2[], exc3[], exc4[], exc5[], exc6[], exc7[], exc8[], exc9[],
    exc10[], exc11[], exc12[], exc13[], exc14[], exc15[], exc16[], exc17[], exc18[], exc19[],
    exc20[], exc21[], exc22[], exc23[], exc24[], exc25[], exc26[], exc27[], exc28[], exc29[],
    exc30[], exc31[], sci_stub[];

void idt_set_gate(int vec, void *handler)
{
    u64 a = (u64)handler;
    idt[vec].off_lo = (u16)a;
    idt[vec].sel = 0x08;
    idt[vec].ist = 0;
    idt[vec].type = 0x8e;
    idt[vec].off_mid = (u16)(a >> 16);
    idt[vec].off_hi = (u32)(a >> 32);
    idt[vec].zero = 0;
}

void idt_install(void)
{
    void *exc[32] = {exc0, exc1, exc2, exc3, exc4, exc5, exc6, exc7, exc8, exc9, exc10,
        exc11, exc12, exc13, exc14, exc15, exc16, exc17, exc18, exc19, exc20, exc21, exc22,
        exc23, exc24, exc25, exc26, exc27, exc28, exc29, exc30, exc31};
    for (int i = 0; i < 32; i++) idt_set_gate(i, exc[i]);
    idt_set_gate(0x30, sci_stub);
    struct { u16 limit; u64 base; } __attribute__((packed)) ptr = { sizeof(idt) - 1, (u64)idt };
    __asm__ volatile("lidt %0" ::"m"(ptr));
}

void lapic_enable(u64 lapic)
{
    mmio_write32(lapic + 0x80, 0);          /* TPR: accept everything */
    mmio_write32(lapic + 0x350, 0x10000);   /* LINT0 masked: no ExtINT from the PIC */
    mmio_write32(lapic + 0xf0, 0x1ff);      /* software enable, spurious vector 0xff */
}

void lapic_eoi(u64 lapic) { mmio_write32(lapic + 0xb0, 0); }

void ioapic_route(u64 ioapic, u32 gsi, u8 vector, int level, int active_low, u8 dest)
{
    u32 lo = vector | (level ? 1u << 15 : 0) | (active_low ? 1u << 13 : 0);
    mmio_write32(ioapic, 0x11 + 2 * gsi);
    mmio_write32(ioapic + 0x10, (u32)dest << 24);
    mmio_write32(ioapic, 0x10 + 2 * gsi);
    mmio_write32(ioapic + 0x10, lo);
}

void pic_mask_all(void)
{
    outb(0x21, 0xff);
    outb(0xa1, 0xff);
}
