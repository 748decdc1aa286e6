//! ACPI tables, built once per boot and copied to `ACPI_START` (inside the BIOS area, where the
//! RSDP scan looks; both boot protocols also pass its address):
//! RSDP → XSDT → { FADT → (DSDT, FACS), MADT, extra tables (e.g. MCFG) }.
//!
//! FADT: PM1a event/control blocks and the PM timer at `PM_BASE`, SCI on IRQ 9, fixed-feature
//! power button, reset register 0xcf9 ← 6, an i8042 present. DSDT: `\_S5` and, under `\_SB`,
//! the COM ports, the power button device and whatever the caller adds (a PCI host bridge).
//! MADT: one local APIC per vCPU, the IOAPIC, IRQ0→GSI2 and SCI overrides, LINT1 = NMI.

use acpi_tables::aml::{self, EISAName, IO, Interrupt, Name, Package, Path, ResourceTemplate};
use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::gas::{AccessSize, AddressSpace, GAS};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{Aml, AmlSink};

use super::layout::{
    ACPI_END, ACPI_START, COM_PORTS, IOAPIC_ADDR, LAPIC_ADDR, PM_TMR, PM1_CNT, PM1_EVT, RESET_CONTROL_PORT,
    S5_SLEEP_TYPE, SCI_IRQ,
};

pub const OEM_ID: [u8; 6] = *b"RSVMM ";
pub const OEM_TABLE_ID: [u8; 8] = *b"RSVMMACP";
pub const OEM_REVISION: u32 = 1;

/// What the tables describe.
#[derive(Debug, Clone, Default)]
pub struct AcpiConfig {
    /// APIC IDs of the vCPUs, in index order.
    pub apic_ids: Vec<u32>,
    /// How many of the COM ports (COM1 first) exist.
    pub serial_ports: usize,
    /// Pre-encoded AML appended inside `\_SB` (e.g. a PCI0 device).
    pub extra_sb_aml: Vec<u8>,
    /// Complete extra tables (header and checksum included) listed in the XSDT.
    pub extra_tables: Vec<Vec<u8>>,
}

/// One table as placed in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedTable {
    pub signature: String,
    pub addr: u64,
    pub bytes: Vec<u8>,
}

/// The tables and where they go: `image` is copied to `ACPI_START`.
#[derive(Debug, Clone)]
pub struct AcpiTables {
    pub rsdp_addr: u64,
    pub image: Vec<u8>,
    pub tables: Vec<PlacedTable>,
}

struct RawAml<'a>(&'a [u8]);
impl Aml for RawAml<'_> {
    fn to_aml_bytes(&self, sink: &mut dyn AmlSink) {
        sink.vec(self.0);
    }
}

fn aml_bytes(a: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    a.to_aml_bytes(&mut v);
    v
}

impl AcpiTables {
    /// Debug helper: write each table to `DIR/<SIGNATURE>.dat` (what `iasl -d` takes).
    pub fn write_to_dir(&self, dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let mut files = Vec::new();
        for t in &self.tables {
            let file = dir.join(format!("{}.dat", t.signature));
            std::fs::write(&file, &t.bytes)?;
            files.push(file);
        }
        Ok(files)
    }
}

fn dsdt(config: &AcpiConfig) -> Vec<u8> {
    let s5_typ = S5_SLEEP_TYPE;
    let s5 = Name::new(Path::new("\\_S5_"), &Package::new(vec![&s5_typ, &s5_typ, &0u8, &0u8]));
    let mut sb_children: Vec<Vec<u8>> = Vec::new();
    for (i, &(port, irq)) in COM_PORTS.iter().take(config.serial_ports).enumerate() {
        let hid = Name::new("_HID".into(), &EISAName::new("PNP0501"));
        let uid = Name::new("_UID".into(), &(i as u8 + 1));
        let io = IO::new(port, port, 8, 8);
        let int = Interrupt::new(true, true, false, false, irq);
        let crs = Name::new("_CRS".into(), &ResourceTemplate::new(vec![&io, &int]));
        let dev = aml::Device::new(format!("COM{}", i + 1).as_str().into(), vec![&hid, &uid, &crs]);
        sb_children.push(aml_bytes(&dev));
    }
    let pwrb_hid = Name::new("_HID".into(), &EISAName::new("PNP0C0C"));
    let pwrb_uid = Name::new("_UID".into(), &0u8);
    sb_children.push(aml_bytes(&aml::Device::new("PWRB".into(), vec![&pwrb_hid, &pwrb_uid])));
    sb_children.push(config.extra_sb_aml.clone());
    let raw: Vec<RawAml> = sb_children.iter().map(|b| RawAml(b)).collect();
    let sb = aml::Scope::new("\\_SB_".into(), raw.iter().map(|r| r as &dyn Aml).collect());

    let mut table = Sdt::new(*b"DSDT", 36, 2, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    table.append_slice(&aml_bytes(&s5));
    table.append_slice(&aml_bytes(&sb));
    table.as_slice().to_vec()
}

fn facs() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..4].copy_from_slice(b"FACS");
    f[4..8].copy_from_slice(&64u32.to_le_bytes());
    f[32] = 2; // version
    f
}

fn io_gas(port: u16, bits: u8, access: AccessSize) -> GAS {
    GAS::new(AddressSpace::SystemIo, bits, 0, access, u64::from(port))
}

fn fadt(dsdt_addr: u64, facs_addr: u64) -> Vec<u8> {
    let mut b = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .dsdt_64(dsdt_addr)
        .firmware_ctrl_64(facs_addr)
        .flag(Flags::Wbinvd)
        .flag(Flags::ProcC1)
        .flag(Flags::SlpButton)
        .flag(Flags::TmrValExt)
        .flag(Flags::ResetRegSup);
    b.sci_int = (SCI_IRQ as u16).into();
    b.pm1a_evt_blk = u32::from(PM1_EVT).into();
    b.pm1a_cnt_blk = u32::from(PM1_CNT).into();
    b.pm_tmr_blk = u32::from(PM_TMR).into();
    b.pm1_evt_len = 4;
    b.pm1_cnt_len = 2;
    b.pm_tmr_len = 4;
    b.century = 0x32;
    b.iapc_boot_arch = 0x3u16.into(); // legacy devices, 8042
    b.x_pm1a_evt_blk = io_gas(PM1_EVT, 32, AccessSize::WordAccess);
    b.x_pm1a_cnt_blk = io_gas(PM1_CNT, 16, AccessSize::WordAccess);
    b.x_pm_tmr_blk = io_gas(PM_TMR, 32, AccessSize::DwordAccess);
    b.reset_reg = io_gas(RESET_CONTROL_PORT, 8, AccessSize::ByteAccess);
    b.reset_value = 6;
    aml_bytes(&b.finalize())
}

fn madt(apic_ids: &[u32]) -> Vec<u8> {
    let mut t = Sdt::new(*b"APIC", 44, 3, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    t.write_u32(36, LAPIC_ADDR as u32);
    t.write_u32(40, 1); // PCAT_COMPAT: dual 8259s present
    for (uid, &id) in apic_ids.iter().enumerate() {
        if id < 255 && uid < 255 {
            t.append_slice(&[0, 8, uid as u8, id as u8, 1, 0, 0, 0]);
        } else {
            let mut e = vec![9, 16, 0, 0];
            e.extend_from_slice(&id.to_le_bytes());
            e.extend_from_slice(&1u32.to_le_bytes());
            e.extend_from_slice(&(uid as u32).to_le_bytes());
            t.append_slice(&e);
        }
    }
    let mut ioapic = vec![1, 12, 0, 0];
    ioapic.extend_from_slice(&(IOAPIC_ADDR as u32).to_le_bytes());
    ioapic.extend_from_slice(&0u32.to_le_bytes());
    t.append_slice(&ioapic);
    // Interrupt source overrides: the PIT's IRQ0 is GSI 2; the SCI is level, active high.
    for (irq, gsi, flags) in [(0u8, 2u32, 0u16), (SCI_IRQ as u8, SCI_IRQ, 0xd)] {
        let mut e = vec![2, 10, 0, irq];
        e.extend_from_slice(&gsi.to_le_bytes());
        e.extend_from_slice(&flags.to_le_bytes());
        t.append_slice(&e);
    }
    t.append_slice(&[4, 6, 0xff, 0, 0, 1]); // local APIC NMI: all processors, LINT1
    t.as_slice().to_vec()
}

fn align(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

/// Build every table and lay them out from `ACPI_START`.
pub fn build(config: &AcpiConfig) -> AcpiTables {
    let base = ACPI_START;
    let mut image: Vec<u8> = Vec::new();
    let mut tables = Vec::new();
    let mut place = |image: &mut Vec<u8>, bytes: Vec<u8>, alignment: usize, sig: &str| -> u64 {
        let off = align(image.len(), alignment);
        image.resize(off, 0);
        image.extend_from_slice(&bytes);
        let addr = base + off as u64;
        tables.push(PlacedTable { signature: sig.to_string(), addr, bytes });
        addr
    };
    // The RSDP goes first so that it sits on a 16-byte boundary at the start of the area.
    image.resize(Rsdp::len(), 0);
    let dsdt_addr = place(&mut image, dsdt(config), 16, "DSDT");
    let facs_addr = place(&mut image, facs(), 64, "FACS");
    let fadt_addr = place(&mut image, fadt(dsdt_addr, facs_addr), 16, "FACP");
    let madt_addr = place(&mut image, madt(&config.apic_ids), 16, "APIC");
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    for extra in &config.extra_tables {
        let sig = String::from_utf8_lossy(extra.get(..4).unwrap_or(b"????")).into_owned();
        let addr = place(&mut image, extra.clone(), 16, &sig);
        xsdt.add_entry(addr);
    }
    let xsdt_addr = place(&mut image, aml_bytes(&xsdt), 16, "XSDT");
    let rsdp = aml_bytes(&Rsdp::new(OEM_ID, xsdt_addr));
    image[..rsdp.len()].copy_from_slice(&rsdp);
    tables.insert(0, PlacedTable { signature: "RSDP".into(), addr: base, bytes: rsdp });
    debug_assert!(base + image.len() as u64 <= ACPI_END);
    AcpiTables { rsdp_addr: base, image, tables }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    #[test]
    fn checksums_and_layout() {
        let t = build(&AcpiConfig { apic_ids: vec![0, 1, 2], serial_ports: 2, ..Default::default() });
        for table in &t.tables {
            match table.signature.as_str() {
                "FACS" => {}
                "RSDP" => {
                    assert_eq!(sum(&table.bytes[..20]), 0);
                    assert_eq!(sum(&table.bytes), 0);
                }
                _ => {
                    assert_eq!(sum(&table.bytes), 0, "{} checksum", table.signature);
                    let len = u32::from_le_bytes(table.bytes[4..8].try_into().unwrap()) as usize;
                    assert_eq!(len, table.bytes.len());
                }
            }
            let off = (table.addr - ACPI_START) as usize;
            assert_eq!(&t.image[off..off + table.bytes.len()], table.bytes.as_slice());
        }
        let madt = &t.tables.iter().find(|t| t.signature == "APIC").unwrap().bytes;
        let cpus = madt[44..].windows(2).filter(|w| w == &[0, 8]).count();
        assert!(cpus >= 3);
        let dsdt = &t.tables.iter().find(|t| t.signature == "DSDT").unwrap().bytes;
        let s5 = dsdt.windows(4).position(|w| w == b"_S5_").unwrap();
        assert_eq!(&dsdt[s5 + 4..s5 + 9], &[0x12, 0x08, 0x04, 0x0a, S5_SLEEP_TYPE]);
        assert!(dsdt.windows(4).any(|w| w == b"COM2"));
    }
}
