/* What the loader handed over: PVH hvm_start_info or the Linux boot_params (zero page). */
#include "guest.h"

#define PVH_MAGIC 0x336ec578

static void copy_cmdline(struct boot_info *bi, u64 addr)
{
    const char *s = (const char *)addr;
    u64 n = 0;
    if (addr)
        while (s[n] && n + 1 < CMDLINE_MAX) { bi->cmdline[n] = s[n]; n++; }
    bi->cmdline[n] = 0;
}

void boot_info_parse(struct boot_info *bi, int kind, u64 info)
{
    memset(bi, 0, sizeof(*bi));
    bi->kind = kind;
    if (kind == BOOT_PVH) {
        const u8 *si = (const u8 *)info;
        if (*(const u32 *)si != PVH_MAGIC) return;
        u32 version = *(const u32 *)(si + 4);
        u32 nr_modules = *(const u32 *)(si + 12);
        u64 modlist = *(const u64 *)(si + 16);
        copy_cmdline(bi, *(const u64 *)(si + 24));
        bi->rsdp = *(const u64 *)(si + 32);
        if (version >= 1) {
            u64 memmap = *(const u64 *)(si + 40);
            u32 entries = *(const u32 *)(si + 48);
            for (u32 i = 0; i < entries && i < MAX_E820; i++) {
                const u8 *e = (const u8 *)(memmap + 24 * (u64)i);
                bi->e820[i].addr = *(const u64 *)e;
                bi->e820[i].size = *(const u64 *)(e + 8);
                bi->e820[i].type = *(const u32 *)(e + 16);
                bi->e820_count = i + 1;
            }
        }
        if (nr_modules && modlist) {
            bi->initrd_addr = *(const u64 *)modlist;
            bi->initrd_size = *(const u64 *)(modlist + 8);
        }
    } else {
        const u8 *bp = (const u8 *)info;
        u64 cmd = *(const u32 *)(bp + 0x228) | ((u64)*(const u32 *)(bp + 0x0c8) << 32);
        copy_cmdline(bi, cmd);
        bi->rsdp = *(const u64 *)(bp + 0x070);
        u8 entries = bp[0x1e8];
        for (u32 i = 0; i < entries && i < MAX_E820; i++) {
            const u8 *e = bp + 0x2d0 + 20 * i;
            bi->e820[i].addr = *(const u64 *)e;
            bi->e820[i].size = *(const u64 *)(e + 8);
            bi->e820[i].type = *(const u32 *)(e + 16);
            bi->e820_count = i + 1;
        }
        bi->initrd_addr = *(const u32 *)(bp + 0x218) | ((u64)*(const u32 *)(bp + 0x0c0) << 32);
        bi->initrd_size = *(const u32 *)(bp + 0x21c) | ((u64)*(const u32 *)(bp + 0x0c4) << 32);
    }
}

void boot_info_print(const struct boot_info *bi)
{
    puts("cmdline: ");
    puts(bi->cmdline);
    puts("\n");
    u64 ram = 0;
    for (u32 i = 0; i < bi->e820_count; i++) {
        const struct e820_entry *e = &bi->e820[i];
        puts("e820: ");
        put_hex(e->addr, 16);
        puts("-");
        put_hex(e->addr + e->size - 1, 16);
        puts(" type ");
        put_dec(e->type);
        puts("\n");
        if (e->type == 1) ram += e->size;
    }
    puts("e820: ");
    put_dec(bi->e820_count);
    puts(" entries, ");
    put_dec(ram >> 10);
    puts(" KiB usable\n");
    if (bi->initrd_size) {
        u32 sum = 0;
        const u8 *p = (const u8 *)bi->initrd_addr;
        for (u64 i = 0; i < bi->initrd_size; i++) sum = sum * 31 + p[i];
        puts("initrd: ");
        put_hex(bi->initrd_addr, 8);
        puts(" size ");
        put_dec(bi->initrd_size);
        puts(" hash ");
        put_hex(sum, 8);
        puts("\n");
    } else {
        puts("initrd: none\n");
    }
}
