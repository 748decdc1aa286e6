/*
 * The `blkbad` action: a hostile driver. Each case breaks one rule and reports what the device
 * did: "needs-reset" (NEEDS_RESET in the status, with the config interrupt) or the status byte
 * it returned; after a reset the device must work again ("recovered"). The battery writes
 * nothing valid to the disk, so the host can check the image is unchanged. Then bad PCI
 * config and BAR accesses, after which the device must still answer.
 */
#include "guest.h"

#define N 1
#define W 2
#define IND 4

static struct vdev v;
static const struct acpi_info *acpi;
static u8 hdr[16] __attribute__((aligned(16)));
static u8 data[4096] __attribute__((aligned(4096)));
static volatile u8 st;
static struct vring_desc itable[4] __attribute__((aligned(16)));
static u64 capacity;

static void set_hdr(u32 type, u64 sector)
{
    memset(hdr, 0, sizeof(hdr));
    memcpy(hdr, &type, 4);
    memcpy(hdr + 8, &sector, 8);
    st = 0xee;
}

static void reopen(void)
{
    virtio_desc_override = 0;
    virtio_reset(&v);
    if (blk_open(&v, acpi, 16, 0)) puts("blkbad: reopen failed\n");
    capacity = vcfg64(&v, 0);
}

/* A good read, to show the device works. */
static int works(void)
{
    return blk_rw(&v, 0, 0, data, 512, 4) == 0;
}

/* Config interrupts seen before the bad request went out (the device may answer at once). */
static u32 mark;
static void arm(void) { mark = msi_count[0]; }

static void expect_reset(const char *name)
{
    u32 before = mark;
    u64 until = timer_ticks + 300;
    while (!(virtio_status(&v) & VIRTIO_STATUS_NEEDS_RESET) && timer_ticks < until) wait_tick();
    int reset = virtio_status(&v) & VIRTIO_STATUS_NEEDS_RESET;
    until = timer_ticks + 50;
    while (reset && msi_count[0] == before && timer_ticks < until) wait_tick();
    puts("blkbad: ");
    puts(name);
    puts(reset ? " needs-reset" : " NO-RESET");
    puts(" config-irq ");
    put_dec(msi_count[0] - before);
    reopen();
    puts(works() ? " recovered\n" : " BROKEN\n");
}

/* Publish a chain starting at descriptor `head` (descriptors already written). */
static void go(u16 head)
{
    arm();
    vq_publish(&v.q, head);
}

static void expect_status(const char *name, u32 type, u64 sector, u32 len, int device_writes)
{
    struct vring_desc *d = v.q.desc;
    set_hdr(type, sector);
    d[0] = (struct vring_desc){(u64)hdr, 16, N, 1};
    d[1] = (struct vring_desc){(u64)data, len, (u16)(N | (device_writes ? W : 0)), 2};
    d[2] = (struct vring_desc){(u64)&st, 1, W, 0};
    if (!len) d[0].next = 2;
    go(0);
    u16 id;
    u32 used;
    u64 until = timer_ticks + 300;
    while (!vq_used(&v.q, &id, &used) && timer_ticks < until) wait_tick();
    puts("blkbad: ");
    puts(name);
    puts(" status ");
    put_dec(st);
    puts(virtio_status(&v) & VIRTIO_STATUS_NEEDS_RESET ? " needs-reset\n" : "\n");
}

static void bad_chains(void)
{
    struct vring_desc *d = v.q.desc;

    set_hdr(0, 0);
    d[0] = (struct vring_desc){(u64)hdr, 16, N, 1};
    d[1] = (struct vring_desc){0xd0000000ul, 512, N | W, 2}; /* PCI hole, not RAM */
    d[2] = (struct vring_desc){(u64)&st, 1, W, 0};
    go(0);
    expect_reset("outside-ram");

    d = v.q.desc;
    set_hdr(0, 0);
    d[0] = (struct vring_desc){(u64)hdr, 16, N, 1};
    d[1] = (struct vring_desc){0x200000000ul, 512, N | W, 2}; /* far above RAM */
    d[2] = (struct vring_desc){(u64)&st, 1, W, 0};
    go(0);
    expect_reset("above-ram");

    d = v.q.desc;
    set_hdr(0, 0);
    d[0] = (struct vring_desc){(u64)hdr, 16, N, 1};
    d[1] = (struct vring_desc){(u64)data, 512, N | W, 2};
    d[2] = (struct vring_desc){(u64)&st, 1, N | W, 1}; /* back to 1: a loop */
    go(0);
    expect_reset("loop");

    d = v.q.desc;
    set_hdr(0, 0);
    d[0] = (struct vring_desc){(u64)hdr, 16, N, 200}; /* past the 16-entry table */
    go(0);
    expect_reset("next-out-of-table");

    d = v.q.desc;
    set_hdr(0, 0);
    d[0] = (struct vring_desc){(u64)hdr, 16, N | W, 1}; /* header device-writable */
    d[1] = (struct vring_desc){(u64)&st, 1, W, 0};
    go(0);
    expect_reset("header-writable");

    d = v.q.desc;
    set_hdr(1, 0);
    d[0] = (struct vring_desc){(u64)hdr, 16, N, 1};
    d[1] = (struct vring_desc){(u64)&st, 1, 0, 0}; /* status device-readable */
    go(0);
    expect_reset("status-readable");

    d = v.q.desc;
    set_hdr(0, 0);
    d[0] = (struct vring_desc){(u64)hdr, 16, N, 1};
    d[1] = (struct vring_desc){(u64)data, 512, N | W, 2};
    d[2] = (struct vring_desc){(u64)data + 512, 16, N, 3}; /* readable after writable */
    d[3] = (struct vring_desc){(u64)&st, 1, W, 0};
    go(0);
    expect_reset("readable-after-writable");

    d = v.q.desc;
    set_hdr(0, 0);
    d[0] = (struct vring_desc){(u64)hdr, 8, N, 1}; /* half a header */
    d[1] = (struct vring_desc){(u64)&st, 1, W, 0};
    go(0);
    expect_reset("short-header");

    arm();
    v.q.avail[1] = (u16)(v.q.avail_idx + 100); /* 100 new entries in a 16-entry ring */
    *(volatile u16 *)v.q.notify_addr = 0;
    expect_reset("avail-index-jump");

    v.q.desc[0] = (struct vring_desc){(u64)hdr, 16, 0, 0};
    arm();
    vq_publish(&v.q, 300); /* head beyond the table */
    expect_reset("head-out-of-range");

    d = v.q.desc;
    set_hdr(0, 0);
    itable[0] = (struct vring_desc){(u64)hdr, 16, N, 1};
    itable[1] = (struct vring_desc){(u64)itable, 32, IND, 0}; /* indirect inside indirect */
    d[0] = (struct vring_desc){(u64)itable, 2 * sizeof(struct vring_desc), IND, 0};
    go(0);
    expect_reset("nested-indirect");

    /* Queue set up with a descriptor table outside RAM: refused at DRIVER_OK. */
    virtio_desc_override = 0xd0000000ul;
    virtio_reset(&v);
    arm();
    blk_open(&v, acpi, 16, 0);
    expect_reset("ring-outside-ram");

    /* A queue size that is not a power of two. */
    virtio_reset(&v);
    arm();
    blk_open(&v, acpi, 3, 0);
    expect_reset("queue-size-3");
}

static void status_cases(void)
{
    expect_status("read-beyond-end", 0, capacity, 512, 1);
    expect_status("write-straddling-end", 1, capacity - 1, 1024, 0);
    expect_status("write-odd-length", 1, 0, 100, 0);
    expect_status("huge-sector", 1, 0xffffffffffffff00ul, 512, 0);
    expect_status("unknown-type", 99, 0, 0, 0);
    u8 *seg = data;
    memset(seg, 0, 16);
    seg[8] = 1;
    seg[12] = 1; /* UNMAP flag: not valid for discard */
    expect_status("discard-with-flags", 11, 0, 16, 0);
    memset(seg, 0, 16);
    u64 s = capacity;
    memcpy(seg, &s, 8);
    seg[8] = 8;
    expect_status("write-zeroes-beyond-end", 13, 0, 16, 0);
}

static void bad_pci(void)
{
    u8 dev = v.dev;
    u32 id = pci_read(dev, 0, 4), class = pci_read(dev, 8, 4), sub = pci_read(dev, 0x2c, 4);
    u8 capptr = (u8)pci_read(dev, 0x34, 1);
    pci_write(dev, 0, 4, 0xffffffffu);
    pci_write(dev, 8, 4, 0xffffffffu);
    pci_write(dev, 0x2c, 4, 0xffffffffu);
    pci_write(dev, 0x34, 1, 0xff);
    pci_write(dev, 0x3d, 1, 0x7);  /* interrupt pin is read-only */
    pci_write(dev, (u16)(v.msix_cap + 4), 4, 0xffffffffu); /* MSI-X table location: read-only */
    int ro = pci_read(dev, 0, 4) == id && pci_read(dev, 8, 4) == class && pci_read(dev, 0x2c, 4) == sub
        && (u8)pci_read(dev, 0x34, 1) == capptr && pci_read(dev, 0x3d, 1) == 0
        && (pci_read(dev, (u16)(v.msix_cap + 4), 4) & 7) == 1;
    puts(ro ? "badpci: read-only fields kept\n" : "badpci: read-only fields CHANGED\n");

    /* Odd conf1 accesses: straddling the data port, word at 0xcfe, bytes to the address port. */
    outl(0xcf8, 0x80000000u | ((u32)dev << 11));
    (void)inl(0xcfd);
    (void)inw(0xcfe);
    outb(0xcfb, 0x12);
    outw(0xcfa, 0x3456);
    /* Move BAR4 on top of BAR1, use it there, then put it back. */
    u32 bar1 = pci_read(dev, 0x14, 4) & ~0xfu, bar4 = pci_read(dev, 0x20, 4), bar4hi = pci_read(dev, 0x24, 4);
    pci_write(dev, 0x20, 4, bar1);
    pci_write(dev, 0x24, 4, 0);
    (void)mmio_read32(bar1);
    mmio_write32(bar1 + 0x14, 0);  /* lands in the MSI-X table, not the status register */
    pci_write(dev, 0x20, 4, 0xfffffff0u); /* a 64-bit BAR at the top of memory */
    pci_write(dev, 0x24, 4, 0xffffffffu);
    pci_write(dev, 0x21, 1, 0x12);        /* byte write inside the BAR */
    pci_write(dev, 0x20, 4, bar4);
    pci_write(dev, 0x24, 4, bar4hi);
    /* MSI-X: PBA writes, odd widths into the table. */
    u64 pba = v.msix_table + 0x800;
    mmio_write32(pba, 0xffffffffu);
    mmio_write8(v.msix_table + 3, 0xff);
    *(volatile u16 *)(v.msix_table + 16 + 2) = 0xffff;
    reopen();
    int ok = pci_read(dev, 0, 4) == id && works();
    puts(ok ? "badpci: device still works\n" : "badpci: device BROKEN\n");
}

void blk_bad(const struct acpi_info *ai, const char *cmdline)
{
    (void)cmdline;
    acpi = ai;
    irq_setup(ai);
    if (blk_open(&v, ai, 16, 1)) return;
    capacity = vcfg64(&v, 0);
    bad_chains();
    status_cases();
    bad_pci();
    puts("blkbad: done\n");
}
