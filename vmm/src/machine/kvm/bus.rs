//! Port-I/O and MMIO buses: address ranges mapped to devices, looked up on every VM exit.
//!
//! A `Bus` is shared by all vCPU threads; the map sits behind an `RwLock` so that devices can be
//! added or moved at run time (PCI BAR programming), each device behind its own `Mutex`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

/// A device on a bus. `offset` is relative to the base it was inserted at.
pub trait BusDevice: Send {
    fn read(&mut self, offset: u64, data: &mut [u8]);
    fn write(&mut self, offset: u64, data: &[u8]);
}

pub type SharedDevice = Arc<Mutex<dyn BusDevice>>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("bus range {base:#x}+{len:#x} overlaps an existing device")]
    Overlap { base: u64, len: u64 },
    #[error("empty bus range at {0:#x}")]
    Empty(u64),
}

#[derive(Default)]
pub struct Bus {
    ranges: RwLock<BTreeMap<u64, (u64, SharedDevice)>>,
}

impl Bus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Map `[base, base+len)` to `device`.
    pub fn insert(&self, base: u64, len: u64, device: SharedDevice) -> Result<(), BusError> {
        if len == 0 {
            return Err(BusError::Empty(base));
        }
        let end = base.checked_add(len - 1).ok_or(BusError::Overlap { base, len })?;
        let mut map = self.ranges.write().unwrap_or_else(|p| p.into_inner());
        let before = map.range(..=end).next_back();
        if let Some((&b, &(l, _))) = before
            && b + (l - 1) >= base
        {
            return Err(BusError::Overlap { base, len });
        }
        map.insert(base, (len, device));
        Ok(())
    }

    /// Unmap the range starting at `base`.
    pub fn remove(&self, base: u64) -> Option<SharedDevice> {
        let mut map = self.ranges.write().unwrap_or_else(|p| p.into_inner());
        map.remove(&base).map(|(_, d)| d)
    }

    fn find(&self, addr: u64, size: usize) -> Option<(u64, SharedDevice)> {
        let map = self.ranges.read().unwrap_or_else(|p| p.into_inner());
        let (&base, (len, dev)) = map.range(..=addr).next_back()?;
        let last = addr.checked_add(size.max(1) as u64 - 1)?;
        (last < base + len).then(|| (addr - base, Arc::clone(dev)))
    }

    /// Read from the device at `addr`; false if no device claims the whole access.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((offset, dev)) => {
                dev.lock().unwrap_or_else(|p| p.into_inner()).read(offset, data);
                true
            }
            None => false,
        }
    }

    /// Write to the device at `addr`; false if no device claims the whole access.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((offset, dev)) => {
                dev.lock().unwrap_or_else(|p| p.into_inner()).write(offset, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(Vec<u8>);
    impl BusDevice for Echo {
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, _offset: u64, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    #[test]
    fn lookup_and_overlap() {
        let bus = Bus::new();
        let dev: SharedDevice = Arc::new(Mutex::new(Echo(vec![])));
        bus.insert(0x3f8, 8, dev.clone()).unwrap();
        assert_eq!(bus.insert(0x3f0, 9, dev.clone()), Err(BusError::Overlap { base: 0x3f0, len: 9 }));
        assert_eq!(bus.insert(0x3ff, 1, dev.clone()), Err(BusError::Overlap { base: 0x3ff, len: 1 }));
        bus.insert(0x3f0, 8, dev.clone()).unwrap();
        bus.insert(0x400, 1, dev).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fd, &mut b));
        assert_eq!(b, [5]);
        assert!(!bus.read(0x3ef, &mut b));
        let mut w = [0u8; 2];
        assert!(!bus.read(0x3ff, &mut w), "an access straddling the end is not claimed");
        assert!(bus.remove(0x400).is_some());
        assert!(!bus.write(0x400, &[1]));
        assert_eq!(bus.insert(0, 0, Arc::new(Mutex::new(Echo(vec![])))), Err(BusError::Empty(0)));
    }
}
