//! MSI-X: the capability's control word, the vector table and the pending-bit array (PBA), and
//! delivery through KVM.
//!
//! Each vector owns a GSI and an eventfd bound to it with KVM_IRQFD; the GSI's route carries
//! the message the guest wrote into the table entry (installed when the vector becomes
//! deliverable, so the usual "mask, rewrite, unmask" sequence costs one routing update).
//! [`Msix::notify`] (called by device threads) writes the eventfd when the vector is deliverable
//! and sets its pending bit otherwise; unmasking a pending vector delivers it then.
//!
//! Bad guest input: accesses of odd widths or outside the table/PBA are ignored (reads give
//! zero), the PBA is read-only, the table-size field of the capability is read-only.

use std::sync::Arc;

use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::irq_routing::{GsiRouter, MsiMessage};

pub const CAP_ID_MSIX: u8 = 0x11;
/// Bytes of one table entry.
pub const ENTRY_SIZE: u64 = 16;
const CTRL_ENABLE: u16 = 1 << 15;
const CTRL_FUNCTION_MASK: u16 = 1 << 14;
const ENTRY_MASKED: u32 = 1;
/// Largest table this implementation builds (2048 is the architectural limit).
pub const MAX_VECTORS: u16 = 2048;

#[derive(Debug, Clone, Copy)]
struct Entry {
    addr_lo: u32,
    addr_hi: u32,
    data: u32,
    ctrl: u32,
}

impl Default for Entry {
    fn default() -> Self {
        Entry { addr_lo: 0, addr_hi: 0, data: 0, ctrl: ENTRY_MASKED }
    }
}

impl Entry {
    fn message(&self) -> MsiMessage {
        MsiMessage { addr: (u64::from(self.addr_hi) << 32) | u64::from(self.addr_lo), data: self.data }
    }
}

/// Binds an eventfd to a GSI (KVM_IRQFD), or a test double.
pub trait IrqfdBinder {
    fn bind(&self, evt: &EventFd, gsi: u32) -> Result<(), String>;
}

impl IrqfdBinder for kvm_ioctls::VmFd {
    fn bind(&self, evt: &EventFd, gsi: u32) -> Result<(), String> {
        self.register_irqfd(evt, gsi).map_err(|e| format!("KVM_IRQFD: {e}"))
    }
}

struct Vector {
    gsi: u32,
    evt: EventFd,
    /// The message currently routed for `gsi`, if any.
    routed: Option<MsiMessage>,
}

#[derive(Debug, thiserror::Error)]
pub enum MsixError {
    #[error("MSI-X table size {0} is out of range (1..=2048)")]
    BadSize(u16),
    #[error("MSI-X: {0}")]
    Setup(String),
}

/// The MSI-X state of one function.
pub struct Msix {
    entries: Vec<Entry>,
    pending: Vec<bool>,
    enabled: bool,
    function_mask: bool,
    vectors: Vec<Vector>,
    router: Arc<GsiRouter>,
    /// Interrupts sent to the guest, per vector (statistics and tests).
    delivered: Vec<u64>,
}

impl Msix {
    /// A table of `size` vectors, each with a GSI and an irqfd.
    pub fn new(size: u16, router: Arc<GsiRouter>, binder: &dyn IrqfdBinder) -> Result<Self, MsixError> {
        if size == 0 || size > MAX_VECTORS {
            return Err(MsixError::BadSize(size));
        }
        let mut vectors = Vec::with_capacity(usize::from(size));
        for _ in 0..size {
            let gsi = router.allocate().map_err(|e| MsixError::Setup(e.to_string()))?;
            let evt = EventFd::new(EFD_NONBLOCK).map_err(|e| MsixError::Setup(format!("eventfd: {e}")))?;
            binder.bind(&evt, gsi).map_err(MsixError::Setup)?;
            vectors.push(Vector { gsi, evt, routed: None });
        }
        let n = usize::from(size);
        Ok(Msix {
            entries: vec![Entry::default(); n],
            pending: vec![false; n],
            enabled: false,
            function_mask: false,
            vectors,
            router,
            delivered: vec![0; n],
        })
    }

    pub fn size(&self) -> u16 {
        self.entries.len() as u16
    }

    /// Bytes of the table and of the PBA.
    pub fn table_len(&self) -> u64 {
        self.entries.len() as u64 * ENTRY_SIZE
    }

    pub fn pba_len(&self) -> u64 {
        (self.entries.len() as u64).div_ceil(64) * 8
    }

    /// The capability body (ID, next, control, table and PBA locations) and its write mask.
    pub fn capability(&self, table_bar: u8, table_off: u32, pba_bar: u8, pba_off: u32) -> (Vec<u8>, Vec<u8>) {
        let mut body = vec![CAP_ID_MSIX, 0];
        body.extend_from_slice(&(self.size() - 1).to_le_bytes());
        body.extend_from_slice(&(table_off | u32::from(table_bar)).to_le_bytes());
        body.extend_from_slice(&(pba_off | u32::from(pba_bar)).to_le_bytes());
        (body, vec![0, 0, 0, 0xc0])
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The guest wrote the capability's control word.
    pub fn set_control(&mut self, ctrl: u16) {
        self.enabled = ctrl & CTRL_ENABLE != 0;
        self.function_mask = ctrl & CTRL_FUNCTION_MASK != 0;
        for v in 0..self.entries.len() {
            self.refresh(v);
        }
    }

    fn deliverable(&self, v: usize) -> bool {
        self.enabled && !self.function_mask && self.entries[v].ctrl & ENTRY_MASKED == 0
    }

    /// After a change that may make vector `v` deliverable: route it, send what is pending.
    fn refresh(&mut self, v: usize) {
        if !self.deliverable(v) {
            return;
        }
        let msg = self.entries[v].message();
        if self.vectors[v].routed != Some(msg) {
            match self.router.set_msi(self.vectors[v].gsi, msg) {
                Ok(()) => self.vectors[v].routed = Some(msg),
                Err(e) => tracing::warn!("MSI-X vector {v}: {e}"),
            }
        }
        if self.pending[v] {
            self.pending[v] = false;
            self.fire(v);
        }
    }

    fn fire(&mut self, v: usize) {
        if let Err(e) = self.vectors[v].evt.write(1) {
            tracing::warn!("MSI-X vector {v}: cannot signal the irqfd: {e}");
        }
        self.delivered[v] += 1;
    }

    /// Raise vector `v` (a device completion). Unknown vectors are ignored.
    pub fn notify(&mut self, v: u16) {
        let v = usize::from(v);
        if v >= self.entries.len() {
            return;
        }
        if self.deliverable(v) {
            if self.vectors[v].routed != Some(self.entries[v].message()) {
                self.refresh(v);
            }
            self.fire(v);
        } else {
            self.pending[v] = true;
        }
    }

    /// Interrupts delivered on vector `v` so far.
    pub fn delivered(&self, v: u16) -> u64 {
        self.delivered.get(usize::from(v)).copied().unwrap_or(0)
    }

    /// Back to power-on: disabled, every entry masked and cleared, nothing pending.
    pub fn reset(&mut self) {
        self.enabled = false;
        self.function_mask = false;
        self.entries.fill(Entry::default());
        self.pending.fill(false);
    }

    /// Guest read of the table (`offset` from the table start).
    pub fn read_table(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Some((v, field)) = self.locate(offset, data.len()) else { return };
        let e = &self.entries[v];
        let words = [e.addr_lo, e.addr_hi, e.data, e.ctrl];
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        data.copy_from_slice(&bytes[field..field + data.len()]);
    }

    /// Guest write of the table.
    pub fn write_table(&mut self, offset: u64, data: &[u8]) {
        let Some((v, field)) = self.locate(offset, data.len()) else {
            tracing::debug!(offset, len = data.len(), "MSI-X table: bad access ignored");
            return;
        };
        let e = self.entries[v];
        let mut bytes: Vec<u8> =
            [e.addr_lo, e.addr_hi, e.data, e.ctrl].iter().flat_map(|w| w.to_le_bytes()).collect();
        bytes[field..field + data.len()].copy_from_slice(data);
        let word = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        self.entries[v] =
            Entry { addr_lo: word(0), addr_hi: word(4), data: word(8), ctrl: word(12) & ENTRY_MASKED };
        self.refresh(v);
    }

    /// Guest read of the PBA.
    pub fn read_pba(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if !matches!(data.len(), 4 | 8) || !offset.is_multiple_of(data.len() as u64) {
            return;
        }
        for (i, d) in data.iter_mut().enumerate() {
            let byte = offset + i as u64;
            for bit in 0..8 {
                let v = (byte * 8 + bit) as usize;
                if self.pending.get(v).copied().unwrap_or(false) {
                    *d |= 1 << bit;
                }
            }
        }
    }

    /// Entry index and byte offset in it; only aligned 4- and 8-byte accesses.
    fn locate(&self, offset: u64, len: usize) -> Option<(usize, usize)> {
        if !matches!(len, 4 | 8) || !offset.is_multiple_of(len as u64) {
            return None;
        }
        let v = usize::try_from(offset / ENTRY_SIZE).ok()?;
        (v < self.entries.len()).then_some((v, (offset % ENTRY_SIZE) as usize))
    }
}

impl Drop for Msix {
    fn drop(&mut self) {
        for v in &self.vectors {
            if let Err(e) = self.router.release(v.gsi) {
                tracing::debug!("MSI-X: releasing GSI {}: {e}", v.gsi);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::irq_routing::tests::Recorder;
    use super::*;

    struct NoKvm;
    impl IrqfdBinder for NoKvm {
        fn bind(&self, _evt: &EventFd, _gsi: u32) -> Result<(), String> {
            Ok(())
        }
    }

    fn msix(n: u16) -> (Msix, Arc<Recorder>) {
        let rec = Arc::new(Recorder::default());
        (Msix::new(n, Arc::new(GsiRouter::new(rec.clone())), &NoKvm).unwrap(), rec)
    }

    fn program(m: &mut Msix, v: u64, addr: u32, data: u32) {
        m.write_table(v * 16, &addr.to_le_bytes());
        m.write_table(v * 16 + 4, &0u32.to_le_bytes());
        m.write_table(v * 16 + 8, &data.to_le_bytes());
    }

    #[test]
    fn masked_vectors_pend_and_fire_on_unmask() {
        let (mut m, rec) = msix(3);
        assert_eq!(m.pba_len(), 8);
        program(&mut m, 1, 0xfee0_0000, 0x45);
        m.notify(1);
        assert_eq!(m.delivered(1), 0, "MSI-X is disabled");
        let mut pba = [0u8; 8];
        m.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0b10);
        m.set_control(CTRL_ENABLE);
        assert_eq!(m.delivered(1), 0, "the entry is still masked");
        m.write_table(16 + 12, &0u32.to_le_bytes());
        assert_eq!(m.delivered(1), 1, "the pending interrupt goes out on unmask");
        m.read_pba(0, &mut pba);
        assert_eq!(pba[0], 0);
        assert!(
            rec.0.lock().unwrap().iter().any(|e| e.gsi == 25 && e.type_ == kvm_bindings::KVM_IRQ_ROUTING_MSI)
        );
        m.notify(1);
        assert_eq!(m.delivered(1), 2);
        m.set_control(CTRL_ENABLE | CTRL_FUNCTION_MASK);
        m.notify(1);
        assert_eq!(m.delivered(1), 2);
        m.set_control(CTRL_ENABLE);
        assert_eq!(m.delivered(1), 3);
        m.notify(7);
    }

    #[test]
    fn table_reads_back_and_ignores_bad_accesses() {
        let (mut m, _) = msix(2);
        program(&mut m, 0, 0xfee0_2000, 0x30);
        let mut w = [0u8; 4];
        m.read_table(0, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0xfee0_2000);
        m.read_table(12, &mut w);
        assert_eq!(u32::from_le_bytes(w), 1, "masked at power-on");
        m.write_table(12, &0xffff_fffeu32.to_le_bytes());
        m.read_table(12, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0, "reserved control bits read zero");
        m.write_table(1, &[1, 2, 3, 4]);
        m.write_table(0, &[1, 2]);
        m.write_table(32, &[0; 4]);
        m.read_table(0, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0xfee0_2000);
        let mut q = [0u8; 8];
        m.read_table(8, &mut q);
        assert_eq!(u64::from_le_bytes(q), 0x30);
        m.reset();
        m.read_table(0, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0);
    }

    #[test]
    fn sizes_are_checked() {
        let rec = Arc::new(Recorder::default());
        let r = Arc::new(GsiRouter::new(rec));
        assert!(Msix::new(0, r.clone(), &NoKvm).is_err());
        assert!(Msix::new(2049, r, &NoKvm).is_err());
    }
}
