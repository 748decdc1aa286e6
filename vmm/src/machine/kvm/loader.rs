//! Kernel, initrd and command line loading, and the boot information the kernel reads
//! (Linux boot_params or the PVH hvm_start_info). Formats:
//! - ELF with the Xen PVH note (XEN_ELFNOTE_PHYS32_ENTRY): 32-bit PVH entry, `%ebx` = start_info;
//! - ELF vmlinux without the note: 64-bit entry at `e_entry`, `%rsi` = boot_params;
//! - bzImage (64-bit boot protocol, XLF_KERNEL_64): entry at the payload + 0x200, `%rsi` = boot_params.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use linux_loader::loader::bootparam::{boot_e820_entry, boot_params};
use linux_loader::loader::elf::start_info::{hvm_memmap_table_entry, hvm_modlist_entry, hvm_start_info};
use linux_loader::loader::{BzImage, Elf, KernelLoader, PvhBootCapability};
use vm_memory::{Bytes, GuestAddress};

use super::layout::{CMDLINE, CMDLINE_MAX, HIGH_RAM_START, PVH_INFO, PVH_MEMMAP, PVH_MODLIST, ZERO_PAGE};
use super::memory::{GuestMemory, e820_map, low_ram_end};
use crate::machine::MachineError;

const PVH_MAGIC: u32 = 0x336e_c578;
const XLF_KERNEL_64: u16 = 1;
const HDRS_MAGIC: u32 = 0x5372_6448;
const KERNEL_LOADER_OTHER: u8 = 0xff;
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x7fff_ffff;

/// How the boot vCPU enters the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootEntry {
    /// 32-bit protected mode, paging off, `%ebx` = the hvm_start_info address.
    Pvh { entry: u64, start_info: u64 },
    /// 64-bit mode with identity-mapped page tables, `%rsi` = the boot_params address.
    Linux64 { entry: u64, boot_params: u64 },
}

/// The files named by `-kernel` and `-initrd`, kept open so a reset reloads them.
#[derive(Debug)]
pub struct BootFiles {
    kernel_path: PathBuf,
    kernel: File,
    initrd_path: Option<PathBuf>,
    initrd: Option<File>,
    cmdline: String,
}

enum KernelFormat {
    Elf,
    BzImage,
}

impl BootFiles {
    /// Open the kernel and initrd (errors name the file as QEMU does) and check the command line.
    pub fn open(kernel: &Path, initrd: Option<&Path>, cmdline: &str) -> Result<Self, MachineError> {
        let kernel_file = File::open(kernel).map_err(|e| {
            MachineError::Boot(format!("could not open kernel file '{}': {}", kernel.display(), io_text(&e)))
        })?;
        let initrd_file = initrd
            .map(|p| {
                File::open(p).map_err(|e| {
                    MachineError::Boot(format!(
                        "could not load initial ram disk '{}': {}",
                        p.display(),
                        io_text(&e)
                    ))
                })
            })
            .transpose()?;
        if cmdline.len() >= CMDLINE_MAX || cmdline.contains('\0') {
            return Err(MachineError::Boot(format!(
                "kernel command line too long or malformed ({} bytes, at most {})",
                cmdline.len(),
                CMDLINE_MAX - 1
            )));
        }
        Ok(BootFiles {
            kernel_path: kernel.to_path_buf(),
            kernel: kernel_file,
            initrd_path: initrd.map(Path::to_path_buf),
            initrd: initrd_file,
            cmdline: cmdline.to_string(),
        })
    }

    fn kernel_error(&self, what: impl std::fmt::Display) -> MachineError {
        MachineError::Boot(format!("could not load kernel '{}': {}", self.kernel_path.display(), what))
    }

    fn detect_format(&mut self) -> Result<KernelFormat, MachineError> {
        let mut head = [0u8; 0x210];
        self.kernel.seek(SeekFrom::Start(0)).map_err(|e| self.kernel_error(e))?;
        let mut filled = 0;
        while filled < head.len() {
            match self.kernel.read(&mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Err(self.kernel_error(e)),
            }
        }
        if filled >= 4 && head[..4] == *b"\x7fELF" {
            return Ok(KernelFormat::Elf);
        }
        if filled >= 0x206
            && u32::from_le_bytes([head[0x202], head[0x203], head[0x204], head[0x205]]) == HDRS_MAGIC
        {
            return Ok(KernelFormat::BzImage);
        }
        Err(self.kernel_error("not a bzImage or an ELF kernel"))
    }

    /// Load everything into guest memory and write the boot information; `rsdp` is the
    /// address of the ACPI RSDP, which both protocols pass to the kernel.
    pub fn load(&mut self, mem: &GuestMemory, mem_size: u64, rsdp: u64) -> Result<BootEntry, MachineError> {
        let low_end = low_ram_end(mem_size);
        let format = self.detect_format()?;
        let himem = Some(GuestAddress(HIGH_RAM_START));
        let (result, initrd_max) = match format {
            KernelFormat::Elf => {
                let r = Elf::load(mem, None, &mut self.kernel, himem).map_err(|e| self.kernel_error(e))?;
                (r, DEFAULT_INITRD_ADDR_MAX)
            }
            KernelFormat::BzImage => {
                let r =
                    BzImage::load(mem, None, &mut self.kernel, himem).map_err(|e| self.kernel_error(e))?;
                let hdr = r.setup_header.unwrap_or_default();
                let (version, xloadflags) = (hdr.version, hdr.xloadflags);
                if version < 0x020c || xloadflags & XLF_KERNEL_64 == 0 {
                    return Err(self.kernel_error("the bzImage does not support the 64-bit boot protocol"));
                }
                let max = u64::from(hdr.initrd_addr_max);
                (r, if max == 0 { 0x37ff_ffff } else { max })
            }
        };
        if result.kernel_end > low_end {
            return Err(self.kernel_error(format!(
                "the kernel ends at {:#x}, beyond the {} MiB of RAM",
                result.kernel_end,
                low_end >> 20
            )));
        }
        let initrd = self.load_initrd(mem, result.kernel_end, low_end.min(initrd_max.saturating_add(1)))?;
        self.write_cmdline(mem)?;
        let cmdline_size = self.cmdline.len() as u32 + 1;
        match (format, result.pvh_boot_cap) {
            (KernelFormat::Elf, PvhBootCapability::PvhEntryPresent(entry)) => {
                write_pvh_info(mem, mem_size, initrd, rsdp)?;
                Ok(BootEntry::Pvh { entry: entry.0, start_info: PVH_INFO })
            }
            (KernelFormat::Elf, _) => {
                let mut params = boot_params::default();
                params.hdr.boot_flag = 0xaa55;
                params.hdr.header = HDRS_MAGIC;
                params.hdr.version = 0x020f;
                params.hdr.kernel_alignment = 0x100_0000;
                fill_boot_params(&mut params, mem_size, initrd, rsdp, cmdline_size);
                write_boot_params(mem, &params)?;
                Ok(BootEntry::Linux64 { entry: result.kernel_load.0, boot_params: ZERO_PAGE })
            }
            (KernelFormat::BzImage, _) => {
                let mut params =
                    boot_params { hdr: result.setup_header.unwrap_or_default(), ..Default::default() };
                let max_cmdline = params.hdr.cmdline_size;
                if max_cmdline != 0 && cmdline_size > max_cmdline + 1 {
                    return Err(self.kernel_error(format!(
                        "command line longer than the kernel accepts ({max_cmdline})"
                    )));
                }
                fill_boot_params(&mut params, mem_size, initrd, rsdp, cmdline_size);
                write_boot_params(mem, &params)?;
                let entry = result.kernel_load.0 + 0x200;
                Ok(BootEntry::Linux64 { entry, boot_params: ZERO_PAGE })
            }
        }
    }

    /// Put the initrd page-aligned at the top of RAM below `limit`; returns (address, size).
    fn load_initrd(
        &mut self,
        mem: &GuestMemory,
        kernel_end: u64,
        limit: u64,
    ) -> Result<Option<(u64, u64)>, MachineError> {
        let (Some(file), Some(path)) = (self.initrd.as_mut(), self.initrd_path.as_ref()) else {
            return Ok(None);
        };
        let err = |what: String| {
            MachineError::Boot(format!("could not load initial ram disk '{}': {what}", path.display()))
        };
        let size = file.seek(SeekFrom::End(0)).map_err(|e| err(io_text(&e)))?;
        let addr = limit
            .checked_sub(size)
            .map(|a| a & !0xfff)
            .filter(|a| *a >= kernel_end)
            .ok_or_else(|| err(format!("{size} bytes do not fit in guest RAM after the kernel")))?;
        file.seek(SeekFrom::Start(0)).map_err(|e| err(io_text(&e)))?;
        let len = usize::try_from(size).map_err(|_| err("too large".into()))?;
        mem.read_exact_volatile_from(GuestAddress(addr), file, len).map_err(|e| err(e.to_string()))?;
        Ok(Some((addr, size)))
    }

    fn write_cmdline(&self, mem: &GuestMemory) -> Result<(), MachineError> {
        let mut bytes = self.cmdline.as_bytes().to_vec();
        bytes.push(0);
        mem.write_slice(&bytes, GuestAddress(CMDLINE))
            .map_err(|e| MachineError::Boot(format!("could not write the kernel command line: {e}")))
    }
}

fn io_text(e: &std::io::Error) -> String {
    // "No such file or directory (os error 2)" -> QEMU prints strerror only.
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn fill_boot_params(
    p: &mut boot_params,
    mem_size: u64,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
    cmdline_size: u32,
) {
    p.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    p.hdr.cmd_line_ptr = CMDLINE as u32;
    p.hdr.cmdline_size = cmdline_size;
    if let Some((addr, size)) = initrd {
        p.hdr.ramdisk_image = addr as u32;
        p.hdr.ramdisk_size = size as u32;
        p.ext_ramdisk_image = (addr >> 32) as u32;
        p.ext_ramdisk_size = (size >> 32) as u32;
    }
    p.acpi_rsdp_addr = rsdp;
    let map = e820_map(mem_size);
    for (slot, e) in p.e820_table.iter_mut().zip(map.iter()) {
        *slot = boot_e820_entry { addr: e.addr, size: e.size, r#type: e.kind };
    }
    p.e820_entries = map.len().min(p.e820_table.len()) as u8;
}

fn write_boot_params(mem: &GuestMemory, p: &boot_params) -> Result<(), MachineError> {
    mem.write_obj(*p, GuestAddress(ZERO_PAGE))
        .map_err(|e| MachineError::Boot(format!("could not write boot_params: {e}")))
}

fn write_pvh_info(
    mem: &GuestMemory,
    mem_size: u64,
    initrd: Option<(u64, u64)>,
    rsdp: u64,
) -> Result<(), MachineError> {
    let err = |e: vm_memory::GuestMemoryError| {
        MachineError::Boot(format!("could not write the PVH start info: {e}"))
    };
    let map = e820_map(mem_size);
    let mut info = hvm_start_info {
        magic: PVH_MAGIC,
        version: 1,
        cmdline_paddr: CMDLINE,
        rsdp_paddr: rsdp,
        memmap_paddr: PVH_MEMMAP,
        memmap_entries: map.len() as u32,
        ..Default::default()
    };
    if let Some((paddr, size)) = initrd {
        info.nr_modules = 1;
        info.modlist_paddr = PVH_MODLIST;
        mem.write_obj(hvm_modlist_entry { paddr, size, ..Default::default() }, GuestAddress(PVH_MODLIST))
            .map_err(err)?;
    }
    for (i, e) in map.iter().enumerate() {
        let entry = hvm_memmap_table_entry { addr: e.addr, size: e.size, type_: e.kind, reserved: 0 };
        mem.write_obj(entry, GuestAddress(PVH_MEMMAP + 24 * i as u64)).map_err(err)?;
    }
    mem.write_obj(info, GuestAddress(PVH_INFO)).map_err(err)
}
