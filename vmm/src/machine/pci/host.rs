//! The host bridge: its own function at 00:00.0, configuration mechanism #1 (ports 0xcf8 and
//! 0xcfc-0xcff) and ECAM (memory-mapped config space, described in ACPI's MCFG).
//!
//! Port 0xcf9 sits inside the conf1 range but is the reset control register on a PC; byte
//! accesses to it are handed to that device (the machine gives it to [`Conf1::new`]).

use std::sync::Arc;

use super::config::{PciConfig, PciId};
use super::root::{PciFunction, PciRoot};
use crate::machine::kvm::bus::{BusDevice, SharedDevice};

/// Red Hat's "QEMU PCIe host bridge" IDs (no Linux quirks attached to them).
pub const HOST_BRIDGE_ID: PciId = PciId {
    vendor: 0x1b36,
    device: 0x0008,
    revision: 0,
    class: 0x060000,
    subsystem_vendor: 0x1af4,
    subsystem: 0x1100,
};

/// Port of the conf1 address register; data at +4.
pub const CONF1_PORT: u16 = 0xcf8;
pub const CONF1_LEN: u64 = 8;
/// Bytes of ECAM space per bus (32 devices x 8 functions x 4 KiB).
pub const ECAM_BUS_SIZE: u64 = 1 << 20;

/// Function 00:00.0.
pub struct HostBridge {
    cfg: PciConfig,
}

impl HostBridge {
    pub fn new() -> Self {
        let mut cfg = PciConfig::new(HOST_BRIDGE_ID);
        cfg.freeze_initial_state();
        HostBridge { cfg }
    }
}

impl Default for HostBridge {
    fn default() -> Self {
        Self::new()
    }
}

impl PciFunction for HostBridge {
    fn config(&self) -> &PciConfig {
        &self.cfg
    }
    fn config_mut(&mut self) -> &mut PciConfig {
        &mut self.cfg
    }
    fn read_bar(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn write_bar(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
    fn reset(&mut self) {
        self.cfg.reset();
    }
    fn qdev_id(&self) -> String {
        String::new()
    }
}

/// Configuration mechanism #1.
pub struct Conf1 {
    root: Arc<PciRoot>,
    address: u32,
    reset_control: Option<SharedDevice>,
}

impl Conf1 {
    pub fn new(root: Arc<PciRoot>, reset_control: Option<SharedDevice>) -> Self {
        Conf1 { root, address: 0, reset_control }
    }

    /// (bus, device, function, register) of the latched address, if enabled.
    fn target(&self, data_offset: u64) -> Option<(u8, u8, u8, usize)> {
        if self.address & 0x8000_0000 == 0 {
            return None;
        }
        let a = self.address;
        let reg = (a & 0xfc) as usize + data_offset as usize;
        Some(((a >> 16) as u8, ((a >> 11) & 0x1f) as u8, ((a >> 8) & 0x7) as u8, reg))
    }

    fn data_access_ok(offset: u64, len: usize) -> bool {
        matches!(len, 1 | 2 | 4) && (offset - 4) as usize + len <= 4
    }
}

impl BusDevice for Conf1 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        match offset {
            0 if data.len() == 4 => data.copy_from_slice(&self.address.to_le_bytes()),
            1 if data.len() == 1 => {
                if let Some(rc) = &self.reset_control {
                    rc.lock().unwrap_or_else(|p| p.into_inner()).read(0, data);
                }
            }
            4..=7 if Self::data_access_ok(offset, data.len()) => {
                if let Some((bus, dev, func, reg)) = self.target(offset - 4) {
                    self.root.config_read(bus, dev, func, reg, data);
                }
            }
            _ => {}
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        match offset {
            0 if data.len() == 4 => {
                self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) & 0x80ff_fffc;
            }
            1 if data.len() == 1 => {
                if let Some(rc) = &self.reset_control {
                    rc.lock().unwrap_or_else(|p| p.into_inner()).write(0, data);
                }
            }
            4..=7 if Self::data_access_ok(offset, data.len()) => {
                if let Some((bus, dev, func, reg)) = self.target(offset - 4) {
                    self.root.config_write(bus, dev, func, reg, data);
                }
            }
            _ => tracing::debug!(offset, len = data.len(), "conf1: unsupported access ignored"),
        }
    }
}

/// ECAM: bus 0 only (the MCFG entry says so).
pub struct Ecam {
    root: Arc<PciRoot>,
}

impl Ecam {
    pub fn new(root: Arc<PciRoot>) -> Self {
        Ecam { root }
    }

    fn decode(offset: u64, len: usize) -> Option<(u8, u8, u8, usize)> {
        if !matches!(len, 1 | 2 | 4) || !offset.is_multiple_of(len as u64) {
            return None;
        }
        Some((
            (offset >> 20) as u8,
            ((offset >> 15) & 0x1f) as u8,
            ((offset >> 12) & 7) as u8,
            (offset & 0xfff) as usize,
        ))
    }
}

impl BusDevice for Ecam {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if data.len() == 8 {
            // Two dword accesses, as a 64-bit CPU access to ECAM is split by real chipsets.
            let (lo, hi) = data.split_at_mut(4);
            self.read(offset, lo);
            self.read(offset + 4, hi);
            return;
        }
        if let Some((bus, dev, func, reg)) = Self::decode(offset, data.len()) {
            self.root.config_read(bus, dev, func, reg, data);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() == 8 {
            self.write(offset, &data[..4]);
            self.write(offset + 4, &data[4..]);
            return;
        }
        match Self::decode(offset, data.len()) {
            Some((bus, dev, func, reg)) => self.root.config_write(bus, dev, func, reg, data),
            None => tracing::debug!(offset, len = data.len(), "ECAM: unaligned access ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::machine::kvm::bus::Bus;

    struct Latch(u8);
    impl BusDevice for Latch {
        fn read(&mut self, _o: u64, d: &mut [u8]) {
            d[0] = self.0;
        }
        fn write(&mut self, _o: u64, d: &[u8]) {
            self.0 = d[0];
        }
    }

    fn root() -> Arc<PciRoot> {
        let r = PciRoot::new(
            Arc::new(Bus::new()),
            Arc::new(Bus::new()),
            (0xc000_0000, 0x1000_0000),
            (0xc000, 0x1000),
        )
        .unwrap();
        r.add(Arc::new(std::sync::Mutex::new(HostBridge::new())), Some(0)).unwrap();
        Arc::new(r)
    }

    #[test]
    fn conf1_reads_the_host_bridge_and_forwards_cf9() {
        let rc: SharedDevice = Arc::new(Mutex::new(Latch(0)));
        let mut c = Conf1::new(root(), Some(rc.clone()));
        let mut d = [0u8; 4];
        c.read(4, &mut d);
        assert_eq!(d, [0xff; 4], "disabled address");
        c.write(0, &0x8000_0000u32.to_le_bytes());
        c.read(4, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x0008_1b36);
        let mut w = [0u8; 2];
        c.read(6, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x0008);
        c.write(0, &0x8000_0008u32.to_le_bytes());
        let mut b = [0u8; 1];
        c.read(7, &mut b);
        assert_eq!(b[0], 0x06, "class: bridge");
        c.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x8000_0008);
        c.write(0, &0x8000_0800u32.to_le_bytes()); // device 1: absent
        c.read(4, &mut d);
        assert_eq!(d, [0xff; 4]);
        c.write(1, &[6]);
        assert_eq!(rc.lock().unwrap().read_u8(), 6);
        c.read(6, &mut d); // straddles the end: ignored
        assert_eq!(d, [0xff; 4]);
    }

    trait ReadU8 {
        fn read_u8(&mut self) -> u8;
    }
    impl ReadU8 for dyn BusDevice {
        fn read_u8(&mut self) -> u8 {
            let mut b = [0u8];
            self.read(0, &mut b);
            b[0]
        }
    }

    #[test]
    fn ecam_decodes_and_rejects_unaligned() {
        let mut e = Ecam::new(root());
        let mut d = [0u8; 4];
        e.read(0, &mut d);
        assert_eq!(u32::from_le_bytes(d), 0x0008_1b36);
        e.read(1, &mut d);
        assert_eq!(d, [0xff; 4]);
        let mut q = [0u8; 8];
        e.read(0, &mut q);
        assert_eq!(u64::from_le_bytes(q) & 0xffff_ffff, 0x0008_1b36);
        e.read(1 << 15, &mut d);
        assert_eq!(d, [0xff; 4], "device 1 is absent");
        e.write(4, &[0xff, 0xff]);
        e.read(4, &mut d);
        assert_eq!(u16::from_le_bytes([d[0], d[1]]), 0x0547, "command bits");
    }
}
