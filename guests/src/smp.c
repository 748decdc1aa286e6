/* Application processors: INIT-SIPI-SIPI through the local APIC, as an OS does. */
#include "guest.h"

#define TRAMPOLINE_BASE 0x3000
extern char ap_trampoline[], ap_trampoline_end[];
static volatile u32 aps_up;

void ap_main(void)
{
    __atomic_fetch_add(&aps_up, 1, __ATOMIC_SEQ_CST);
}

static void icr_send(u64 lapic, u8 dest, u32 low)
{
    mmio_write32(lapic + 0x310, (u32)dest << 24);
    mmio_write32(lapic + 0x300, low);
    for (int i = 0; i < 100000 && (mmio_read32(lapic + 0x300) & (1u << 12)); i++) cpu_relax();
}

u32 smp_start_aps(const struct acpi_info *ai)
{
    u32 ebx;
    __asm__ volatile("cpuid" : "=b"(ebx) : "a"(1), "c"(0) : "edx");
    u8 me = (u8)(ebx >> 24);
    u64 lapic = ai->lapic_addr ? ai->lapic_addr : 0xfee00000;
    memcpy((void *)TRAMPOLINE_BASE, ap_trampoline, (u64)(ap_trampoline_end - ap_trampoline));
    u32 n = ai->cpu_count < MAX_CPUS ? ai->cpu_count : MAX_CPUS, started = 0;
    for (u32 i = 0; i < n; i++) {
        u8 id = ai->apic_ids[i];
        if (id == me) continue;
        icr_send(lapic, id, 0x4500);                          /* INIT */
        delay(1000);
        icr_send(lapic, id, 0x4600 | (TRAMPOLINE_BASE >> 12)); /* SIPI */
        delay(200);
        icr_send(lapic, id, 0x4600 | (TRAMPOLINE_BASE >> 12));
        started++;
    }
    for (u64 i = 0; i < 50000000 && aps_up < started; i++) cpu_relax();
    return aps_up + 1;
}
