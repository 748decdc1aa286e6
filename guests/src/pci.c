/* PCI bus 0: config access through ECAM when the MCFG table gives it, conf1 otherwise;
 * BAR decoding and sizing, capability lists, and the `pci` action's report. */
#include "guest.h"

static u64 ecam;

void pci_init(const struct acpi_info *ai) { ecam = ai->ecam_base; }

static u32 conf1_addr(u8 dev, u16 reg) { return 0x80000000u | ((u32)dev << 11) | (reg & 0xfc); }

u32 pci_read_conf1(u8 dev, u16 reg, int size)
{
    outl(0xcf8, conf1_addr(dev, reg));
    u16 port = (u16)(0xcfc + (reg & 3));
    return size == 1 ? inb(port) : size == 2 ? inw(port) : inl(port);
}

void pci_write_conf1(u8 dev, u16 reg, int size, u32 v)
{
    outl(0xcf8, conf1_addr(dev, reg));
    u16 port = (u16)(0xcfc + (reg & 3));
    if (size == 1) outb(port, (u8)v);
    else if (size == 2) outw(port, (u16)v);
    else outl(port, v);
}

u32 pci_read(u8 dev, u16 reg, int size)
{
    if (!ecam) return pci_read_conf1(dev, reg, size);
    u64 a = ecam + ((u64)dev << 15) + reg;
    return size == 1 ? mmio_read8(a) : size == 2 ? *(volatile u16 *)a : mmio_read32(a);
}

void pci_write(u8 dev, u16 reg, int size, u32 v)
{
    if (!ecam) { pci_write_conf1(dev, reg, size, v); return; }
    u64 a = ecam + ((u64)dev << 15) + reg;
    if (size == 1) mmio_write8(a, (u8)v);
    else if (size == 2) *(volatile u16 *)a = (u16)v;
    else mmio_write32(a, v);
}

int pci_find(u16 vendor, u16 device_lo, u16 device_hi, int nth)
{
    for (int dev = 0; dev < 32; dev++) {
        u32 id = pci_read((u8)dev, 0, 4);
        u16 d = (u16)(id >> 16);
        if ((u16)id == vendor && d >= device_lo && d <= device_hi && nth-- == 0) return dev;
    }
    return -1;
}

u64 pci_bar(u8 dev, int bar)
{
    u32 lo = pci_read(dev, (u16)(0x10 + 4 * bar), 4);
    if (lo & 1) return lo & ~3u;
    u64 a = lo & ~0xfu;
    if (((lo >> 1) & 3) == 2 && bar < 5) a |= (u64)pci_read(dev, (u16)(0x14 + 4 * bar), 4) << 32;
    return a;
}

u8 pci_find_cap(u8 dev, u8 id, u8 after)
{
    if (!(pci_read(dev, 6, 2) & 0x10)) return 0;
    u8 p = after ? (u8)pci_read(dev, (u16)(after + 1), 1) : (u8)pci_read(dev, 0x34, 1);
    for (int n = 0; p && n < 48; n++) {
        if ((u8)pci_read(dev, p, 1) == id) return p;
        p = (u8)pci_read(dev, (u16)(p + 1), 1);
    }
    return 0;
}

/* Size BAR `bar` with decoding off (write all ones, read back, restore). */
static u64 bar_size(u8 dev, int bar, int is64)
{
    u16 reg = (u16)(0x10 + 4 * bar);
    u16 cmd = (u16)pci_read(dev, 4, 2);
    pci_write(dev, 4, 2, cmd & ~3u);
    u32 lo = pci_read(dev, reg, 4), hi = is64 ? pci_read(dev, (u16)(reg + 4), 4) : 0;
    pci_write(dev, reg, 4, 0xffffffffu);
    u32 slo = pci_read(dev, reg, 4), shi = 0xffffffffu;
    if (is64) {
        pci_write(dev, (u16)(reg + 4), 4, 0xffffffffu);
        shi = pci_read(dev, (u16)(reg + 4), 4);
        pci_write(dev, (u16)(reg + 4), 4, hi);
    }
    pci_write(dev, reg, 4, lo);
    pci_write(dev, 4, 2, cmd);
    u32 low = slo & ((slo & 1) ? ~3u : ~0xfu);
    if (!low && !is64) return 0; /* not implemented */
    u64 mask = ((u64)shi << 32) | low;
    if (slo & 1) mask |= 0xffffffffffff0000ul;
    return ~mask + 1;
}

void pci_report(void)
{
    puts(ecam ? "pci: config through ECAM at " : "pci: config through conf1");
    if (ecam) put_hex(ecam, 8);
    puts("\n");
    for (int d = 0; d < 32; d++) {
        u8 dev = (u8)d;
        u32 id = pci_read(dev, 0, 4);
        if ((id & 0xffff) == 0xffff) continue;
        puts("pci: 00:");
        put_hex(dev, 2);
        puts(".0 ");
        put_hex(id & 0xffff, 4);
        puts(":");
        put_hex(id >> 16, 4);
        puts(" class ");
        put_hex(pci_read(dev, 8, 4) >> 8, 6);
        puts(" subsystem ");
        put_hex(pci_read(dev, 0x2c, 2), 4);
        puts(":");
        put_hex(pci_read(dev, 0x2e, 2), 4);
        if (ecam && pci_read_conf1(dev, 0, 4) != id) puts(" CONF1-MISMATCH");
        puts("\n");
        for (int b = 0; b < 6; b++) {
            u32 raw = pci_read(dev, (u16)(0x10 + 4 * b), 4);
            int is64 = !(raw & 1) && ((raw >> 1) & 3) == 2;
            u64 size = bar_size(dev, b, is64);
            if (size) {
                puts("pci:   bar");
                put_dec((u64)b);
                puts(raw & 1 ? " io " : is64 ? " mem64 " : " mem32 ");
                put_hex(pci_bar(dev, b), is64 ? 16 : 8);
                puts(" size ");
                put_hex(size, 8);
                puts(!(raw & 1) && (raw & 8) ? " prefetchable\n" : "\n");
            }
            if (is64) b++;
        }
        puts("pci:   caps");
        u8 p = (pci_read(dev, 6, 2) & 0x10) ? (u8)pci_read(dev, 0x34, 1) : 0;
        for (int n = 0; p && n < 48; n++) {
            u8 cid = (u8)pci_read(dev, p, 1);
            puts(" ");
            put_hex(cid, 2);
            if (cid == 0x09) {
                puts("/");
                put_dec(pci_read(dev, (u16)(p + 3), 1));
            }
            p = (u8)pci_read(dev, (u16)(p + 1), 1);
        }
        puts("\n");
    }
}
