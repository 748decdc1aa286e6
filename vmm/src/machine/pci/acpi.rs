//! How the guest learns about the PCI host bridge: `\_SB.PCI0` (PNP0A03, bus 0, its I/O and
//! memory windows) and a motherboard-resources device reserving the ECAM area, both in the
//! DSDT, plus the MCFG table pointing at ECAM for bus 0.
//!
//! No `_PRT`: functions have no INTx pin on this machine (MSI-X only), so there is nothing to route.

use acpi_tables::aml::{
    self, AddressSpace, AddressSpaceCacheable, EISAName, IO, Memory32Fixed, Name, ResourceTemplate,
};
use acpi_tables::mcfg::MCFG;
use acpi_tables::{Aml, AmlSink};

use super::host::{CONF1_LEN, CONF1_PORT, ECAM_BUS_SIZE};
use crate::machine::kvm::acpi::{OEM_ID, OEM_REVISION, OEM_TABLE_ID};

/// The windows the bridge forwards to PCI.
#[derive(Debug, Clone, Copy)]
pub struct PciWindows {
    /// 32-bit MMIO window for BARs (base, size).
    pub mmio: (u64, u64),
    /// ECAM base (bus 0 only).
    pub ecam: u64,
}

fn bytes(a: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    a.to_aml_bytes(&mut v);
    v
}

/// AML for `\_SB` (PCI0 and the ECAM reservation).
pub fn sb_aml(w: &PciWindows) -> Vec<u8> {
    let hid = Name::new("_HID".into(), &EISAName::new("PNP0A03"));
    let adr = Name::new("_ADR".into(), &0u8);
    let seg = Name::new("_SEG".into(), &0u8);
    let uid = Name::new("_UID".into(), &0u8);
    let bbn = Name::new("_BBN".into(), &0u8);
    let bus = AddressSpace::<u16>::new_bus_number(0, 0);
    let conf1 = IO::new(CONF1_PORT, CONF1_PORT, 1, CONF1_LEN as u8);
    let io_low = AddressSpace::<u16>::new_io(0x0000, CONF1_PORT - 1, None);
    let io_high = AddressSpace::<u16>::new_io(0x0d00, 0xffff, None);
    let mmio = AddressSpace::<u32>::new_memory(
        AddressSpaceCacheable::NotCacheable,
        true,
        w.mmio.0 as u32,
        (w.mmio.0 + w.mmio.1 - 1) as u32,
        None,
    );
    let crs = Name::new("_CRS".into(), &ResourceTemplate::new(vec![&bus, &conf1, &io_low, &io_high, &mmio]));
    let pci0 = aml::Device::new("PCI0".into(), vec![&hid, &adr, &seg, &uid, &bbn, &crs]);

    let mres_hid = Name::new("_HID".into(), &EISAName::new("PNP0C02"));
    let mres_uid = Name::new("_UID".into(), &1u8);
    let ecam = Memory32Fixed::new(false, w.ecam as u32, ECAM_BUS_SIZE as u32);
    let mres_crs = Name::new("_CRS".into(), &ResourceTemplate::new(vec![&ecam]));
    let mres = aml::Device::new("MRES".into(), vec![&mres_hid, &mres_uid, &mres_crs]);

    let mut v = bytes(&pci0);
    v.extend(bytes(&mres));
    v
}

/// The MCFG table: ECAM for segment 0, bus 0.
pub fn mcfg(w: &PciWindows) -> Vec<u8> {
    let mut t = MCFG::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    t.add_ecam(w.ecam, 0, 0, 0);
    let mut v: Vec<u8> = Vec::new();
    t.to_aml_bytes(&mut v as &mut dyn AmlSink);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcfg_checksum_and_entry() {
        let t = mcfg(&PciWindows { mmio: (0xc000_0000, 0x2000_0000), ecam: 0xe000_0000 });
        assert_eq!(&t[..4], b"MCFG");
        assert_eq!(t.len(), 60);
        assert_eq!(t.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0);
        assert_eq!(u64::from_le_bytes(t[44..52].try_into().unwrap()), 0xe000_0000);
        assert_eq!((t[54], t[55]), (0, 0), "bus 0 only");
        let a = sb_aml(&PciWindows { mmio: (0xc000_0000, 0x2000_0000), ecam: 0xe000_0000 });
        assert!(a.windows(4).any(|w| w == b"PCI0"));
        assert!(a.windows(4).any(|w| w == b"MRES"));
    }
}
