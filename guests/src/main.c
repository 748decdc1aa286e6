/*
 * The test guest: reports what it was given (boot protocol, command line, E820 map, initrd,
 * ACPI tables) over COM1, then does what `action=` on its command line asks:
 *   poweroff (default)  ACPI S5 through PM1a_CNT with the \_S5 values from the DSDT
 *   reset | cf9 | acpireset | triplefault
 *                        reset the machine; on the boot after the reset, report and power off
 *   powerbutton          wait for the ACPI power button (SCI), then power off
 *   demo                 a banner, then the same as powerbutton
 *   smp                  bring up every AP listed in the MADT, then power off
 *   bench count=N        N port writes to 0x80 (one VM exit each), then power off
 *   badio                unknown ports and MMIO, bad UART/PM writes, then power off
 *   tick                 print "tick N" forever
 *   halt                 halt forever
 *   pci                  list bus 0 (ECAM if MCFG has it, else conf1): IDs, BARs, capabilities
 *   blk ops=...          virtio-blk requests one by one (see blk.c)
 *   blkbad               a hostile virtio-blk driver, then bad PCI accesses (see blkbad.c)
 *   blkbench rw= bs= depth= mb=   sequential virtio-blk throughput (see blkbench.c)
 * `quiet` suppresses the report.
 */
#include "guest.h"

#define BOOT_MARK_ADDR 0x5000ul
#define BOOT_MARK 0x544f4f4245524f4dul /* survives a reset: RAM is not cleared */

static struct boot_info bi;
static struct acpi_info ai;

static int second_boot(void)
{
    volatile u64 *mark = (volatile u64 *)BOOT_MARK_ADDR;
    if (*mark == BOOT_MARK) {
        *mark = 0;
        puts("reset: this is the boot after the reset\n");
        return 1;
    }
    *mark = BOOT_MARK;
    return 0;
}

static void bad_io(void)
{
    puts("badio: unknown ports\n");
    (void)inb(0x1234);
    outb(0x1234, 0x55);
    (void)inl(0xdead & ~3);
    outw(0x2000, 0xbeef);
    puts("badio: unknown MMIO\n");
    (void)mmio_read32(0xd0000000ul);
    mmio_write32(0xd0000000ul, 0x12345678);
    (void)mmio_read8(0xfed00000ul);
    puts("badio: bad UART and PM writes\n");
    outb(0x3f8 + 3, 0xff);
    outb(0x3f8 + 7, 0xaa);
    (void)inb(0x3f8 + 6);
    uart_init();
    if (ai.pm1a_cnt && !ai.hw_reduced) {
        outw((u16)ai.pm1a_cnt, (u16)((7u << 10) | (1u << 13))); /* SLP_EN with an unknown type */
        outl((u16)ai.pm1a_evt, 0xffffffffu);
    }
    outb(0x64, 0x12);
    outb(0x70, 0xff);
    (void)inb(0x71);
    puts("badio: survived\n");
}

static void bench(void)
{
    char buf[24];
    u64 n = cmdline_get(bi.cmdline, "count", buf, sizeof(buf)) ? parse_u64(buf) : 1000;
    for (u64 i = 0; i < n; i++) outb(0x80, (u8)i);
    puts("bench: ");
    put_dec(n);
    puts(" port writes done\n");
}

void guest_main(int kind, u64 info)
{
    uart_init();
    puts("testguest: boot protocol ");
    puts(kind == BOOT_PVH ? "pvh\n" : "linux64\n");
    boot_info_parse(&bi, kind, info);
    int quiet = cmdline_has(bi.cmdline, "quiet");
    uart_mute(quiet);
    boot_info_print(&bi);
    acpi_scan(bi.rsdp, &ai);
    uart_mute(0);

    char action[32] = "poweroff";
    cmdline_get(bi.cmdline, "action", action, sizeof(action));
    puts("action: ");
    puts(action);
    puts("\n");

    if (!memcmp(action, "reset", 6) || !memcmp(action, "cf9", 4) || !memcmp(action, "acpireset", 10)
        || !memcmp(action, "triplefault", 12)) {
        if (!second_boot()) {
            if (action[0] == 'r') reset_i8042();
            else if (action[0] == 'c') reset_cf9();
            else if (action[0] == 'a') reset_acpi(&ai);
            else triple_fault();
            delay(100000);
            puts("reset: still running\n");
            halt_forever();
        }
    } else if (!memcmp(action, "powerbutton", 12)) {
        wait_power_button(&ai);
    } else if (!memcmp(action, "demo", 5)) {
        puts("\n  *** vmm demo guest ***\n  Running on ");
        put_dec(ai.cpu_count);
        puts(" CPU(s). Press the power button (system_powerdown) to turn me off.\n\n");
        wait_power_button(&ai);
    } else if (!memcmp(action, "smp", 4)) {
        u32 up = smp_start_aps(&ai);
        puts("smp: ");
        put_dec(up);
        puts(" of ");
        put_dec(ai.cpu_count);
        puts(" cpus up\n");
    } else if (!memcmp(action, "bench", 6)) {
        bench();
    } else if (!memcmp(action, "badio", 6)) {
        bad_io();
    } else if (!memcmp(action, "tick", 5)) {
        for (u64 n = 0;; n++) {
            puts("tick ");
            put_dec(n);
            puts("\n");
            delay(20000);
        }
    } else if (!memcmp(action, "pci", 4)) {
        pci_init(&ai);
        pci_report();
    } else if (!memcmp(action, "blk", 4)) {
        blk_ops(&ai, bi.cmdline);
    } else if (!memcmp(action, "blkbad", 7)) {
        blk_bad(&ai, bi.cmdline);
    } else if (!memcmp(action, "blkbench", 9)) {
        blk_bench(&ai, bi.cmdline);
    } else if (!memcmp(action, "halt", 5)) {
        halt_forever();
    } else if (memcmp(action, "poweroff", 9)) {
        puts("unknown action, powering off\n");
    }
    power_off_s5(&ai);
    halt_forever();
}
