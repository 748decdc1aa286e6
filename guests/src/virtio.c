/* A modern virtio-pci driver: capabilities, reset, feature negotiation, MSI-X (config on
 * table entry 0 -> vector 0x40, queue 0 on entry 1 -> vector 0x41) and one split virtqueue. */
#include "guest.h"

#define COMMON_DFSELECT 0x00
#define COMMON_DF 0x04
#define COMMON_GFSELECT 0x08
#define COMMON_GF 0x0c
#define COMMON_MSIX 0x10
#define COMMON_STATUS 0x14
#define COMMON_Q_SELECT 0x16
#define COMMON_Q_SIZE 0x18
#define COMMON_Q_MSIX 0x1a
#define COMMON_Q_ENABLE 0x1c
#define COMMON_Q_NOFF 0x1e
#define COMMON_Q_DESC 0x20
#define COMMON_Q_AVAIL 0x28
#define COMMON_Q_USED 0x30

/* Rings: descriptors at +0, available ring at +4 KiB, used ring at +8 KiB (up to 256 entries). */
u8 dma_area[3 * 4096] __attribute__((aligned(4096)));
/* Set by tests to give the device a descriptor table address it must refuse. */
u64 virtio_desc_override;

static void w8(u64 a, u8 v) { mmio_write8(a, v); }
static void w16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static void w32(u64 a, u32 v) { mmio_write32(a, v); }
static u8 r8(u64 a) { return mmio_read8(a); }
static u16 r16(u64 a) { return *(volatile u16 *)a; }
static u32 r32(u64 a) { return mmio_read32(a); }

u8 virtio_status(struct vdev *v) { return r8(v->common + COMMON_STATUS); }
void virtio_set_status(struct vdev *v, u8 s) { w8(v->common + COMMON_STATUS, s); }

void virtio_reset(struct vdev *v)
{
    virtio_set_status(v, 0);
    for (int i = 0; i < 1000 && virtio_status(v); i++) cpu_relax();
}

u8 vcfg8(struct vdev *v, u32 off) { return r8(v->devcfg + off); }
u32 vcfg32(struct vdev *v, u32 off) { return r32(v->devcfg + off); }
u64 vcfg64(struct vdev *v, u32 off) { return r32(v->devcfg + off) | ((u64)r32(v->devcfg + off + 4) << 32); }

static u64 cap_addr(u8 dev, u8 cap)
{
    u8 bar = (u8)pci_read(dev, (u16)(cap + 4), 1);
    return pci_bar(dev, bar) + pci_read(dev, (u16)(cap + 8), 4);
}

static void msix_entry(struct vdev *v, int entry, u8 vector)
{
    u64 e = v->msix_table + 16ul * (u64)entry;
    w32(e, 0xfee00000u | (cpu_apic_id() << 12));
    w32(e + 4, 0);
    w32(e + 8, vector);
    w32(e + 12, 0); /* unmasked */
}

int virtio_init(struct vdev *v, u8 dev, u64 wanted, u16 qsize)
{
    memset(v, 0, sizeof(*v));
    v->dev = dev;
    pci_write(dev, 4, 2, pci_read(dev, 4, 2) | 6); /* memory decoding, bus master */
    for (u8 c = pci_find_cap(dev, 0x09, 0); c; c = pci_find_cap(dev, 0x09, c)) {
        u8 type = (u8)pci_read(dev, (u16)(c + 3), 1);
        if (type == 1 && !v->common) v->common = cap_addr(dev, c);
        if (type == 3 && !v->isr) v->isr = cap_addr(dev, c);
        if (type == 4 && !v->devcfg) v->devcfg = cap_addr(dev, c);
        if (type == 2 && !v->notify) {
            v->notify = cap_addr(dev, c);
            v->notify_mult = pci_read(dev, (u16)(c + 16), 4);
        }
    }
    if (!v->common || !v->isr || !v->devcfg || !v->notify) return -1;
    v->msix_cap = pci_find_cap(dev, 0x11, 0);
    if (!v->msix_cap) return -2;
    u32 tbl = pci_read(dev, (u16)(v->msix_cap + 4), 4);
    v->msix_table = pci_bar(dev, (int)(tbl & 7)) + (tbl & ~7u);
    v->msix_size = (u16)((pci_read(dev, (u16)(v->msix_cap + 2), 2) & 0x7ff) + 1);

    virtio_reset(v);
    virtio_set_status(v, 1);
    virtio_set_status(v, 1 | 2);
    w32(v->common + COMMON_DFSELECT, 0);
    u64 offered = r32(v->common + COMMON_DF);
    w32(v->common + COMMON_DFSELECT, 1);
    offered |= (u64)r32(v->common + COMMON_DF) << 32;
    u64 f = offered & (wanted | VIRTIO_F_VERSION_1);
    w32(v->common + COMMON_GFSELECT, 0);
    w32(v->common + COMMON_GF, (u32)f);
    w32(v->common + COMMON_GFSELECT, 1);
    w32(v->common + COMMON_GF, (u32)(f >> 32));
    virtio_set_status(v, 1 | 2 | 8);
    if (!(virtio_status(v) & 8)) return -3;
    v->features = f;

    u16 ctrl = (u16)pci_read(dev, (u16)(v->msix_cap + 2), 2);
    pci_write(dev, (u16)(v->msix_cap + 2), 2, ctrl | 0xc000u); /* enable, function masked */
    msix_entry(v, 0, MSI_VECTOR_BASE);
    msix_entry(v, 1, MSI_VECTOR_BASE + 1);
    pci_write(dev, (u16)(v->msix_cap + 2), 2, (ctrl | 0x8000u) & ~0x4000u);
    w16(v->common + COMMON_MSIX, 0);
    if (r16(v->common + COMMON_MSIX) != 0) return -4;

    struct vq *q = &v->q;
    w16(v->common + COMMON_Q_SELECT, 0);
    u16 max = r16(v->common + COMMON_Q_SIZE);
    if (!max) return -5;
    u16 size = qsize && qsize < max ? qsize : max;
    if (size > VQ_MAX) size = VQ_MAX;
    w16(v->common + COMMON_Q_SIZE, size);
    memset(dma_area, 0, sizeof(dma_area));
    q->size = size;
    q->index = 0;
    q->last_used = q->avail_idx = 0;
    q->desc = (struct vring_desc *)dma_area;
    q->avail = (volatile u16 *)(dma_area + 4096);
    q->used_hdr = (volatile u16 *)(dma_area + 8192);
    q->used = (volatile struct vring_used_elem *)(dma_area + 8192 + 4);
    u64 desc = virtio_desc_override ? virtio_desc_override : (u64)q->desc;
    u64 addrs[3] = {desc, (u64)q->avail, (u64)q->used_hdr};
    for (int i = 0; i < 3; i++) {
        w32(v->common + COMMON_Q_DESC + 8 * (u64)i, (u32)addrs[i]);
        w32(v->common + COMMON_Q_DESC + 8 * (u64)i + 4, (u32)(addrs[i] >> 32));
    }
    w16(v->common + COMMON_Q_MSIX, 1);
    if (r16(v->common + COMMON_Q_MSIX) != 1) return -6;
    q->notify_addr = v->notify + (u64)r16(v->common + COMMON_Q_NOFF) * v->notify_mult;
    w16(v->common + COMMON_Q_ENABLE, 1);
    virtio_set_status(v, 1 | 2 | 8 | 4);
    return 0;
}

void vq_publish(struct vq *q, u16 head)
{
    q->avail[2 + q->avail_idx % q->size] = head;
    __asm__ volatile("" ::: "memory");
    q->avail_idx++;
    q->avail[1] = q->avail_idx;
    __asm__ volatile("mfence" ::: "memory");
    w16(q->notify_addr, q->index);
}

int vq_used(struct vq *q, u16 *id, u32 *len)
{
    if (q->used_hdr[1] == q->last_used) return 0;
    __asm__ volatile("" ::: "memory");
    volatile struct vring_used_elem *e = &q->used[q->last_used % q->size];
    *id = (u16)e->id;
    *len = e->len;
    q->last_used++;
    return 1;
}
