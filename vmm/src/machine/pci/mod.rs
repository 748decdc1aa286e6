//! PCI for the KVM machine: one root bus behind a host bridge, reached through conf1
//! (0xcf8/0xcfc) and ECAM (MCFG), with MSI-X delivered through KVM irqfds.
//!
//! Code map:
//! - `config.rs`      a function's config space: masks, W1C bits, BAR sizing, capabilities
//! - `root.rs`        bus 0: slots, BAR allocation (as firmware would) and mapping on the
//!   machine's MMIO/port buses, the [`PciFunction`] trait
//! - `host.rs`        host bridge function, conf1 ports (0xcf9 forwarded to reset control), ECAM
//! - `msix.rs`        MSI-X capability, table, PBA, masking, delivery by irqfd
//! - `irq_routing.rs` KVM's GSI routing table (irqchip defaults + one MSI route per vector)
//! - `acpi.rs`        `\_SB.PCI0` and the ECAM reservation (DSDT), MCFG
//! - `info.rs`        what `query-pci` reports
//!
//! [`PciSystem`] ties these together for [`crate::machine::KvmMachine`]: it is built with the
//! machine, describes itself in ACPI, and takes virtio devices (`add_virtio`) before the vCPUs
//! start.

pub mod acpi;
pub mod config;
pub mod host;
pub mod info;
pub mod irq_routing;
pub mod msix;
pub mod root;

use std::sync::{Arc, Mutex};

use kvm_ioctls::VmFd;

pub use info::{PciDeviceInfo, PciRegionInfo};
pub use root::{PciFunction, PciRoot};

use self::acpi::PciWindows;
use self::host::{CONF1_LEN, CONF1_PORT, Conf1, ECAM_BUS_SIZE, Ecam, HostBridge};
use self::irq_routing::GsiRouter;
use crate::machine::MachineError;
use crate::machine::kvm::bus::{Bus, SharedDevice};
use crate::machine::kvm::layout::{MMIO32_START, PCI_ECAM_START};
use crate::machine::kvm::memory::GuestMemory;
use crate::machine::virtio::VirtioDevice;
use crate::machine::virtio::pci::{TransportContext, VirtioPci};

/// BARs go in 0xc000_0000..0xe000_0000 (ECAM follows).
pub const MMIO_WINDOW: (u64, u64) = (MMIO32_START, PCI_ECAM_START - MMIO32_START);
/// I/O BARs go in 0xc000..0xffff.
pub const IO_WINDOW: (u64, u64) = (0xc000, 0x4000);

/// The machine's PCI side.
pub struct PciSystem {
    root: Arc<PciRoot>,
    router: Arc<GsiRouter>,
    vm: Arc<VmFd>,
    mem: GuestMemory,
}

impl PciSystem {
    /// Host bridge at 00:00.0, conf1 on `pio` (taking over 0xcf9's `reset_control`), ECAM on
    /// `mmio`.
    pub fn new(
        vm: Arc<VmFd>,
        mem: GuestMemory,
        pio: Arc<Bus>,
        mmio: Arc<Bus>,
        reset_control: Option<SharedDevice>,
    ) -> Result<Self, MachineError> {
        let err = |e: String| MachineError::Other(format!("PCI: {e}"));
        let root = Arc::new(
            PciRoot::new(Arc::clone(&pio), Arc::clone(&mmio), MMIO_WINDOW, IO_WINDOW)
                .map_err(|e| err(e.to_string()))?,
        );
        root.add(Arc::new(Mutex::new(HostBridge::new())), Some(0)).map_err(|e| err(e.to_string()))?;
        let conf1: SharedDevice = Arc::new(Mutex::new(Conf1::new(Arc::clone(&root), reset_control)));
        pio.insert(u64::from(CONF1_PORT), CONF1_LEN, conf1).map_err(|e| err(e.to_string()))?;
        let ecam: SharedDevice = Arc::new(Mutex::new(Ecam::new(Arc::clone(&root))));
        mmio.insert(PCI_ECAM_START, ECAM_BUS_SIZE, ecam).map_err(|e| err(e.to_string()))?;
        let router = Arc::new(GsiRouter::new(Arc::clone(&vm) as Arc<dyn irq_routing::RouteSink>));
        Ok(PciSystem { root, router, vm, mem })
    }

    fn windows() -> PciWindows {
        PciWindows { mmio: MMIO_WINDOW, ecam: PCI_ECAM_START }
    }

    /// AML for `\_SB` (PCI0 and the ECAM reservation).
    pub fn acpi_sb_aml() -> Vec<u8> {
        acpi::sb_aml(&Self::windows())
    }

    /// Extra ACPI tables (MCFG).
    pub fn acpi_tables() -> Vec<Vec<u8>> {
        vec![acpi::mcfg(&Self::windows())]
    }

    /// Plugs a virtio device in (slot: first free unless given); returns the slot.
    pub fn add_virtio(
        &self,
        device: Box<dyn VirtioDevice>,
        qdev_id: &str,
        slot: Option<u8>,
    ) -> Result<u8, MachineError> {
        let ctx = TransportContext {
            mem: self.mem.clone(),
            router: Arc::clone(&self.router),
            irqfd: Arc::clone(&self.vm) as Arc<dyn msix::IrqfdBinder + Send + Sync>,
            ioevents: Arc::clone(&self.vm) as Arc<dyn crate::machine::virtio::pci::IoEvents>,
        };
        let dev = VirtioPci::new(device, qdev_id, ctx).map_err(MachineError::Config)?;
        self.root.add(Arc::new(Mutex::new(dev)), slot).map_err(|e| MachineError::Config(e.to_string()))
    }

    pub fn root(&self) -> &Arc<PciRoot> {
        &self.root
    }

    pub fn reset(&self) {
        self.root.reset();
    }

    pub fn pause(&self) {
        self.root.pause();
    }

    pub fn resume(&self) {
        self.root.resume();
    }

    pub fn shutdown(&self) {
        self.root.shutdown();
    }

    pub fn info(&self) -> Vec<PciDeviceInfo> {
        self.root.info()
    }
}
