/* MSI-X vectors 0x40-0x47 (counted per vector) and a periodic LAPIC timer (0x50, ~10 ms under
 * KVM's 1 GHz APIC bus) that bounds every wait. */
#include "guest.h"

volatile u32 msi_count[MSI_VECTORS];
volatile u64 timer_ticks;
static u64 lapic;

extern char irq0x40[], irq0x41[], irq0x42[], irq0x43[], irq0x44[], irq0x45[], irq0x46[], irq0x47[],
    irq0x50[];

void irq_dispatch(u64 vec)
{
    if (vec == 0x50) timer_ticks++;
    else if (vec >= MSI_VECTOR_BASE && vec < MSI_VECTOR_BASE + MSI_VECTORS) msi_count[vec - MSI_VECTOR_BASE]++;
    lapic_eoi(lapic);
}

u32 cpu_apic_id(void)
{
    u32 eax = 1, ebx, ecx = 0, edx;
    __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    return ebx >> 24;
}

void irq_setup(const struct acpi_info *ai)
{
    void *msi[MSI_VECTORS] = {irq0x40, irq0x41, irq0x42, irq0x43, irq0x44, irq0x45, irq0x46, irq0x47};
    lapic = ai->lapic_addr ? ai->lapic_addr : 0xfee00000ul;
    idt_install();
    for (int i = 0; i < MSI_VECTORS; i++) idt_set_gate(MSI_VECTOR_BASE + i, msi[i]);
    idt_set_gate(0x50, irq0x50);
    pic_mask_all();
    lapic_enable(lapic);
    mmio_write32(lapic + 0x3e0, 0xb);               /* divide by 1 */
    mmio_write32(lapic + 0x320, 0x50 | (1u << 17)); /* periodic, vector 0x50 */
    mmio_write32(lapic + 0x380, 10000000);
    __asm__ volatile("sti");
}

void wait_tick(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
