//! What device threads share with the virtio-pci transport: the device status (so a thread can
//! set NEEDS_RESET), the ISR bits, the vectors, and the MSI-X table that delivers interrupts.

use std::sync::atomic::{AtomicU8, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use virtio_bindings::virtio_config::VIRTIO_CONFIG_S_NEEDS_RESET;

use crate::machine::pci::msix::Msix;

/// `VIRTIO_MSI_NO_VECTOR`.
pub const NO_VECTOR: u16 = 0xffff;
/// ISR bit: a used buffer was added.
pub const ISR_QUEUE: u8 = 1;
/// ISR bit: the device configuration (or NEEDS_RESET) changed.
pub const ISR_CONFIG: u8 = 2;

/// Shared between the transport (vCPU threads) and the device's threads.
pub struct VirtioInterrupt {
    status: AtomicU8,
    isr: AtomicU8,
    config_vector: AtomicU16,
    msix: Arc<Mutex<Msix>>,
}

impl VirtioInterrupt {
    pub fn new(msix: Arc<Mutex<Msix>>) -> Self {
        VirtioInterrupt {
            status: AtomicU8::new(0),
            isr: AtomicU8::new(0),
            config_vector: AtomicU16::new(NO_VECTOR),
            msix,
        }
    }

    pub fn msix(&self) -> &Arc<Mutex<Msix>> {
        &self.msix
    }

    fn notify(&self, vector: u16) {
        if vector != NO_VECTOR {
            self.msix.lock().unwrap_or_else(|p| p.into_inner()).notify(vector);
        }
    }

    /// A used buffer was added to a queue whose vector is `vector`.
    pub fn signal_used(&self, vector: u16) {
        self.isr.fetch_or(ISR_QUEUE, Ordering::SeqCst);
        self.notify(vector);
    }

    /// The device configuration changed.
    pub fn signal_config(&self) {
        self.isr.fetch_or(ISR_CONFIG, Ordering::SeqCst);
        self.notify(self.config_vector.load(Ordering::SeqCst));
    }

    /// The guest did something the device cannot recover from: NEEDS_RESET + config interrupt.
    pub fn needs_reset(&self, why: &str) {
        tracing::warn!("virtio: device needs reset: {why}");
        self.status.fetch_or(VIRTIO_CONFIG_S_NEEDS_RESET as u8, Ordering::SeqCst);
        self.signal_config();
    }

    pub fn status(&self) -> u8 {
        self.status.load(Ordering::SeqCst)
    }

    pub fn set_status(&self, s: u8) {
        self.status.store(s, Ordering::SeqCst);
    }

    /// ISR read: returns the bits and clears them.
    pub fn take_isr(&self) -> u8 {
        self.isr.swap(0, Ordering::SeqCst)
    }

    pub fn clear_isr(&self) {
        self.isr.store(0, Ordering::SeqCst);
    }

    pub fn config_vector(&self) -> u16 {
        self.config_vector.load(Ordering::SeqCst)
    }

    pub fn set_config_vector(&self, v: u16) {
        self.config_vector.store(v, Ordering::SeqCst);
    }
}
