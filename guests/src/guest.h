/* Shared declarations of the test guest (freestanding, no libc). */
#ifndef GUEST_H
#define GUEST_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;
typedef long i64;

#define BOOT_PVH 1
#define BOOT_LINUX 2
#define MAX_E820 32
#define MAX_CPUS 16
#define CMDLINE_MAX 512

/* ---- port and MMIO access (io.c is header-only) ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 mmio_read32(u64 a) { return *(volatile u32 *)a; }
static inline void mmio_write32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline u8 mmio_read8(u64 a) { return *(volatile u8 *)a; }
static inline void mmio_write8(u64 a, u8 v) { *(volatile u8 *)a = v; }
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void halt_forever(void) { for (;;) __asm__ volatile("cli; hlt"); }

/* ---- util.c ---- */
void *memset(void *d, int c, u64 n);
void *memcpy(void *d, const void *s, u64 n);
int memcmp(const void *a, const void *b, u64 n);
u64 strlen(const char *s);
/* Find "key=" in the command line; copy its value (up to a space) into out. */
int cmdline_get(const char *cmdline, const char *key, char *out, u64 out_len);
int cmdline_has(const char *cmdline, const char *word);
u64 parse_u64(const char *s);
void delay(u64 iterations);

/* ---- uart.c: COM1 at 0x3f8 ---- */
void uart_init(void);
void putc(char c);
void puts(const char *s);
void put_hex(u64 v, int digits);
void put_dec(u64 v);
void uart_mute(int mute);

/* ---- bootinfo.c ---- */
struct e820_entry { u64 addr, size; u32 type; };
struct boot_info {
    int kind;
    char cmdline[CMDLINE_MAX];
    struct e820_entry e820[MAX_E820];
    u32 e820_count;
    u64 rsdp;
    u64 initrd_addr, initrd_size;
};
void boot_info_parse(struct boot_info *bi, int kind, u64 info);
void boot_info_print(const struct boot_info *bi);

/* ---- acpi.c ---- */
struct acpi_info {
    int found;
    int tables_ok;
    u32 cpu_count;
    u8 apic_ids[MAX_CPUS];
    u32 pm1a_evt, pm1a_cnt, pm1_evt_len;
    u16 sci_irq;
    u32 sci_gsi;
    u32 smi_cmd; u8 acpi_enable;
    int sci_level, sci_active_low;
    int hw_reduced;
    u8 sleep_ctl_space; u64 sleep_ctl_addr;
    u8 reset_space; u64 reset_addr; u8 reset_value; int reset_supported;
    int s5_found;
    u8 s5_typ_a, s5_typ_b;
    u64 lapic_addr;
    u64 ioapic_addr;
    u32 pm_tmr;         /* ACPI PM timer port (3.579545 MHz), 0: none */
    int pm_tmr_32bit;   /* TMR_VAL_EXT: 32-bit counter, else 24-bit */
    u64 ecam_base;      /* MCFG, segment 0 (0: none) */
    u8 ecam_end_bus;
};
void acpi_scan(u64 rsdp_hint, struct acpi_info *ai);

/* ---- power.c ---- */
void power_off_s5(const struct acpi_info *ai);
void reset_i8042(void);
void reset_cf9(void);
void reset_acpi(const struct acpi_info *ai);
void wait_power_button(const struct acpi_info *ai);
void triple_fault(void);
void sci_interrupt(void);
void exception_report(u64 vector, u64 error, u64 rip);

/* ---- interrupts.c ---- */
void idt_install(void);
void idt_set_gate(int vec, void *handler);
void lapic_enable(u64 lapic);
void lapic_eoi(u64 lapic);
void ioapic_route(u64 ioapic, u32 gsi, u8 vector, int level, int active_low, u8 dest);
void pic_mask_all(void);

/* ---- irq.c: MSI vectors 0x40-0x47 and a LAPIC timer tick (vector 0x50) ---- */
#define MSI_VECTOR_BASE 0x40
#define MSI_VECTORS 8
extern volatile u32 msi_count[MSI_VECTORS];
extern volatile u64 timer_ticks;
void irq_setup(const struct acpi_info *ai);  /* IDT, LAPIC, 10 ms timer, interrupts on */
u32 cpu_apic_id(void);
void wait_tick(void);                        /* sleep until the next interrupt */

/* ---- pci.c: bus 0 through ECAM (from MCFG) or conf1 ---- */
void pci_init(const struct acpi_info *ai);
u32 pci_read(u8 dev, u16 reg, int size);
void pci_write(u8 dev, u16 reg, int size, u32 v);
u32 pci_read_conf1(u8 dev, u16 reg, int size);
void pci_write_conf1(u8 dev, u16 reg, int size, u32 v);
int pci_find(u16 vendor, u16 device_lo, u16 device_hi, int nth);  /* slot or -1 */
u64 pci_bar(u8 dev, int bar);
u8 pci_find_cap(u8 dev, u8 id, u8 after);
void pci_report(void);

/* ---- virtio.c: modern virtio-pci driver, one queue ---- */
struct vring_desc { u64 addr; u32 len; u16 flags, next; };
struct vring_used_elem { u32 id, len; };
#define VQ_MAX 256
struct vq {
    u16 size, index, last_used, avail_idx;
    struct vring_desc *desc;
    volatile u16 *avail;          /* flags, idx, ring[size] */
    volatile u16 *used_hdr;       /* flags, idx */
    volatile struct vring_used_elem *used;
    u64 notify_addr;
};
struct vdev {
    u8 dev;
    u64 common, isr, devcfg, notify;
    u32 notify_mult;
    u8 msix_cap;
    u64 msix_table;
    u16 msix_size;
    u64 features;
    struct vq q;
};
#define VIRTIO_F_VERSION_1 (1ul << 32)
#define VIRTIO_STATUS_NEEDS_RESET 0x40
/* Find the caps, reset, negotiate `wanted` (VERSION_1 added), MSI-X (config vector 0, queue
 * vector 1), queue 0 of `qsize` entries (0: the device's maximum); returns 0 or a negative step. */
int virtio_init(struct vdev *v, u8 dev, u64 wanted, u16 qsize);
void virtio_reset(struct vdev *v);
u8 virtio_status(struct vdev *v);
void virtio_set_status(struct vdev *v, u8 s);
void vq_publish(struct vq *q, u16 head);   /* make `head` available and notify */
int vq_used(struct vq *q, u16 *id, u32 *len); /* 1 if a used element was taken */
u8 vcfg8(struct vdev *v, u32 off);
u32 vcfg32(struct vdev *v, u32 off);
u64 vcfg64(struct vdev *v, u32 off);
extern u8 dma_area[];                        /* rings (bss) */
extern u64 virtio_desc_override;             /* tests: a descriptor table address to refuse */

/* ---- blk.c / blkbad.c / blkbench.c: virtio-blk actions ---- */
void blk_ops(const struct acpi_info *ai, const char *cmdline);
void blk_bad(const struct acpi_info *ai, const char *cmdline);
void blk_bench(const struct acpi_info *ai, const char *cmdline);
extern int blk_disk_index;                   /* `disk=N`: the Nth virtio-blk function */
int blk_open(struct vdev *v, const struct acpi_info *ai, u16 qsize, int verbose);
/* One request through descriptors 0..2 of slot `slot`: returns the status byte, or -1 on timeout. */
int blk_rw(struct vdev *v, u32 type, u64 sector, void *buf, u32 len, int slot);

/* ---- smp.c ---- */
u32 smp_start_aps(const struct acpi_info *ai);
void ap_main(void);

#endif
