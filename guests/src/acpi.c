/*
 * ACPI discovery: RSDP (from the boot info or the BIOS area scan), RSDT/XSDT, every table's
 * checksum, the MADT (CPUs, IOAPIC, interrupt overrides), the FADT (PM1a blocks, SCI, reset
 * register, sleep control register) and the \_S5 package of the DSDT.
 */
#include "guest.h"

static u8 sum8(const u8 *p, u64 n)
{
    u8 s = 0;
    while (n--) s = (u8)(s + *p++);
    return s;
}

static u64 rsdp_scan(u64 from, u64 to)
{
    for (u64 a = from; a < to; a += 16)
        if (!memcmp((const void *)a, "RSD PTR ", 8) && sum8((const u8 *)a, 20) == 0) return a;
    return 0;
}

static void put_sig(const u8 *t)
{
    for (int i = 0; i < 4; i++) putc((t[i] >= 32 && t[i] < 127) ? (char)t[i] : '?');
}

/* One table: print its signature, length and whether its checksum holds. */
static int check_table(const u8 *t)
{
    u32 len = *(const u32 *)(t + 4);
    int ok = len >= 36 && len < (1u << 20) && sum8(t, len) == 0;
    puts("acpi: ");
    put_sig(t);
    puts(" at ");
    put_hex((u64)t, 8);
    puts(" len ");
    put_dec(len);
    puts(ok ? " checksum ok\n" : " checksum BAD\n");
    return ok;
}

static u32 pkg_length(const u8 **p)
{
    u8 lead = **p;
    u32 follow = lead >> 6, len = lead & (follow ? 0x0f : 0x3f);
    (*p)++;
    for (u32 i = 0; i < follow; i++) { len |= (u32)**p << (4 + 8 * i); (*p)++; }
    return len;
}

static int aml_byte_const(const u8 **p, u8 *out)
{
    switch (**p) {
    case 0x00: *out = 0; (*p)++; return 1;
    case 0x01: *out = 1; (*p)++; return 1;
    case 0xff: *out = 0xff; (*p)++; return 1;
    case 0x0a: *out = (*p)[1]; *p += 2; return 1;
    case 0x0b: *out = (*p)[1]; *p += 3; return 1;  /* WordPrefix: low byte */
    case 0x0c: *out = (*p)[1]; *p += 5; return 1;  /* DWordPrefix */
    default: return 0;
    }
}

/* Name(\_S5, Package() { SLP_TYPa, SLP_TYPb, ... }) */
static void parse_s5(const u8 *dsdt, struct acpi_info *ai)
{
    u32 len = *(const u32 *)(dsdt + 4);
    for (u32 i = 36; i + 8 < len; i++) {
        if (memcmp(dsdt + i, "_S5_", 4)) continue;
        if (!(dsdt[i - 1] == 0x08 || (dsdt[i - 1] == '\\' && dsdt[i - 2] == 0x08))) continue;
        const u8 *p = dsdt + i + 4;
        if (*p++ != 0x12) continue; /* PackageOp */
        pkg_length(&p);
        p++; /* NumElements */
        if (aml_byte_const(&p, &ai->s5_typ_a) && aml_byte_const(&p, &ai->s5_typ_b)) {
            ai->s5_found = 1;
            return;
        }
    }
}

static void parse_fadt(const u8 *f, struct acpi_info *ai)
{
    u32 len = *(const u32 *)(f + 4);
    ai->sci_irq = *(const u16 *)(f + 46);
    ai->sci_gsi = ai->sci_irq;
    ai->smi_cmd = *(const u32 *)(f + 48);
    ai->acpi_enable = f[52];
    ai->pm1a_evt = *(const u32 *)(f + 56);
    ai->pm1a_cnt = *(const u32 *)(f + 64);
    ai->pm1_evt_len = f[88];
    ai->pm_tmr = *(const u32 *)(f + 76);
    u32 flags = len >= 116 ? *(const u32 *)(f + 112) : 0;
    ai->hw_reduced = (flags >> 20) & 1;
    ai->pm_tmr_32bit = (flags >> 8) & 1;
    if (len >= 129 && (flags & (1u << 10))) {
        ai->reset_supported = 1;
        ai->reset_space = f[116];
        ai->reset_addr = *(const u64 *)(f + 120);
        ai->reset_value = f[128];
    }
    if (len >= 268) {
        ai->sleep_ctl_space = f[244];
        ai->sleep_ctl_addr = *(const u64 *)(f + 248);
    }
    u64 dsdt = *(const u32 *)(f + 40);
    if (len >= 148 && *(const u64 *)(f + 140)) dsdt = *(const u64 *)(f + 140);
    if (dsdt) {
        if (!check_table((const u8 *)dsdt)) ai->tables_ok = 0;
        parse_s5((const u8 *)dsdt, ai);
    }
    puts("fadt: sci ");
    put_dec(ai->sci_irq);
    puts(" pm1a_evt ");
    put_hex(ai->pm1a_evt, 4);
    puts(" pm1a_cnt ");
    put_hex(ai->pm1a_cnt, 4);
    puts(ai->hw_reduced ? " hw-reduced\n" : "\n");
}

static void parse_madt(const u8 *m, struct acpi_info *ai)
{
    u32 len = *(const u32 *)(m + 4);
    ai->lapic_addr = *(const u32 *)(m + 36);
    ai->sci_level = 1;        /* ACPI default for the SCI: level, active low */
    ai->sci_active_low = 1;
    for (u32 off = 44; off + 2 <= len;) {
        const u8 *e = m + off;
        u8 type = e[0], elen = e[1];
        if (elen < 2 || off + elen > len) break;
        if (type == 0 && (*(const u32 *)(e + 4) & 1)) {
            if (ai->cpu_count < MAX_CPUS) ai->apic_ids[ai->cpu_count] = e[3];
            ai->cpu_count++;
        } else if (type == 9 && (*(const u32 *)(e + 8) & 1)) {
            if (ai->cpu_count < MAX_CPUS) ai->apic_ids[ai->cpu_count] = (u8)*(const u32 *)(e + 4);
            ai->cpu_count++;
        } else if (type == 1 && !ai->ioapic_addr) {
            ai->ioapic_addr = *(const u32 *)(e + 4);
        } else if (type == 2 && e[3] == ai->sci_irq) {
            u16 flags = *(const u16 *)(e + 8);
            ai->sci_gsi = *(const u32 *)(e + 4);
            u32 pol = flags & 3, trig = (flags >> 2) & 3;
            if (pol) ai->sci_active_low = pol == 3;
            if (trig) ai->sci_level = trig == 3;
        }
        off += elen;
    }
    puts("madt: ");
    put_dec(ai->cpu_count);
    puts(" cpus, ioapic ");
    put_hex(ai->ioapic_addr, 8);
    puts("\n");
}

void acpi_scan(u64 rsdp_hint, struct acpi_info *ai)
{
    memset(ai, 0, sizeof(*ai));
    u64 rsdp = rsdp_hint;
    if (!rsdp || memcmp((const void *)rsdp, "RSD PTR ", 8)) {
        u64 ebda = (u64)*(const u16 *)0x40e << 4;
        rsdp = (ebda >= 0x80000 && ebda < 0xa0000) ? rsdp_scan(ebda, ebda + 1024) : 0;
        if (!rsdp) rsdp = rsdp_scan(0xe0000, 0x100000);
    }
    if (!rsdp) {
        puts("acpi: no RSDP\n");
        return;
    }
    const u8 *r = (const u8 *)rsdp;
    ai->found = 1;
    ai->tables_ok = sum8(r, 20) == 0;
    u8 rev = r[15];
    if (rev >= 2 && sum8(r, 36)) ai->tables_ok = 0;
    puts("acpi: RSDP at ");
    put_hex(rsdp, 8);
    puts(" revision ");
    put_dec(rev);
    puts(ai->tables_ok ? " checksum ok\n" : " checksum BAD\n");
    const u8 *root;
    u32 entry_size;
    if (rev >= 2 && *(const u64 *)(r + 24)) {
        root = (const u8 *)*(const u64 *)(r + 24);
        entry_size = 8;
    } else {
        root = (const u8 *)(u64)*(const u32 *)(r + 16);
        entry_size = 4;
    }
    if (!check_table(root)) { ai->tables_ok = 0; return; }
    u32 rlen = *(const u32 *)(root + 4);
    const u8 *fadt = 0, *madt = 0;
    for (u32 off = 36; off + entry_size <= rlen; off += entry_size) {
        u64 a = entry_size == 8 ? *(const u64 *)(root + off) : *(const u32 *)(root + off);
        const u8 *t = (const u8 *)a;
        if (!check_table(t)) ai->tables_ok = 0;
        if (!memcmp(t, "FACP", 4)) fadt = t;
        if (!memcmp(t, "APIC", 4)) madt = t;
        if (!memcmp(t, "MCFG", 4) && *(const u32 *)(t + 4) >= 60) {
            ai->ecam_base = *(const u64 *)(t + 44);
            ai->ecam_end_bus = t[55];
        }
    }
    if (fadt) parse_fadt(fadt, ai);
    if (madt) parse_madt(madt, ai);
    puts("acpi: s5 ");
    if (ai->s5_found) {
        put_dec(ai->s5_typ_a);
        puts(" ");
        put_dec(ai->s5_typ_b);
    } else {
        puts("missing");
    }
    puts(ai->tables_ok ? ", all checksums ok\n" : ", checksum errors\n");
}
