//! KVM's GSI routing table: the in-kernel irqchip routes (GSI 0-23 to the IOAPIC, 0-15 also to
//! the PICs, as KVM sets them up by default) plus one MSI route per MSI-X vector.
//!
//! `KVM_SET_GSI_ROUTING` replaces the whole table, so every change rebuilds it from the default
//! routes and the MSI routes kept here. Each MSI-X vector owns a GSI (from 24 up) with an irqfd
//! bound to it; the route gives that GSI the message the guest programmed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kvm_bindings::{
    KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER,
    KVM_IRQCHIP_PIC_SLAVE, KvmIrqRouting, kvm_irq_routing_entry,
};
use kvm_ioctls::VmFd;

/// GSIs below this belong to the IOAPIC pins.
pub const FIRST_MSI_GSI: u32 = 24;
/// Upper bound on MSI GSIs (KVM allows 4096 routes; this is plenty).
const MAX_GSI: u32 = 1024;

/// An MSI message: address and data, as written into an MSI-X table entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MsiMessage {
    pub addr: u64,
    pub data: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum RoutingError {
    #[error("no free GSI for an MSI vector")]
    Exhausted,
    #[error("KVM_SET_GSI_ROUTING: {0}")]
    Kvm(String),
}

/// Where routes are installed (KVM, or a recorder in tests).
pub trait RouteSink: Send + Sync {
    fn set_routes(&self, entries: &[kvm_irq_routing_entry]) -> Result<(), String>;
}

impl RouteSink for VmFd {
    fn set_routes(&self, entries: &[kvm_irq_routing_entry]) -> Result<(), String> {
        let mut table = KvmIrqRouting::new(entries.len()).map_err(|e| format!("{e:?}"))?;
        table.as_mut_slice().copy_from_slice(entries);
        self.set_gsi_routing(&table).map_err(|e| e.to_string())
    }
}

struct Inner {
    msi: BTreeMap<u32, MsiMessage>,
    next: u32,
    free: Vec<u32>,
}

/// The routing table of one VM.
pub struct GsiRouter {
    sink: Arc<dyn RouteSink>,
    inner: Mutex<Inner>,
}

fn irqchip_entry(gsi: u32, chip: u32, pin: u32) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry { gsi, type_: KVM_IRQ_ROUTING_IRQCHIP, ..Default::default() };
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    e
}

/// KVM's default routes for the in-kernel PIC + IOAPIC.
pub fn default_routes() -> Vec<kvm_irq_routing_entry> {
    let mut v = Vec::new();
    for gsi in 0..24 {
        v.push(irqchip_entry(gsi, KVM_IRQCHIP_IOAPIC, gsi));
        if gsi < 16 {
            let chip = if gsi < 8 { KVM_IRQCHIP_PIC_MASTER } else { KVM_IRQCHIP_PIC_SLAVE };
            v.push(irqchip_entry(gsi, chip, gsi % 8));
        }
    }
    v
}

fn msi_entry(gsi: u32, m: MsiMessage) -> kvm_irq_routing_entry {
    let mut e = kvm_irq_routing_entry { gsi, type_: KVM_IRQ_ROUTING_MSI, ..Default::default() };
    e.u.msi.address_lo = m.addr as u32;
    e.u.msi.address_hi = (m.addr >> 32) as u32;
    e.u.msi.data = m.data;
    e
}

impl GsiRouter {
    pub fn new(sink: Arc<dyn RouteSink>) -> Self {
        GsiRouter {
            sink,
            inner: Mutex::new(Inner { msi: BTreeMap::new(), next: FIRST_MSI_GSI, free: Vec::new() }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A GSI for one MSI vector (no route until [`GsiRouter::set_msi`]).
    pub fn allocate(&self) -> Result<u32, RoutingError> {
        let mut g = self.lock();
        if let Some(gsi) = g.free.pop() {
            return Ok(gsi);
        }
        if g.next >= MAX_GSI {
            return Err(RoutingError::Exhausted);
        }
        g.next += 1;
        Ok(g.next - 1)
    }

    /// Gives `gsi` back (its route is removed).
    pub fn release(&self, gsi: u32) -> Result<(), RoutingError> {
        let mut g = self.lock();
        let had = g.msi.remove(&gsi).is_some();
        g.free.push(gsi);
        if had { self.commit(&g) } else { Ok(()) }
    }

    /// Routes `gsi` to message `m` (installs the whole table if it changed).
    pub fn set_msi(&self, gsi: u32, m: MsiMessage) -> Result<(), RoutingError> {
        let mut g = self.lock();
        if g.msi.get(&gsi) == Some(&m) {
            return Ok(());
        }
        g.msi.insert(gsi, m);
        self.commit(&g)
    }

    fn commit(&self, g: &Inner) -> Result<(), RoutingError> {
        let mut entries = default_routes();
        entries.extend(g.msi.iter().map(|(&gsi, &m)| msi_entry(gsi, m)));
        self.sink.set_routes(&entries).map_err(RoutingError::Kvm)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Records the last table installed.
    #[derive(Default)]
    pub struct Recorder(pub Mutex<Vec<kvm_irq_routing_entry>>);

    impl RouteSink for Recorder {
        fn set_routes(&self, entries: &[kvm_irq_routing_entry]) -> Result<(), String> {
            *self.0.lock().unwrap() = entries.to_vec();
            Ok(())
        }
    }

    #[test]
    fn table_keeps_the_irqchip_routes() {
        let rec = Arc::new(Recorder::default());
        let r = GsiRouter::new(rec.clone());
        let a = r.allocate().unwrap();
        let b = r.allocate().unwrap();
        assert_eq!((a, b), (24, 25));
        r.set_msi(b, MsiMessage { addr: 0xfee0_1000, data: 0x41 }).unwrap();
        let t = rec.0.lock().unwrap().clone();
        assert_eq!(t.len(), 24 + 16 + 1);
        let last = t.last().unwrap();
        assert_eq!((last.gsi, last.type_), (25, KVM_IRQ_ROUTING_MSI));
        // SAFETY: reading the union member this entry was built with.
        let msi = unsafe { last.u.msi };
        assert_eq!((msi.address_lo, msi.address_hi, msi.data), (0xfee0_1000, 0, 0x41));
        // SAFETY: as above, an irqchip entry.
        let pin = unsafe { t[1].u.irqchip };
        assert_eq!((t[1].gsi, pin.irqchip, pin.pin), (0, KVM_IRQCHIP_PIC_MASTER, 0));
        r.release(b).unwrap();
        assert_eq!(rec.0.lock().unwrap().len(), 40);
        assert_eq!(r.allocate().unwrap(), 25, "released GSIs are reused");
    }
}
