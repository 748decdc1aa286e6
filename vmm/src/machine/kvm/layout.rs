//! The guest physical address map of the machine (x86-64, PC-compatible).
//!
//! ```text
//! 0x0000_0500  GDT used for the boot entry (boot_cpu.rs)
//! 0x0000_6000  PVH hvm_start_info, module list and memory map
//! 0x0000_7000  Linux boot_params (zero page)
//! 0x0000_8ff0  boot stack (grows down)
//! 0x0000_9000  boot page tables: PML4, PDPT, 4 PDs (identity map of the low 4 GiB)
//! 0x0002_0000  kernel command line (up to CMDLINE_MAX bytes)
//! 0x0009_fc00  EBDA (reserved) ... 0x000f_ffff legacy BIOS area (reserved)
//! 0x000e_0000  ACPI: RSDP (found by the BIOS-area scan), then the tables
//! 0x0010_0000  kernel (bzImage payload or ELF segments); initrd at the top of low RAM
//! 0xc000_0000  32-bit PCI MMIO hole up to 0xfec0_0000 (ECAM at 0xe000_0000), no RAM
//! 0xfec0_0000  IOAPIC, 0xfee0_0000 local APICs
//! 0x1_0000_0000 RAM above the hole, then the 64-bit PCI window
//! ```
//! Ports: 0x3f8/0x2f8/0x3e8/0x2e8 UARTs, 0x60/0x64 i8042, 0x70/0x71 CMOS, 0x80 debug port,
//! 0x600..0x60b ACPI PM1a event/control + PM timer, 0xcf9 reset control, 0xcf8/0xcfc left
//! for the PCI host bridge (conf1).

pub const BOOT_GDT: u64 = 0x500;
pub const PVH_INFO: u64 = 0x6000;
pub const PVH_MODLIST: u64 = 0x6040;
pub const PVH_MEMMAP: u64 = 0x6080;
pub const ZERO_PAGE: u64 = 0x7000;
pub const BOOT_STACK: u64 = 0x8ff0;
pub const PML4: u64 = 0x9000;
pub const PDPT: u64 = 0xa000;
pub const PD: u64 = 0xb000;
pub const CMDLINE: u64 = 0x2_0000;
pub const CMDLINE_MAX: usize = 2048;
pub const EBDA_START: u64 = 0x9_fc00;
pub const BIOS_END: u64 = 0x10_0000;
pub const ACPI_START: u64 = 0xe_0000;
pub const ACPI_END: u64 = 0xf_0000;
pub const HIGH_RAM_START: u64 = 0x10_0000;
/// Start of the 32-bit MMIO hole: RAM below 4 GiB ends here at the latest.
pub const MMIO32_START: u64 = 0xc000_0000;
/// PCI ECAM (MCFG), 256 buses.
pub const PCI_ECAM_START: u64 = 0xe000_0000;
pub const PCI_ECAM_SIZE: u64 = 0x1000_0000;
pub const IOAPIC_ADDR: u64 = 0xfec0_0000;
pub const LAPIC_ADDR: u64 = 0xfee0_0000;
pub const RAM_ABOVE_4G: u64 = 0x1_0000_0000;
/// KVM needs three pages for the TSS and one for the identity map (Intel), inside the hole.
pub const KVM_TSS_ADDR: u64 = 0xfffb_d000;
pub const KVM_IDENTITY_MAP_ADDR: u64 = 0xfffb_c000;

pub const COM_PORTS: [(u16, u32); 4] = [(0x3f8, 4), (0x2f8, 3), (0x3e8, 4), (0x2e8, 3)];
pub const I8042_PORT: u16 = 0x60;
pub const CMOS_PORT: u16 = 0x70;
pub const DEBUG_PORT: u16 = 0x80;
pub const PM_BASE: u16 = 0x600;
pub const PM1_EVT: u16 = PM_BASE;
pub const PM1_CNT: u16 = PM_BASE + 4;
pub const PM_TMR: u16 = PM_BASE + 8;
pub const RESET_CONTROL_PORT: u16 = 0xcf9;
/// The ACPI SCI (PIIX4 and ICH9 both use ISA IRQ 9, level, active high).
pub const SCI_IRQ: u32 = 9;
/// S5 sleep type written to PM1a_CNT.SLP_TYP, published in the DSDT's `\_S5`.
pub const S5_SLEEP_TYPE: u8 = 5;
