//! What `query-pci` / `info pci` report about each function, read from its config space.

use super::config::{
    BarKind, CLASS_PROG, DEVICE_ID, INTERRUPT_LINE, PciConfig, SUBSYSTEM_ID, SUBSYSTEM_VENDOR_ID, VENDOR_ID,
};

/// One BAR as QEMU's PciMemoryRegion describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciRegionInfo {
    pub bar: u8,
    /// `"io"` or `"memory"`.
    pub kind: &'static str,
    /// The programmed address (`u64::MAX` when unassigned, as QEMU reports -1).
    pub address: u64,
    pub size: u64,
    pub prefetch: bool,
    pub mem_type_64: bool,
}

/// One function as QEMU's PciDeviceInfo describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PciDeviceInfo {
    pub bus: u8,
    pub slot: u8,
    pub function: u8,
    /// Class and subclass (`0x0100`).
    pub class: u16,
    pub class_desc: Option<&'static str>,
    pub vendor: u16,
    pub device: u16,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
    pub irq_pin: u8,
    pub irq: u8,
    pub qdev_id: String,
    pub regions: Vec<PciRegionInfo>,
}

/// QEMU's `pci_class_descriptions` (hw/pci/pci.c), class + subclass.
const CLASS_NAMES: &[(u16, &str)] = &[
    (0x0001, "VGA controller"),
    (0x0100, "SCSI controller"),
    (0x0101, "IDE controller"),
    (0x0102, "Floppy controller"),
    (0x0103, "IPI controller"),
    (0x0104, "RAID controller"),
    (0x0106, "SATA controller"),
    (0x0107, "SAS controller"),
    (0x0180, "Storage controller"),
    (0x0200, "Ethernet controller"),
    (0x0201, "Token Ring controller"),
    (0x0202, "FDDI controller"),
    (0x0203, "ATM controller"),
    (0x0280, "Network controller"),
    (0x0300, "VGA controller"),
    (0x0301, "XGA controller"),
    (0x0302, "3D controller"),
    (0x0380, "Display controller"),
    (0x0400, "Video controller"),
    (0x0401, "Audio controller"),
    (0x0402, "Phone"),
    (0x0403, "Audio controller"),
    (0x0480, "Multimedia controller"),
    (0x0500, "RAM controller"),
    (0x0501, "Flash controller"),
    (0x0580, "Memory controller"),
    (0x0600, "Host bridge"),
    (0x0601, "ISA bridge"),
    (0x0602, "EISA bridge"),
    (0x0603, "MC bridge"),
    (0x0604, "PCI bridge"),
    (0x0605, "PCMCIA bridge"),
    (0x0606, "NUBUS bridge"),
    (0x0607, "CARDBUS bridge"),
    (0x0608, "RACEWAY bridge"),
    (0x0680, "Bridge"),
    (0x0700, "Serial port"),
    (0x0701, "Parallel port"),
    (0x0800, "Interrupt controller"),
    (0x0801, "DMA controller"),
    (0x0802, "Timer"),
    (0x0803, "RTC"),
    (0x0900, "Keyboard"),
    (0x0901, "Pen"),
    (0x0902, "Mouse"),
    (0x0a00, "Dock station"),
    (0x0b00, "i386 cpu"),
    (0x0c00, "Firewire controller"),
    (0x0c01, "Access bus controller"),
    (0x0c02, "SSA controller"),
    (0x0c03, "USB controller"),
    (0x0c04, "Fibre channel controller"),
    (0x0c05, "SMBus"),
];

pub fn class_description(class: u16) -> Option<&'static str> {
    CLASS_NAMES.iter().find(|(c, _)| *c == class).map(|(_, d)| *d)
}

impl PciDeviceInfo {
    pub fn from_config(bus: u8, slot: u8, function: u8, cfg: &PciConfig, qdev_id: String) -> Self {
        let class = cfg.read_u16(CLASS_PROG + 1);
        let regions = cfg
            .bar_specs()
            .map(|(i, spec)| PciRegionInfo {
                bar: i as u8,
                kind: if spec.kind == BarKind::Io { "io" } else { "memory" },
                address: match cfg.bar_addr(i) {
                    Some(a) if a != 0 => a,
                    _ => u64::MAX,
                },
                size: spec.size,
                prefetch: spec.prefetchable,
                mem_type_64: spec.kind == BarKind::Mem64,
            })
            .collect();
        PciDeviceInfo {
            bus,
            slot,
            function,
            class,
            class_desc: class_description(class),
            vendor: cfg.read_u16(VENDOR_ID),
            device: cfg.read_u16(DEVICE_ID),
            subsystem_vendor: cfg.read_u16(SUBSYSTEM_VENDOR_ID),
            subsystem: cfg.read_u16(SUBSYSTEM_ID),
            irq_pin: cfg.interrupt_pin(),
            irq: cfg.read_u8(INTERRUPT_LINE),
            qdev_id,
            regions,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::fixtures;
    use super::*;

    #[test]
    fn describes_a_virtio_blk_function() {
        let mut cfg = fixtures::virtio_like();
        cfg.set_bar_addr(4, 0xc000_0000);
        let i = PciDeviceInfo::from_config(0, 2, 0, &cfg, "vd0".into());
        assert_eq!(i.class, 0x0100);
        assert_eq!(i.class_desc, Some("SCSI controller"));
        assert_eq!((i.vendor, i.device, i.subsystem_vendor, i.subsystem), (0x1af4, 0x1042, 0x1af4, 0x1100));
        assert_eq!(i.regions.len(), 2);
        assert_eq!(i.regions[0].address, u64::MAX);
        assert_eq!(
            (i.regions[1].address, i.regions[1].mem_type_64, i.regions[1].prefetch),
            (0xc000_0000, true, true)
        );
        assert_eq!(class_description(0x0d00), None);
    }
}
