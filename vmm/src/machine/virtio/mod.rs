//! virtio devices and their PCI transport (virtio 1.x "modern" only), on virtio-queue's split
//! rings and virtio-bindings' constants.
//!
//! Code map:
//! - `pci.rs`       the virtio-pci transport: a PCI function with the common, ISR, device and
//!   notify capabilities (and the PCI-config access window), feature negotiation, queue setup,
//!   device status and reset, ioeventfds for the notify addresses
//! - `interrupt.rs` status / ISR / config vector shared with device threads; NEEDS_RESET
//! - `chain.rs`     walking and checking a descriptor chain (loops, bounds, directions)
//! - `worker.rs`    one thread per active queue: kick → chains → handler → used ring → MSI-X
//! - `blk/`         virtio-blk: `request.rs` (parse + serve, fuzzed), `mod.rs` (the device)
//!
//! Threads: the transport runs on the vCPU thread that touched it (behind the PCI function's
//! mutex); requests are served on the queue threads, which share with the transport only the
//! [`interrupt::VirtioInterrupt`] (atomics and the MSI-X table mutex) and their `Queue`.

use std::sync::Arc;
use std::sync::atomic::AtomicU16;

use virtio_queue::Queue;
use vmm_sys_util::eventfd::EventFd;

use crate::machine::kvm::memory::GuestMemory;

pub mod blk;
pub mod chain;
pub mod interrupt;
pub mod pci;
pub mod worker;

pub use interrupt::VirtioInterrupt;

/// One queue handed to the device when the driver sets DRIVER_OK.
pub struct ActiveQueue {
    pub index: u16,
    pub queue: Queue,
    /// Written by KVM (ioeventfd) or the transport when the guest kicks this queue.
    pub notify: Arc<EventFd>,
    pub vector: Arc<AtomicU16>,
}

/// What a device gets when the driver is ready.
pub struct Activation {
    pub mem: GuestMemory,
    /// The negotiated features.
    pub features: u64,
    pub interrupt: Arc<VirtioInterrupt>,
    /// The queues the driver enabled.
    pub queues: Vec<ActiveQueue>,
}

/// A virtio device behind the PCI transport.
pub trait VirtioDevice: Send {
    /// virtio device ID (2: block); the PCI device ID is 0x1040 + this.
    fn device_id(&self) -> u16;
    /// PCI class code (class, subclass, prog-if).
    fn pci_class(&self) -> u32;
    /// Maximum size of each queue (their number is the device's queue count).
    fn queue_max_sizes(&self) -> Vec<u16>;
    /// Features offered (VIRTIO_F_VERSION_1 included).
    fn features(&self) -> u64;
    /// Device configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Start serving the queues.
    fn activate(&mut self, activation: Activation) -> Result<(), String>;
    /// Stop serving (threads joined); the transport resets its own state.
    fn reset(&mut self);
    /// Finish requests in hand and stop taking new ones until `resume`.
    fn pause(&mut self);
    fn resume(&mut self);
    /// The machine is going away.
    fn shutdown(&mut self) {
        self.reset();
    }
}
