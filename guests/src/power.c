/* Ways to leave: ACPI S5, the resets, the power button, a triple fault. */
#include "guest.h"

static const struct acpi_info *sci_acpi;
static volatile int button_pressed;

static void gas_write8(u8 space, u64 addr, u8 value)
{
    if (space == 1) outb((u16)addr, value);
    else if (space == 0) mmio_write8(addr, value);
}

void power_off_s5(const struct acpi_info *ai)
{
    if (!ai->s5_found) {
        puts("poweroff: no \\_S5 in the DSDT\n");
        return;
    }
    if (!ai->hw_reduced && ai->pm1a_cnt) {
        puts("poweroff: PM1a_CNT ");
        put_hex(ai->pm1a_cnt, 4);
        puts(" SLP_TYP ");
        put_dec(ai->s5_typ_a);
        puts("\n");
        outw((u16)ai->pm1a_cnt, (u16)(((u16)ai->s5_typ_a << 10) | (1u << 13)));
    } else if (ai->sleep_ctl_addr) {
        puts("poweroff: sleep control register SLP_TYP ");
        put_dec(ai->s5_typ_a);
        puts("\n");
        gas_write8(ai->sleep_ctl_space, ai->sleep_ctl_addr, (u8)((ai->s5_typ_a << 2) | (1u << 5)));
    } else {
        puts("poweroff: no PM1a control block\n");
        return;
    }
    delay(100000);
    puts("poweroff: still running\n");
}

void reset_i8042(void) { outb(0x64, 0xfe); }

void reset_cf9(void)
{
    outb(0xcf9, 0x02);
    outb(0xcf9, 0x06);
}

void reset_acpi(const struct acpi_info *ai)
{
    if (!ai->reset_supported) {
        puts("reset: no ACPI reset register\n");
        return;
    }
    gas_write8(ai->reset_space, ai->reset_addr, ai->reset_value);
}

void sci_interrupt(void)
{
    u16 sts = inw((u16)sci_acpi->pm1a_evt);
    if (sts & 0x100) {
        outw((u16)sci_acpi->pm1a_evt, 0x100); /* write 1 to clear PWRBTN_STS */
        button_pressed = 1;
    }
    lapic_eoi(sci_acpi->lapic_addr);
}

void wait_power_button(const struct acpi_info *ai)
{
    if (ai->hw_reduced || !ai->pm1a_evt || !ai->lapic_addr || !ai->ioapic_addr) {
        puts("powerbutton: no fixed-feature power button here\n");
        return;
    }
    sci_acpi = ai;
    if (ai->pm1a_cnt && !(inw((u16)ai->pm1a_cnt) & 1) && ai->smi_cmd && ai->acpi_enable) {
        outb((u16)ai->smi_cmd, ai->acpi_enable); /* switch the chipset to ACPI mode */
        for (int i = 0; i < 1000 && !(inw((u16)ai->pm1a_cnt) & 1); i++) cpu_relax();
    }
    u16 en = (u16)(ai->pm1a_evt + ai->pm1_evt_len / 2);
    outw((u16)ai->pm1a_evt, 0xffff);
    outw(en, 0x100); /* PWRBTN_EN */
    u32 ebx;
    __asm__ volatile("cpuid" : "=b"(ebx) : "a"(1), "c"(0) : "edx");
    idt_install();
    pic_mask_all();
    lapic_enable(ai->lapic_addr);
    ioapic_route(ai->ioapic_addr, ai->sci_gsi, 0x30, ai->sci_level, ai->sci_active_low, (u8)(ebx >> 24));
    puts("powerbutton: waiting (SCI gsi ");
    put_dec(ai->sci_gsi);
    puts(")\n");
    while (!button_pressed) __asm__ volatile("sti; hlt; cli");
    puts("powerbutton: pressed\n");
}

void triple_fault(void)
{
    struct { u16 limit; u64 base; } __attribute__((packed)) none = {0, 0};
    __asm__ volatile("lidt %0; ud2" ::"m"(none));
}

void exception_report(u64 vector, u64 error, u64 rip)
{
    uart_mute(0);
    puts("exception ");
    put_dec(vector);
    puts(" error ");
    put_hex(error, 8);
    puts(" rip ");
    put_hex(rip, 16);
    puts("\n");
}
