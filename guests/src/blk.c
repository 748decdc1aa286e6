/*
 * virtio-blk driver and the `blk` action: `ops=` runs one request at a time and reports each
 * (status, used length, MSI-X interrupts so far, data check), for the host to compare with
 * what it expects and to verify on the image afterwards:
 *   w:S:N:PP   write N sectors at S, every byte PP (hex)      r:S:N:PP  read, check every byte
 *   f          flush                                          id        GET_ID (serial)
 *   z:S:N      write zeroes                                   d:S:N     discard
 *   t:T        a request of raw type T without data
 */
#include "guest.h"

#define T_IN 0
#define T_OUT 1
#define T_FLUSH 4
#define T_GET_ID 8
#define T_DISCARD 11
#define T_WRITE_ZEROES 13
#define F_RO (1ul << 5)
#define F_BLK_SIZE (1ul << 6)
#define F_FLUSH (1ul << 9)
#define F_DISCARD (1ul << 13)
#define F_WRITE_ZEROES (1ul << 14)
#define F_INDIRECT (1ul << 28)
#define SLOTS (VQ_MAX / 3)

struct blk_hdr { u32 type, reserved; u64 sector; };
static struct blk_hdr hdrs[SLOTS] __attribute__((aligned(16)));
static volatile u8 status[SLOTS];
static u8 buf[64 * 1024] __attribute__((aligned(4096)));

/* Which virtio-blk function blk_open takes (`disk=N` on the command line: the Nth, from 0). */
int blk_disk_index;

static int find_blk(int nth)
{
    for (int dev = 0; dev < 32; dev++) {
        u32 id = pci_read((u8)dev, 0, 4);
        if ((u16)id == 0x1af4 && ((id >> 16) == 0x1001 || (id >> 16) == 0x1042) && nth-- == 0) return dev;
    }
    return -1;
}

int blk_open(struct vdev *v, const struct acpi_info *ai, u16 qsize, int verbose)
{
    pci_init(ai);
    int dev = find_blk(blk_disk_index);
    if (dev < 0) {
        puts("virtio-blk: no device\n");
        return -1;
    }
    int r = virtio_init(v, (u8)dev, F_RO | F_BLK_SIZE | F_FLUSH | F_DISCARD | F_WRITE_ZEROES | F_INDIRECT, qsize);
    if (verbose || r) {
        puts("virtio-blk: 00:");
        put_hex((u64)dev, 2);
        puts(".0 device ");
        put_hex(pci_read((u8)dev, 2, 2), 4);
        if (r) {
            puts(" init failed at step ");
            put_dec((u64)-r);
            puts(" status ");
            put_hex(virtio_status(v), 2);
            puts("\n");
            return r;
        }
        puts(" capacity ");
        put_dec(vcfg64(v, 0));
        puts(" features ");
        put_hex(v->features, 16);
        puts(v->features & F_RO ? " ro" : " rw");
        puts(" queue ");
        put_dec(v->q.size);
        puts(" msix ");
        put_dec(v->msix_size);
        puts("\n");
    }
    return r;
}

static int is_write_type(u32 type) { return type != T_IN && type != T_GET_ID; }

static void submit(struct vdev *v, int slot, u32 type, u64 sector, void *data, u32 len)
{
    struct vring_desc *d = &v->q.desc[3 * slot];
    u16 base = (u16)(3 * slot);
    hdrs[slot].type = type;
    hdrs[slot].reserved = 0;
    hdrs[slot].sector = sector;
    status[slot] = 0xee;
    d[0] = (struct vring_desc){(u64)&hdrs[slot], 16, 1, (u16)(base + 1)};
    if (len) {
        d[1] = (struct vring_desc){(u64)data, len, (u16)(1 | (is_write_type(type) ? 0 : 2)), (u16)(base + 2)};
    } else {
        d[0].next = (u16)(base + 2);
    }
    d[2] = (struct vring_desc){(u64)&status[slot], 1, 2, 0};
    vq_publish(&v->q, base);
}

/* Waits (at most ~5 s) for one used element. */
static int wait_used(struct vdev *v, u16 *id, u32 *len)
{
    u64 until = timer_ticks + 500;
    while (!vq_used(&v->q, id, len)) {
        if (timer_ticks > until) return 0;
        wait_tick();
    }
    return 1;
}

int blk_rw(struct vdev *v, u32 type, u64 sector, void *data, u32 len, int slot)
{
    u16 id;
    u32 used;
    submit(v, slot, type, sector, data, len);
    if (!wait_used(v, &id, &used)) return -1;
    return status[slot];
}

static void fill(u8 *p, u32 n, u8 pat)
{
    u64 w = 0x0101010101010101ul * pat;
    for (u32 i = 0; i < n / 8; i++) ((u64 *)p)[i] = w;
}

static u32 check(const u8 *p, u32 n, u8 pat)
{
    u64 w = 0x0101010101010101ul * pat;
    for (u32 i = 0; i < n / 8; i++)
        if (((const u64 *)p)[i] != w) return i * 8 + 1;
    return 0;
}

static u64 hex(const char **s)
{
    u64 v = 0;
    for (;; (*s)++) {
        char c = **s;
        if (c >= '0' && c <= '9') v = v * 16 + (u64)(c - '0');
        else if (c >= 'a' && c <= 'f') v = v * 16 + (u64)(c - 'a' + 10);
        else return v;
    }
}

static u64 dec(const char **s)
{
    u64 v = 0;
    while (**s >= '0' && **s <= '9') v = v * 10 + (u64)(*(*s)++ - '0');
    return v;
}

static u64 field(const char **s, int is_hex)
{
    if (**s != ':') return 0;
    (*s)++;
    return is_hex ? hex(s) : dec(s);
}

void blk_ops(const struct acpi_info *ai, const char *cmdline)
{
    static struct vdev v;
    static char ops[256];
    char n[8];
    if (cmdline_get(cmdline, "disk", n, sizeof(n))) blk_disk_index = (int)parse_u64(n);
    irq_setup(ai);
    if (blk_open(&v, ai, 16, 1)) return;
    if (!cmdline_get(cmdline, "ops", ops, sizeof(ops))) return;
    u32 irqs = 0;
    for (const char *p = ops; *p;) {
        char op[3] = {0, 0, 0};
        op[0] = *p++;
        if (*p >= 'a' && *p <= 'z') op[1] = *p++;
        u64 sector = 0, count = 0, pat = 0, type = 0;
        int has_pat = 0;
        u32 len = 0;
        u32 kind;
        u8 seg[16];
        void *data = buf;
        if (op[0] == 'w' || op[0] == 'r') {
            sector = field(&p, 0);
            count = field(&p, 0);
            has_pat = *p == ':';
            pat = field(&p, 1);
            len = (u32)(count * 512);
            if (len > sizeof(buf)) len = sizeof(buf);
            kind = op[0] == 'w' ? T_OUT : T_IN;
            fill(buf, len, op[0] == 'w' ? (u8)pat : 0xee);
        } else if (op[0] == 'z' || op[0] == 'd') {
            sector = field(&p, 0);
            count = field(&p, 0);
            memset(seg, 0, sizeof(seg));
            memcpy(seg, &sector, 8);
            memcpy(seg + 8, &count, 4);
            kind = op[0] == 'z' ? T_WRITE_ZEROES : T_DISCARD;
            data = seg;
            len = 16;
        } else if (op[0] == 'f') {
            kind = T_FLUSH;
        } else if (op[0] == 'i') {
            kind = T_GET_ID;
            len = 20;
            memset(buf, 0, 21);
        } else if (op[0] == 't') {
            type = field(&p, 0);
            kind = (u32)type;
        } else {
            puts("blk: bad op\n");
            return;
        }
        while (*p && *p != ',') p++;
        if (*p == ',') p++;

        u16 id;
        u32 used = 0;
        submit(&v, 0, kind, sector, data, len);
        int got = wait_used(&v, &id, &used);
        irqs++;
        u64 until = timer_ticks + 100;
        while (msi_count[1] < irqs && timer_ticks < until) wait_tick();
        puts("blk: ");
        puts(op);
        if (op[0] != 'f' && op[0] != 'i' && op[0] != 't') {
            puts(" ");
            put_dec(sector);
            puts("+");
            put_dec(count);
        }
        if (op[0] == 't') {
            puts(" ");
            put_dec(type);
        }
        if (!got) {
            puts(" TIMEOUT\n");
            return;
        }
        puts(" status ");
        put_dec(status[0]);
        puts(" used ");
        put_dec(used);
        puts(" irq ");
        put_dec(msi_count[1]);
        if (op[0] == 'r' && has_pat && status[0] == 0) {
            u32 bad = check(buf, len, (u8)pat);
            if (bad) {
                puts(" data BAD at ");
                put_dec(bad - 1);
            } else {
                puts(" data ok");
            }
        }
        if (op[0] == 'i') {
            puts(" serial \"");
            puts((const char *)buf);
            puts("\"");
        }
        puts("\n");
    }
    puts("blk: done, config irq ");
    put_dec(msi_count[0]);
    puts("\n");
}
