//! The root PCI bus (bus 0): 32 slots, function 0 each, and the BARs of the plugged functions
//! mapped on the machine's MMIO and port-I/O buses.
//!
//! Config accesses arrive from conf1 or ECAM (on vCPU threads). After a write that changes a BAR
//! address or the command register's decode bits, the function's mappings are recomputed and the
//! bus ranges moved; a BAR the guest programs over another device's range, or to a wrapping
//! address, is left unmapped (logged), never allowed to shadow something else.
//!
//! Lock order: the slot table, then a function's mutex, then the bus maps. BAR accesses take only
//! the function's mutex (the buses release their map lock before calling a device).

use std::sync::{Arc, Mutex, MutexGuard};

use vm_allocator::{AddressAllocator, AllocPolicy, Constraint};

use super::config::{BarKind, BarMapping, COMMAND, COMMAND_MEMORY, PciConfig};
use super::info::PciDeviceInfo;
use crate::machine::kvm::bus::{Bus, BusDevice, SharedDevice};

pub const SLOTS: usize = 32;

/// A function on the root bus.
pub trait PciFunction: Send {
    fn config(&self) -> &PciConfig;
    fn config_mut(&mut self) -> &mut PciConfig;
    /// Guest config read (`off` < 256; ECAM's extended space is handled by the caller).
    fn read_config(&mut self, off: usize, data: &mut [u8]) {
        self.config().read(off, data);
    }
    /// Guest config write; true if BARs or decoding may have changed.
    fn write_config(&mut self, off: usize, data: &[u8]) -> bool {
        self.config_mut().write(off, data)
    }
    fn read_bar(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    fn write_bar(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// The BARs now decode at `mapped` (were at `old`): move ioeventfds and the like.
    fn bars_moved(&mut self, _old: &[BarMapping], _mapped: &[BarMapping]) {}
    /// Machine reset: back to the power-on state (config space included).
    fn reset(&mut self);
    /// Stop device activity (VM paused) until `resume`; returns once quiescent.
    fn pause(&mut self) {}
    fn resume(&mut self) {}
    /// The machine is going away: stop threads, flush.
    fn shutdown(&mut self) {}
    /// `id=` of the device (`""` when anonymous).
    fn qdev_id(&self) -> String;
}

pub type SharedFunction = Arc<Mutex<dyn PciFunction>>;

fn lock(f: &SharedFunction) -> MutexGuard<'_, dyn PciFunction + 'static> {
    f.lock().unwrap_or_else(|p| p.into_inner())
}

struct Slot {
    function: SharedFunction,
    mapped: Vec<BarMapping>,
}

/// One BAR of a function, as a device on the MMIO or port bus.
struct BarRegion {
    function: SharedFunction,
    bar: usize,
}

impl BusDevice for BarRegion {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        lock(&self.function).read_bar(self.bar, offset, data);
    }
    fn write(&mut self, offset: u64, data: &[u8]) {
        lock(&self.function).write_bar(self.bar, offset, data);
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PciError {
    #[error("PCI: slot {0} is not free")]
    SlotTaken(u8),
    #[error("PCI: slot {0} is out of range (0..31)")]
    BadSlot(u8),
    #[error("PCI: no free slot on bus 0")]
    BusFull,
    #[error("PCI: no room for a BAR of {0:#x} bytes in the MMIO window")]
    NoSpace(u64),
    #[error("PCI: {0}")]
    Device(String),
}

/// The root bus.
pub struct PciRoot {
    slots: Mutex<Vec<Option<Slot>>>,
    pio: Arc<Bus>,
    mmio: Arc<Bus>,
    mmio_window: Mutex<AddressAllocator>,
    io_window: Mutex<AddressAllocator>,
}

impl PciRoot {
    /// A bus whose BARs are allocated in `mmio_window` (base, size) and `io_window`.
    pub fn new(
        pio: Arc<Bus>,
        mmio: Arc<Bus>,
        mmio_window: (u64, u64),
        io_window: (u64, u64),
    ) -> Result<Self, PciError> {
        let alloc = |(base, size): (u64, u64)| {
            AddressAllocator::new(base, size).map_err(|e| PciError::Device(format!("BAR window: {e}")))
        };
        Ok(PciRoot {
            slots: Mutex::new((0..SLOTS).map(|_| None).collect()),
            pio,
            mmio,
            mmio_window: Mutex::new(alloc(mmio_window)?),
            io_window: Mutex::new(alloc(io_window)?),
        })
    }

    fn slots(&self) -> MutexGuard<'_, Vec<Option<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plugs `function` into `slot` (or the first free one from 1), allocates its BARs (as
    /// firmware would: addresses programmed and memory decoding on) and maps them.
    pub fn add(&self, function: SharedFunction, slot: Option<u8>) -> Result<u8, PciError> {
        let mut slots = self.slots();
        let n = match slot {
            Some(s) if usize::from(s) >= SLOTS => return Err(PciError::BadSlot(s)),
            Some(s) if slots[usize::from(s)].is_some() => return Err(PciError::SlotTaken(s)),
            Some(s) => s,
            None => (1..SLOTS).find(|&i| slots[i].is_none()).ok_or(PciError::BusFull)? as u8,
        };
        {
            let mut f = lock(&function);
            let cfg = f.config_mut();
            let mut specs: Vec<_> = cfg.bar_specs().collect();
            specs.sort_by_key(|(_, s)| std::cmp::Reverse(s.size));
            let mut decode = 0u16;
            for (index, spec) in specs {
                let window = if spec.kind == BarKind::Io { &self.io_window } else { &self.mmio_window };
                let mut w = window.lock().unwrap_or_else(|p| p.into_inner());
                let range = Constraint::new(spec.size, spec.size, AllocPolicy::FirstMatch)
                    .and_then(|c| w.allocate(c.size(), c.align(), AllocPolicy::FirstMatch))
                    .map_err(|_| PciError::NoSpace(spec.size))?;
                cfg.set_bar_addr(index, range.start());
                decode |= if spec.kind == BarKind::Io { super::config::COMMAND_IO } else { COMMAND_MEMORY };
            }
            let cmd = cfg.command() | decode;
            cfg.write(COMMAND, &cmd.to_le_bytes());
            cfg.freeze_initial_state();
        }
        slots[usize::from(n)] = Some(Slot { function, mapped: Vec::new() });
        if let Some(s) = slots[usize::from(n)].as_mut() {
            self.remap(s);
        }
        Ok(n)
    }

    /// Makes the bus ranges of `slot` match its config space.
    fn remap(&self, slot: &mut Slot) {
        let mut f = lock(&slot.function);
        let wanted = f.config().mappings();
        if wanted == slot.mapped {
            return;
        }
        let old = std::mem::take(&mut slot.mapped);
        for m in old.iter().filter(|m| !wanted.contains(m)) {
            self.bus(m.kind).remove(m.addr);
        }
        let mut mapped = Vec::new();
        for m in wanted {
            if old.contains(&m) {
                mapped.push(m);
                continue;
            }
            let region: SharedDevice =
                Arc::new(Mutex::new(BarRegion { function: Arc::clone(&slot.function), bar: m.index }));
            match self.bus(m.kind).insert(m.addr, m.size, region) {
                Ok(()) => mapped.push(m),
                Err(e) => tracing::warn!("PCI BAR{} at {:#x} not mapped: {e}", m.index, m.addr),
            }
        }
        f.bars_moved(&old, &mapped);
        slot.mapped = mapped;
    }

    fn bus(&self, kind: BarKind) -> &Bus {
        if kind == BarKind::Io { &self.pio } else { &self.mmio }
    }

    /// Config read of `data.len()` bytes at register `reg` of bus 0, `dev`, `func`; absent
    /// functions read as all ones.
    pub fn config_read(&self, bus: u8, dev: u8, func: u8, reg: usize, data: &mut [u8]) {
        data.fill(0xff);
        if bus != 0 || func != 0 {
            return;
        }
        let slots = self.slots();
        let Some(Some(slot)) = slots.get(usize::from(dev)) else { return };
        if reg >= super::config::CONFIG_SIZE {
            data.fill(0); // no extended capabilities
            return;
        }
        lock(&slot.function).read_config(reg, data);
    }

    /// Config write; absent functions ignore it.
    pub fn config_write(&self, bus: u8, dev: u8, func: u8, reg: usize, data: &[u8]) {
        if bus != 0 || func != 0 || reg >= super::config::CONFIG_SIZE {
            return;
        }
        let mut slots = self.slots();
        let Some(Some(slot)) = slots.get_mut(usize::from(dev)) else { return };
        let changed = lock(&slot.function).write_config(reg, data);
        if changed {
            self.remap(slot);
        }
    }

    /// Every function back to power-on, BARs remapped.
    pub fn reset(&self) {
        let mut slots = self.slots();
        for slot in slots.iter_mut().flatten() {
            lock(&slot.function).reset();
            self.remap(slot);
        }
    }

    pub fn pause(&self) {
        for slot in self.slots().iter().flatten() {
            lock(&slot.function).pause();
        }
    }

    pub fn resume(&self) {
        for slot in self.slots().iter().flatten() {
            lock(&slot.function).resume();
        }
    }

    pub fn shutdown(&self) {
        for slot in self.slots().iter().flatten() {
            lock(&slot.function).shutdown();
        }
    }

    /// What `query-pci` reports, in slot order.
    pub fn info(&self) -> Vec<PciDeviceInfo> {
        let slots = self.slots();
        slots
            .iter()
            .enumerate()
            .filter_map(|(n, s)| s.as_ref().map(|s| (n, s)))
            .map(|(n, s)| {
                let f = lock(&s.function);
                PciDeviceInfo::from_config(0, n as u8, 0, f.config(), f.qdev_id())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::{BAR0, fixtures};
    use super::*;

    struct Dummy {
        cfg: PciConfig,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl PciFunction for Dummy {
        fn config(&self) -> &PciConfig {
            &self.cfg
        }
        fn config_mut(&mut self) -> &mut PciConfig {
            &mut self.cfg
        }
        fn read_bar(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
            data.fill((bar as u8) << 4 | offset as u8);
        }
        fn write_bar(&mut self, bar: usize, offset: u64, data: &[u8]) {
            self.log.lock().unwrap().push(format!("w{bar}+{offset}={data:?}"));
        }
        fn bars_moved(&mut self, _old: &[BarMapping], mapped: &[BarMapping]) {
            self.log.lock().unwrap().push(format!("moved {}", mapped.len()));
        }
        fn reset(&mut self) {
            self.cfg.reset();
        }
        fn qdev_id(&self) -> String {
            "d".into()
        }
    }

    fn dummy() -> (SharedFunction, Arc<Mutex<Vec<String>>>) {
        let cfg = fixtures::virtio_like();
        let log = Arc::new(Mutex::new(Vec::new()));
        (Arc::new(Mutex::new(Dummy { cfg, log: log.clone() })), log)
    }

    fn root() -> (PciRoot, Arc<Bus>) {
        let mmio = Arc::new(Bus::new());
        (
            PciRoot::new(Arc::new(Bus::new()), mmio.clone(), (0xc000_0000, 0x2000_0000), (0xc000, 0x1000))
                .unwrap(),
            mmio,
        )
    }

    #[test]
    fn bars_are_allocated_mapped_and_moved() {
        let (r, mmio) = root();
        let (f, log) = dummy();
        assert_eq!(r.add(f, None).unwrap(), 1);
        let mut b = [0u8; 4];
        r.config_read(0, 1, 0, BAR0 + 16, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0xc000_000c, "largest BAR first");
        r.config_read(0, 1, 0, BAR0 + 4, &mut b);
        assert_eq!(u32::from_le_bytes(b), 0xc000_4000);
        let mut d = [0u8; 1];
        assert!(mmio.read(0xc000_4003, &mut d));
        assert_eq!(d[0], 0x13);
        // Move BAR1; the old range goes away.
        r.config_write(0, 1, 0, BAR0 + 4, &0xd000_0000u32.to_le_bytes());
        assert!(!mmio.read(0xc000_4000, &mut d));
        assert!(mmio.write(0xd000_0008, &[7]));
        // A BAR moved over another one stays unmapped; the original keeps working.
        r.config_write(0, 1, 0, BAR0 + 4, &0xc000_0000u32.to_le_bytes());
        assert!(mmio.read(0xc000_0000, &mut d));
        assert_eq!(d[0], 0x40);
        // Decoding off unmaps everything.
        r.config_write(0, 1, 0, COMMAND, &0u16.to_le_bytes());
        assert!(!mmio.read(0xc000_0000, &mut d));
        r.reset();
        assert!(mmio.read(0xc000_4000, &mut d), "reset restores the firmware assignment");
        let log = log.lock().unwrap();
        assert!(log.contains(&"w1+8=[7]".to_string()), "{log:?}");
        assert!(log.iter().any(|l| l == "moved 0"));
    }

    #[test]
    fn absent_functions_and_slots() {
        let (r, _) = root();
        let mut b = [0u8; 4];
        r.config_read(0, 5, 0, 0, &mut b);
        assert_eq!(b, [0xff; 4]);
        r.config_read(1, 0, 0, 0, &mut b);
        assert_eq!(b, [0xff; 4]);
        r.config_write(0, 9, 0, 0, &[1, 2, 3, 4]);
        let (f, _) = dummy();
        assert_eq!(r.add(f, Some(3)).unwrap(), 3);
        let (f, _) = dummy();
        assert_eq!(r.add(f, Some(3)), Err(PciError::SlotTaken(3)));
        let (f, _) = dummy();
        assert_eq!(r.add(f, Some(40)), Err(PciError::BadSlot(40)));
        r.config_read(0, 3, 1, 0, &mut b);
        assert_eq!(b, [0xff; 4], "function 1 does not exist");
        r.config_read(0, 3, 0, 0x100, &mut b);
        assert_eq!(b, [0; 4], "no extended capabilities");
        assert_eq!(r.info().len(), 1);
    }
}
