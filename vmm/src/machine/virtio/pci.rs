//! The virtio-pci transport (modern, virtio 1.x): a PCI function exposing a virtio device.
//!
//! BAR layout (as QEMU's): BAR1 (32-bit, 4 KiB) holds the MSI-X table at 0 and the PBA at
//! 0x800; BAR4 (64-bit prefetchable, 16 KiB) holds the common configuration at 0x0000, the ISR
//! at 0x1000, the device configuration at 0x2000 and the notify area at 0x3000 (queue `n` at
//! `0x3000 + 4 n`). Capabilities: MSI-X, then the virtio common / ISR / device / notify
//! capabilities and the PCI-config access window (`VIRTIO_PCI_CAP_PCI_CFG`).
//!
//! Notifications: an ioeventfd per queue at its notify address (registered wherever BAR4 is
//! mapped), so a kick never leaves the kernel; a write that still reaches us signals the same
//! eventfd.
//!
//! Guest mistakes: features the device did not offer (or no VERSION_1) leave FEATURES_OK unset;
//! at DRIVER_OK, queues whose size or ring addresses are invalid put the device in NEEDS_RESET;
//! writes to read-only fields, to queue settings after the queue is enabled, or of odd widths
//! are ignored; vectors beyond the MSI-X table read back as NO_VECTOR.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_CONFIG_S_NEEDS_RESET, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_ring::VIRTIO_RING_F_EVENT_IDX;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestAddress;
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::interrupt::{NO_VECTOR, VirtioInterrupt};
use super::{Activation, ActiveQueue, VirtioDevice};
use crate::machine::kvm::memory::GuestMemory;
use crate::machine::pci::config::{BarKind, BarMapping, BarSpec, PciConfig, PciId};
use crate::machine::pci::irq_routing::GsiRouter;
use crate::machine::pci::msix::{IrqfdBinder, Msix};
use crate::machine::pci::root::PciFunction;

pub const VIRTIO_VENDOR: u16 = 0x1af4;
const PCI_DEVICE_BASE: u16 = 0x1040;
const SUBSYSTEM: u16 = 0x1100;

pub const MSIX_BAR: usize = 1;
pub const MODERN_BAR: usize = 4;
const MSIX_BAR_SIZE: u64 = 0x1000;
const PBA_OFFSET: u64 = 0x800;
const MODERN_BAR_SIZE: u64 = 0x4000;
pub const COMMON_OFFSET: u64 = 0x0000;
pub const ISR_OFFSET: u64 = 0x1000;
pub const DEVICE_OFFSET: u64 = 0x2000;
pub const NOTIFY_OFFSET: u64 = 0x3000;
const REGION_SIZE: u64 = 0x1000;
pub const NOTIFY_MULTIPLIER: u32 = 4;
/// Queues this transport can describe (MSI-X table and notify area sizes).
pub const MAX_QUEUES: usize = 64;

const CAP_VENDOR: u8 = 0x09;
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;
const CAP_PCI_CFG: u8 = 5;

/// Common configuration fields: (offset, size).
mod common {
    pub const DFSELECT: u64 = 0x00;
    pub const DF: u64 = 0x04;
    pub const GFSELECT: u64 = 0x08;
    pub const GF: u64 = 0x0c;
    pub const MSIX: u64 = 0x10;
    pub const NUMQ: u64 = 0x12;
    pub const STATUS: u64 = 0x14;
    pub const CFGGEN: u64 = 0x15;
    pub const Q_SELECT: u64 = 0x16;
    pub const Q_SIZE: u64 = 0x18;
    pub const Q_MSIX: u64 = 0x1a;
    pub const Q_ENABLE: u64 = 0x1c;
    pub const Q_NOFF: u64 = 0x1e;
    pub const Q_DESCLO: u64 = 0x20;
    pub const Q_DESCHI: u64 = 0x24;
    pub const Q_AVAILLO: u64 = 0x28;
    pub const Q_AVAILHI: u64 = 0x2c;
    pub const Q_USEDLO: u64 = 0x30;
    pub const Q_USEDHI: u64 = 0x34;
    pub const FIELDS: &[(u64, usize)] = &[
        (DFSELECT, 4),
        (DF, 4),
        (GFSELECT, 4),
        (GF, 4),
        (MSIX, 2),
        (NUMQ, 2),
        (STATUS, 1),
        (CFGGEN, 1),
        (Q_SELECT, 2),
        (Q_SIZE, 2),
        (Q_MSIX, 2),
        (Q_ENABLE, 2),
        (Q_NOFF, 2),
        (Q_DESCLO, 4),
        (Q_DESCHI, 4),
        (Q_AVAILLO, 4),
        (Q_AVAILHI, 4),
        (Q_USEDLO, 4),
        (Q_USEDHI, 4),
    ];
}

/// Registers ioeventfds (KVM, or a recorder in tests).
pub trait IoEvents: Send + Sync {
    fn register(&self, evt: &EventFd, addr: u64) -> Result<(), String>;
    fn unregister(&self, evt: &EventFd, addr: u64) -> Result<(), String>;
}

impl IoEvents for kvm_ioctls::VmFd {
    fn register(&self, evt: &EventFd, addr: u64) -> Result<(), String> {
        self.register_ioevent(evt, &kvm_ioctls::IoEventAddress::Mmio(addr), kvm_ioctls::NoDatamatch)
            .map_err(|e| format!("KVM_IOEVENTFD: {e}"))
    }
    fn unregister(&self, evt: &EventFd, addr: u64) -> Result<(), String> {
        self.unregister_ioevent(evt, &kvm_ioctls::IoEventAddress::Mmio(addr), kvm_ioctls::NoDatamatch)
            .map_err(|e| format!("KVM_IOEVENTFD: {e}"))
    }
}

/// Driver-side settings of one queue.
struct QueueConfig {
    max_size: u16,
    size: u16,
    vector: Arc<AtomicU16>,
    enabled: bool,
    desc: u64,
    driver: u64,
    device: u64,
}

impl QueueConfig {
    fn new(max_size: u16) -> Self {
        QueueConfig {
            max_size,
            size: max_size,
            vector: Arc::new(AtomicU16::new(NO_VECTOR)),
            enabled: false,
            desc: 0,
            driver: 0,
            device: 0,
        }
    }
}

/// What the transport needs from the machine.
pub struct TransportContext {
    pub mem: GuestMemory,
    pub router: Arc<GsiRouter>,
    pub irqfd: Arc<dyn IrqfdBinder + Send + Sync>,
    pub ioevents: Arc<dyn IoEvents>,
}

/// A virtio device on PCI.
pub struct VirtioPci {
    cfg: PciConfig,
    device: Box<dyn VirtioDevice>,
    qdev_id: String,
    interrupt: Arc<VirtioInterrupt>,
    msix_cap: usize,
    pci_cfg_cap: usize,
    device_features: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    driver_features: u64,
    queue_select: u16,
    queues: Vec<QueueConfig>,
    notify: Vec<Arc<EventFd>>,
    /// BAR4 base where the notify ioeventfds are registered.
    ioevent_base: Option<u64>,
    mem: GuestMemory,
    ioevents: Arc<dyn IoEvents>,
    active: bool,
}

fn overlaps(off: usize, len: usize, start: usize, size: usize) -> bool {
    off < start + size && start < off + len
}

impl VirtioPci {
    pub fn new(device: Box<dyn VirtioDevice>, qdev_id: &str, ctx: TransportContext) -> Result<Self, String> {
        let max_sizes = device.queue_max_sizes();
        if max_sizes.is_empty() || max_sizes.len() > MAX_QUEUES {
            return Err(format!("a virtio device needs 1 to {MAX_QUEUES} queues"));
        }
        let mut cfg = PciConfig::new(PciId {
            vendor: VIRTIO_VENDOR,
            device: PCI_DEVICE_BASE + device.device_id(),
            revision: 1,
            class: device.pci_class(),
            subsystem_vendor: VIRTIO_VENDOR,
            subsystem: SUBSYSTEM,
        });
        let e = |e: crate::machine::pci::config::ConfigError| e.to_string();
        cfg.add_bar(MSIX_BAR, BarSpec { kind: BarKind::Mem32, size: MSIX_BAR_SIZE, prefetchable: false })
            .map_err(e)?;
        cfg.add_bar(MODERN_BAR, BarSpec { kind: BarKind::Mem64, size: MODERN_BAR_SIZE, prefetchable: true })
            .map_err(e)?;
        let vectors = max_sizes.len() as u16 + 1;
        let msix = Msix::new(vectors, ctx.router, ctx.irqfd.as_ref()).map_err(|e| e.to_string())?;
        let (body, mask) = msix.capability(MSIX_BAR as u8, 0, MSIX_BAR as u8, PBA_OFFSET as u32);
        let msix_cap = cfg.add_capability(&body, &mask).map_err(e)?;
        let vcap = |t: u8, off: u64, len: u64| {
            let mut b = vec![CAP_VENDOR, 0, 16, t, MODERN_BAR as u8, 0, 0, 0];
            b.extend_from_slice(&(off as u32).to_le_bytes());
            b.extend_from_slice(&(len as u32).to_le_bytes());
            b
        };
        cfg.add_capability(&vcap(CAP_COMMON, COMMON_OFFSET, REGION_SIZE), &[]).map_err(e)?;
        cfg.add_capability(&vcap(CAP_ISR, ISR_OFFSET, REGION_SIZE), &[]).map_err(e)?;
        cfg.add_capability(&vcap(CAP_DEVICE, DEVICE_OFFSET, REGION_SIZE), &[]).map_err(e)?;
        let mut notify_cap = vcap(CAP_NOTIFY, NOTIFY_OFFSET, REGION_SIZE);
        notify_cap[2] = 20;
        notify_cap.extend_from_slice(&NOTIFY_MULTIPLIER.to_le_bytes());
        cfg.add_capability(&notify_cap, &[]).map_err(e)?;
        let mut pci_cap = vcap(CAP_PCI_CFG, 0, 0);
        pci_cap[2] = 20;
        pci_cap[4] = 0;
        pci_cap.extend_from_slice(&[0; 4]);
        let mut pci_mask = vec![0u8; 20];
        pci_mask[4] = 0xff;
        pci_mask[8..20].fill(0xff);
        let pci_cfg_cap = cfg.add_capability(&pci_cap, &pci_mask).map_err(e)?;
        cfg.freeze_initial_state();

        let notify = (0..max_sizes.len())
            .map(|_| EventFd::new(EFD_NONBLOCK).map(Arc::new).map_err(|e| format!("eventfd: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let device_features = device.features() | (1 << VIRTIO_F_VERSION_1);
        Ok(VirtioPci {
            cfg,
            qdev_id: qdev_id.to_string(),
            interrupt: Arc::new(VirtioInterrupt::new(Arc::new(Mutex::new(msix)))),
            msix_cap,
            pci_cfg_cap,
            device_features,
            device_feature_select: 0,
            driver_feature_select: 0,
            driver_features: 0,
            queue_select: 0,
            queues: max_sizes.into_iter().map(QueueConfig::new).collect(),
            notify,
            ioevent_base: None,
            mem: ctx.mem,
            ioevents: ctx.ioevents,
            active: false,
            device,
        })
    }

    /// The interrupt state (tests look at the status and the MSI-X counters).
    pub fn interrupt(&self) -> &Arc<VirtioInterrupt> {
        &self.interrupt
    }

    fn msix(&self) -> std::sync::MutexGuard<'_, Msix> {
        self.interrupt.msix().lock().unwrap_or_else(|p| p.into_inner())
    }

    fn vector_ok(&self, v: u16) -> u16 {
        if v == NO_VECTOR || v < self.msix().size() { v } else { NO_VECTOR }
    }

    /// Virtio reset (status 0 written, or machine reset).
    fn reset_device(&mut self) {
        self.device.reset();
        self.active = false;
        self.driver_features = 0;
        self.device_feature_select = 0;
        self.driver_feature_select = 0;
        self.queue_select = 0;
        for q in &mut self.queues {
            *q = QueueConfig::new(q.max_size);
        }
        self.interrupt.set_config_vector(NO_VECTOR);
        self.interrupt.clear_isr();
        self.interrupt.set_status(0);
        for n in &self.notify {
            let _ = n.read();
        }
    }

    fn features_acceptable(&self) -> bool {
        self.driver_features & !self.device_features == 0
            && self.driver_features & (1 << VIRTIO_F_VERSION_1) != 0
    }

    fn write_status(&mut self, v: u8) {
        if v == 0 {
            self.reset_device();
            return;
        }
        let old = self.interrupt.status();
        let mut new = v | (old & VIRTIO_CONFIG_S_NEEDS_RESET as u8);
        let features_ok = VIRTIO_CONFIG_S_FEATURES_OK as u8;
        if new & features_ok != 0 && old & features_ok == 0 && !self.features_acceptable() {
            tracing::debug!(
                "virtio: driver features {:#x} not acceptable (offered {:#x})",
                self.driver_features,
                self.device_features
            );
            new &= !features_ok;
        }
        self.interrupt.set_status(new);
        let driver_ok = VIRTIO_CONFIG_S_DRIVER_OK as u8;
        if new & driver_ok != 0 && !self.active && new & features_ok != 0 {
            self.active = true;
            if let Err(e) = self.activate() {
                self.interrupt.needs_reset(&e);
            }
        }
    }

    fn activate(&mut self) -> Result<(), String> {
        let event_idx = self.driver_features & (1 << VIRTIO_RING_F_EVENT_IDX) != 0;
        let mut queues = Vec::new();
        for (i, c) in self.queues.iter().enumerate() {
            if !c.enabled {
                continue;
            }
            let mut q = Queue::new(c.max_size).map_err(|e| format!("queue {i}: {e}"))?;
            q.try_set_size(c.size).map_err(|_| format!("queue {i}: invalid size {}", c.size))?;
            q.try_set_desc_table_address(GuestAddress(c.desc))
                .map_err(|_| format!("queue {i}: misaligned descriptor table {:#x}", c.desc))?;
            q.try_set_avail_ring_address(GuestAddress(c.driver))
                .map_err(|_| format!("queue {i}: misaligned available ring {:#x}", c.driver))?;
            q.try_set_used_ring_address(GuestAddress(c.device))
                .map_err(|_| format!("queue {i}: misaligned used ring {:#x}", c.device))?;
            q.set_event_idx(event_idx);
            q.set_ready(true);
            if !q.is_valid(&self.mem) {
                return Err(format!("queue {i}: rings are not in guest memory"));
            }
            queues.push(ActiveQueue {
                index: i as u16,
                queue: q,
                notify: Arc::clone(&self.notify[i]),
                vector: Arc::clone(&c.vector),
            });
        }
        self.device.activate(Activation {
            mem: self.mem.clone(),
            features: self.driver_features,
            interrupt: Arc::clone(&self.interrupt),
            queues,
        })
    }

    fn read_common(&self, field: u64) -> u32 {
        use common::*;
        let q = self.queues.get(usize::from(self.queue_select));
        match field {
            DFSELECT => self.device_feature_select,
            DF => match self.device_feature_select {
                0 => self.device_features as u32,
                1 => (self.device_features >> 32) as u32,
                _ => 0,
            },
            GFSELECT => self.driver_feature_select,
            GF => match self.driver_feature_select {
                0 => self.driver_features as u32,
                1 => (self.driver_features >> 32) as u32,
                _ => 0,
            },
            MSIX => u32::from(self.interrupt.config_vector()),
            NUMQ => self.queues.len() as u32,
            STATUS => u32::from(self.interrupt.status()),
            CFGGEN => 0,
            Q_SELECT => u32::from(self.queue_select),
            Q_SIZE => q.map_or(0, |q| u32::from(q.size)),
            Q_MSIX => q.map_or(u32::from(NO_VECTOR), |q| u32::from(q.vector.load(Ordering::SeqCst))),
            Q_ENABLE => q.map_or(0, |q| u32::from(q.enabled)),
            Q_NOFF => q.map_or(0, |_| u32::from(self.queue_select)),
            Q_DESCLO => q.map_or(0, |q| q.desc as u32),
            Q_DESCHI => q.map_or(0, |q| (q.desc >> 32) as u32),
            Q_AVAILLO => q.map_or(0, |q| q.driver as u32),
            Q_AVAILHI => q.map_or(0, |q| (q.driver >> 32) as u32),
            Q_USEDLO => q.map_or(0, |q| q.device as u32),
            Q_USEDHI => q.map_or(0, |q| (q.device >> 32) as u32),
            _ => 0,
        }
    }

    fn write_common(&mut self, field: u64, v: u32) {
        use common::*;
        let features_ok = self.interrupt.status() & VIRTIO_CONFIG_S_FEATURES_OK as u8 != 0;
        let sel = usize::from(self.queue_select);
        match field {
            DFSELECT => self.device_feature_select = v,
            GFSELECT => self.driver_feature_select = v,
            GF if !features_ok => match self.driver_feature_select {
                0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
                1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32),
                _ => {}
            },
            MSIX => {
                let v = self.vector_ok(v as u16);
                self.interrupt.set_config_vector(v);
            }
            STATUS => self.write_status(v as u8),
            Q_SELECT => self.queue_select = v as u16,
            Q_MSIX => {
                let v = self.vector_ok(v as u16);
                if let Some(q) = self.queues.get(sel) {
                    q.vector.store(v, Ordering::SeqCst);
                }
            }
            _ => {
                let Some(q) = self.queues.get_mut(sel) else { return };
                if q.enabled {
                    tracing::debug!("virtio: queue {sel} setting {field:#x} changed while enabled: ignored");
                    return;
                }
                let set_lo = |a: &mut u64| *a = (*a & !0xffff_ffff) | u64::from(v);
                let set_hi = |a: &mut u64| *a = (*a & 0xffff_ffff) | (u64::from(v) << 32);
                match field {
                    Q_SIZE => q.size = v as u16,
                    Q_ENABLE => q.enabled = v & 1 == 1,
                    Q_DESCLO => set_lo(&mut q.desc),
                    Q_DESCHI => set_hi(&mut q.desc),
                    Q_AVAILLO => set_lo(&mut q.driver),
                    Q_AVAILHI => set_hi(&mut q.driver),
                    Q_USEDLO => set_lo(&mut q.device),
                    Q_USEDHI => set_hi(&mut q.device),
                    _ => tracing::debug!("virtio: write to read-only common field {field:#x} ignored"),
                }
            }
        }
    }

    /// The field an access falls in: (field offset, field size).
    fn common_field(offset: u64, len: usize) -> Option<(u64, usize)> {
        common::FIELDS
            .iter()
            .copied()
            .find(|&(f, size)| offset >= f && offset + len as u64 <= f + size as u64)
    }

    fn read_modern(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let len = data.len();
        if offset < ISR_OFFSET {
            if len == 8 && matches!(offset, common::Q_DESCLO | common::Q_AVAILLO | common::Q_USEDLO) {
                let lo = self.read_common(offset);
                let hi = self.read_common(offset + 4);
                data.copy_from_slice(&(u64::from(lo) | (u64::from(hi) << 32)).to_le_bytes());
                return;
            }
            if let Some((field, _)) = Self::common_field(offset, len) {
                let v = self.read_common(field).to_le_bytes();
                let start = (offset - field) as usize;
                data.copy_from_slice(&v[start..start + len]);
            }
        } else if offset < DEVICE_OFFSET {
            if offset == ISR_OFFSET && len == 1 {
                data[0] = self.interrupt.take_isr();
            }
        } else if offset < NOTIFY_OFFSET {
            self.device.read_config(offset - DEVICE_OFFSET, data);
        }
    }

    fn write_modern(&mut self, offset: u64, data: &[u8]) {
        let len = data.len();
        if offset < ISR_OFFSET {
            if len == 8 && matches!(offset, common::Q_DESCLO | common::Q_AVAILLO | common::Q_USEDLO) {
                let v = u64::from_le_bytes(data.try_into().unwrap_or([0; 8]));
                self.write_common(offset, v as u32);
                self.write_common(offset + 4, (v >> 32) as u32);
                return;
            }
            let Some((field, _)) = Self::common_field(offset, len) else {
                tracing::debug!(offset, len, "virtio: odd access to the common configuration ignored");
                return;
            };
            // A partial write merges into the field's current value.
            let mut v = self.read_common(field).to_le_bytes();
            let start = (offset - field) as usize;
            v[start..start + len].copy_from_slice(data);
            self.write_common(field, u32::from_le_bytes(v));
        } else if offset < DEVICE_OFFSET {
            tracing::debug!("virtio: write to the ISR ignored");
        } else if offset < NOTIFY_OFFSET {
            self.device.write_config(offset - DEVICE_OFFSET, data);
        } else {
            let q = (offset - NOTIFY_OFFSET) / u64::from(NOTIFY_MULTIPLIER);
            if let Some(evt) = self.notify.get(q as usize) {
                let _ = evt.write(1);
            }
        }
    }

    /// The PCI-config window: bar, offset, length, if valid.
    fn pci_cfg_target(&self) -> Option<(usize, u64, usize)> {
        let raw = self.cfg.raw();
        let c = self.pci_cfg_cap;
        let bar = raw[c + 4] as usize;
        let off = u32::from_le_bytes([raw[c + 8], raw[c + 9], raw[c + 10], raw[c + 11]]);
        let len = u32::from_le_bytes([raw[c + 12], raw[c + 13], raw[c + 14], raw[c + 15]]) as usize;
        (matches!(len, 1 | 2 | 4) && off.is_multiple_of(len as u32) && matches!(bar, MSIX_BAR | MODERN_BAR))
            .then_some((bar, u64::from(off), len))
    }
}

impl PciFunction for VirtioPci {
    fn config(&self) -> &PciConfig {
        &self.cfg
    }

    fn config_mut(&mut self) -> &mut PciConfig {
        &mut self.cfg
    }

    fn read_config(&mut self, off: usize, data: &mut [u8]) {
        let window = self.pci_cfg_cap + 16;
        if overlaps(off, data.len(), window, 4)
            && let Some((bar, boff, len)) = self.pci_cfg_target()
        {
            let mut buf = [0u8; 4];
            self.read_bar(bar, boff, &mut buf[..len]);
            self.cfg.raw_write(window, &buf);
        }
        self.cfg.read(off, data);
    }

    fn write_config(&mut self, off: usize, data: &[u8]) -> bool {
        let changed = self.cfg.write(off, data);
        if overlaps(off, data.len(), self.msix_cap + 2, 2) {
            let ctrl = self.cfg.read_u16(self.msix_cap + 2);
            self.msix().set_control(ctrl);
        }
        let window = self.pci_cfg_cap + 16;
        if overlaps(off, data.len(), window, 4)
            && let Some((bar, boff, len)) = self.pci_cfg_target()
        {
            let mut buf = [0u8; 4];
            buf.copy_from_slice(&self.cfg.raw()[window..window + 4]);
            self.write_bar(bar, boff, &buf[..len]);
        }
        changed
    }

    fn read_bar(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        match bar {
            MSIX_BAR if offset < PBA_OFFSET => self.msix().read_table(offset, data),
            MSIX_BAR => self.msix().read_pba(offset - PBA_OFFSET, data),
            MODERN_BAR => self.read_modern(offset, data),
            _ => data.fill(0xff),
        }
    }

    fn write_bar(&mut self, bar: usize, offset: u64, data: &[u8]) {
        match bar {
            MSIX_BAR if offset < PBA_OFFSET => self.msix().write_table(offset, data),
            MSIX_BAR => tracing::debug!("virtio: write to the MSI-X PBA ignored"),
            MODERN_BAR => self.write_modern(offset, data),
            _ => {}
        }
    }

    fn bars_moved(&mut self, _old: &[BarMapping], mapped: &[BarMapping]) {
        let new_base = mapped.iter().find(|m| m.index == MODERN_BAR).map(|m| m.addr);
        if new_base == self.ioevent_base {
            return;
        }
        if let Some(base) = self.ioevent_base.take() {
            for (i, evt) in self.notify.iter().enumerate() {
                let addr = base + NOTIFY_OFFSET + i as u64 * u64::from(NOTIFY_MULTIPLIER);
                if let Err(e) = self.ioevents.unregister(evt, addr) {
                    tracing::warn!("virtio: queue {i}: {e}");
                }
            }
        }
        if let Some(base) = new_base {
            for (i, evt) in self.notify.iter().enumerate() {
                let addr = base + NOTIFY_OFFSET + i as u64 * u64::from(NOTIFY_MULTIPLIER);
                if let Err(e) = self.ioevents.register(evt, addr) {
                    tracing::warn!("virtio: queue {i}: notifications will be slow: {e}");
                }
            }
            self.ioevent_base = Some(base);
        }
    }

    fn reset(&mut self) {
        self.reset_device();
        self.cfg.reset();
        self.msix().reset();
    }

    fn pause(&mut self) {
        self.device.pause();
    }

    fn resume(&mut self) {
        self.device.resume();
    }

    fn shutdown(&mut self) {
        self.device.shutdown();
    }

    fn qdev_id(&self) -> String {
        self.qdev_id.clone()
    }
}
