/*
 * The `blkbench` action: sequential reads or writes of `bs=` KiB requests, `depth=` of them in
 * flight, `mb=` MiB in all (wrapping at the end of the disk). The guest never touches the data,
 * so the figure is the device's. The interval is measured with the ACPI PM timer (read at every
 * completion, so its 24-bit wrap is followed) and printed on the "bench: done" line.
 */
#include "guest.h"

#define DMA_BASE 0x2000000ul /* 32 MiB: buffers live here (needs -m 64 or more) */
#define MAX_DEPTH 32

struct bhdr { u32 type, reserved; u64 sector; };
static struct bhdr hdrs[MAX_DEPTH] __attribute__((aligned(16)));
static volatile u8 status[MAX_DEPTH];

/* Elapsed PM timer ticks, accumulated across wraps (read at start, end and on each 10 ms tick:
 * one port exit, so it is kept out of the per-request path). */
static u32 tmr_port, tmr_mask, tmr_last;
static u64 tmr_ticks, tmr_seen_tick;

static void tmr_start(const struct acpi_info *ai)
{
    tmr_port = ai->pm_tmr;
    tmr_mask = ai->pm_tmr_32bit ? 0xffffffffu : 0xffffffu;
    tmr_ticks = 0;
    tmr_seen_tick = timer_ticks;
    if (tmr_port) tmr_last = inl((u16)tmr_port) & tmr_mask;
}

static void tmr_update(void)
{
    tmr_seen_tick = timer_ticks;
    if (!tmr_port) return;
    u32 now = inl((u16)tmr_port) & tmr_mask;
    tmr_ticks += (now - tmr_last) & tmr_mask;
    tmr_last = now;
}

void blk_bench(const struct acpi_info *ai, const char *cmdline)
{
    static struct vdev v;
    char arg[24];
    u64 bs = cmdline_get(cmdline, "bs", arg, sizeof(arg)) ? parse_u64(arg) : 256;
    u64 depth = cmdline_get(cmdline, "depth", arg, sizeof(arg)) ? parse_u64(arg) : 4;
    u64 mb = cmdline_get(cmdline, "mb", arg, sizeof(arg)) ? parse_u64(arg) : 64;
    int write = cmdline_get(cmdline, "rw", arg, sizeof(arg)) && arg[0] == 'w';
    if (cmdline_get(cmdline, "disk", arg, sizeof(arg))) blk_disk_index = (int)parse_u64(arg);
    if (depth < 1) depth = 1;
    if (depth > MAX_DEPTH) depth = MAX_DEPTH;
    if (bs < 4) bs = 4;
    if (bs > 1024) bs = 1024;
    irq_setup(ai);
    if (blk_open(&v, ai, 128, 1)) return;
    u64 disk = vcfg64(&v, 0) * 512;
    u64 req = bs * 1024;
    u64 total = mb << 20;
    if (disk < req) {
        puts("bench: disk too small\n");
        return;
    }
    u64 wrap = disk - disk % req;
    u64 next = 0, issued = 0, done = 0, errors = 0;
    puts("bench: start ");
    puts(write ? "write" : "read");
    puts(" bs ");
    put_dec(bs);
    puts("K depth ");
    put_dec(depth);
    puts("\n");
    tmr_start(ai);
    for (u64 slot = 0; slot < depth && issued < total; slot++) {
        struct vring_desc *d = &v.q.desc[3 * slot];
        hdrs[slot] = (struct bhdr){write ? 1u : 0u, 0, next / 512};
        d[0] = (struct vring_desc){(u64)&hdrs[slot], 16, 1, (u16)(3 * slot + 1)};
        d[1] = (struct vring_desc){DMA_BASE + slot * req, (u32)req, (u16)(1 | (write ? 0 : 2)), (u16)(3 * slot + 2)};
        d[2] = (struct vring_desc){(u64)&status[slot], 1, 2, 0};
        vq_publish(&v.q, (u16)(3 * slot));
        issued += req;
        next = (next + req) % wrap;
    }
    u64 idle_until = timer_ticks + 1000;
    while (done < issued) {
        u16 id;
        u32 len;
        if (timer_ticks != tmr_seen_tick) tmr_update();
        if (!vq_used(&v.q, &id, &len)) {
            if (timer_ticks > idle_until) {
                puts("bench: TIMEOUT\n");
                return;
            }
            wait_tick();
            continue;
        }
        idle_until = timer_ticks + 1000;
        u64 slot = id / 3;
        if (slot >= depth) {
            puts("bench: bad used id\n");
            return;
        }
        if (status[slot]) errors++;
        done += req;
        if (issued < total) {
            hdrs[slot].sector = next / 512;
            vq_publish(&v.q, (u16)(3 * slot));
            issued += req;
            next = (next + req) % wrap;
        }
    }
    if (write) {
        static struct bhdr fh __attribute__((aligned(16))) = {4, 0, 0};
        struct vring_desc *d = &v.q.desc[3 * MAX_DEPTH];
        d[0] = (struct vring_desc){(u64)&fh, 16, 1, (u16)(3 * MAX_DEPTH + 1)};
        d[1] = (struct vring_desc){(u64)&status[0], 1, 2, 0};
        vq_publish(&v.q, (u16)(3 * MAX_DEPTH));
        u16 id;
        u32 len;
        while (!vq_used(&v.q, &id, &len)) {
            if (timer_ticks != tmr_seen_tick) tmr_update();
            wait_tick();
        }
    }
    tmr_update();
    puts("bench: done ");
    put_dec(done >> 20);
    puts(" MiB in ");
    put_dec(tmr_ticks * 1000000ul / 3579545ul);
    puts(" us, errors ");
    put_dec(errors);
    puts(", interrupts ");
    put_dec(msi_count[1]);
    puts("\n");
}
