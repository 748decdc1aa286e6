//! Register state of the boot vCPU at the kernel entry, as a loader leaves it: the GDT, the
//! identity-mapped page tables for 64-bit entry, segment/control registers and the FPU.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_segment, kvm_sregs};
use vm_memory::{Bytes, GuestAddress};

use super::layout::{BOOT_GDT, BOOT_STACK, PD, PDPT, PML4};
use super::loader::BootEntry;
use super::memory::GuestMemory;
use crate::machine::MachineError;

/// GDT slots: 0x08 flat 32-bit code (PVH), 0x10 64-bit code (`__BOOT_CS`),
/// 0x18 flat data (`__BOOT_DS`), 0x20 TSS.
const GDT: [u64; 5] = [
    0,
    gdt_entry(0xc09b, 0, 0xfffff),
    gdt_entry(0xa09b, 0, 0xfffff),
    gdt_entry(0xc093, 0, 0xfffff),
    gdt_entry(0x008b, 0, 0x67),
];
const CODE32_SEL: u16 = 0x08;
const CODE64_SEL: u16 = 0x10;
const DATA_SEL: u16 = 0x18;
const TSS_SEL: u16 = 0x20;

const CR0_PE: u64 = 1;
const CR0_ET: u64 = 1 << 4;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;

/// A descriptor from its flags (access byte + the flags nibble in bits 12..15), base and limit.
const fn gdt_entry(flags: u16, base: u32, limit: u32) -> u64 {
    ((base as u64 & 0xff00_0000) << 32)
        | ((base as u64 & 0x00ff_ffff) << 16)
        | (limit as u64 & 0x0000_ffff)
        | ((limit as u64 & 0x000f_0000) << 32)
        | ((flags as u64 & 0xf0ff) << 40)
}

fn segment(selector: u16) -> kvm_segment {
    let entry = GDT[usize::from(selector >> 3)];
    let flags = (entry >> 40) & 0xf0ff;
    let limit = ((entry & 0xffff) | ((entry >> 32) & 0xf_0000)) as u32;
    let g = ((flags >> 15) & 1) as u8;
    kvm_segment {
        base: 0,
        limit: if g == 1 { (limit << 12) | 0xfff } else { limit },
        selector,
        type_: (flags & 0xf) as u8,
        present: ((flags >> 7) & 1) as u8,
        dpl: ((flags >> 5) & 3) as u8,
        db: ((flags >> 14) & 1) as u8,
        s: ((flags >> 4) & 1) as u8,
        l: ((flags >> 13) & 1) as u8,
        g,
        avl: ((flags >> 12) & 1) as u8,
        unusable: 0,
        padding: 0,
    }
}

fn write_err(e: vm_memory::GuestMemoryError) -> MachineError {
    MachineError::Boot(format!("could not write the boot page tables: {e}"))
}

/// The GDT and an identity map of the low 4 GiB with 2 MiB pages.
pub fn write_boot_tables(mem: &GuestMemory) -> Result<(), MachineError> {
    for (i, e) in GDT.iter().enumerate() {
        mem.write_obj(*e, GuestAddress(BOOT_GDT + 8 * i as u64)).map_err(write_err)?;
    }
    mem.write_obj(PDPT | 0x3, GuestAddress(PML4)).map_err(write_err)?;
    for i in 0..4u64 {
        mem.write_obj((PD + i * 0x1000) | 0x3, GuestAddress(PDPT + 8 * i)).map_err(write_err)?;
    }
    let mut pd = vec![0u8; 4 * 4096];
    for (i, chunk) in pd.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(((i as u64) << 21) | 0x83).to_le_bytes());
    }
    mem.write_slice(&pd, GuestAddress(PD)).map_err(write_err)
}

/// The boot vCPU's registers for `entry`, starting from what KVM reported after creation.
pub fn boot_registers(entry: BootEntry, mut sregs: kvm_sregs) -> (kvm_regs, kvm_sregs) {
    let mut regs = kvm_regs { rflags: 0x2, ..Default::default() };
    sregs.gdt.base = BOOT_GDT;
    sregs.gdt.limit = (std::mem::size_of_val(&GDT) - 1) as u16;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.tr = segment(TSS_SEL);
    sregs.tr.type_ = 11; // busy 32/64-bit TSS
    let data = segment(DATA_SEL);
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    match entry {
        BootEntry::Pvh { entry, start_info } => {
            regs.rip = entry;
            regs.rbx = start_info;
            sregs.cs = segment(CODE32_SEL);
            sregs.cr0 = CR0_PE | CR0_ET;
            sregs.cr3 = 0;
            sregs.cr4 = 0;
            sregs.efer = 0;
        }
        BootEntry::Linux64 { entry, boot_params } => {
            regs.rip = entry;
            regs.rsi = boot_params;
            regs.rsp = BOOT_STACK;
            regs.rbp = BOOT_STACK;
            sregs.cs = segment(CODE64_SEL);
            sregs.cr0 = CR0_PE | CR0_ET | CR0_PG;
            sregs.cr3 = PML4;
            sregs.cr4 = CR4_PAE;
            sregs.efer = EFER_LME | EFER_LMA;
        }
    }
    (regs, sregs)
}

/// x87 and SSE control words as after FNINIT / reset.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu { fcw: 0x37f, mxcsr: 0x1f80, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_decode_as_written() {
        let cs = segment(CODE64_SEL);
        assert_eq!((cs.l, cs.db, cs.type_, cs.s, cs.present, cs.g), (1, 0, 0xb, 1, 1, 1));
        assert_eq!(cs.limit, 0xffff_ffff);
        let cs32 = segment(CODE32_SEL);
        assert_eq!((cs32.l, cs32.db), (0, 1));
        assert_eq!(GDT[3], 0x00cf_9300_0000_ffff);
    }

    #[test]
    fn long_mode_entry_has_paging_and_rsi() {
        let (regs, sregs) =
            boot_registers(BootEntry::Linux64 { entry: 0x100200, boot_params: 0x7000 }, kvm_sregs::default());
        assert_eq!((regs.rip, regs.rsi), (0x100200, 0x7000));
        assert_eq!(sregs.efer, EFER_LME | EFER_LMA);
        assert_eq!(sregs.cs.selector, 0x10);
        assert_eq!(sregs.ds.selector, 0x18);
        let (regs, sregs) =
            boot_registers(BootEntry::Pvh { entry: 0x100000, start_info: 0x6000 }, kvm_sregs::default());
        assert_eq!((regs.rip, regs.rbx, sregs.cr0 & CR0_PG), (0x100000, 0x6000, 0));
    }
}
