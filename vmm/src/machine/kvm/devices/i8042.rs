//! The i8042 keyboard controller at 0x60/0x64, as far as a VM needs it: the CPU reset line
//! (command 0xfe), which becomes a guest reset request.

use std::sync::Arc;

use vm_superio::{I8042Device, Trigger};

use crate::machine::GuestEvent;
use crate::machine::kvm::bus::BusDevice;
use crate::machine::kvm::events::GuestEvents;

pub struct ResetLine(pub Arc<GuestEvents>);

impl Trigger for ResetLine {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        self.0.report(GuestEvent::Reset { triple_fault: false });
        Ok(())
    }
}

/// Mapped at 0x60 with length 5: offset 0 is the data port, offset 4 the command port.
pub struct I8042 {
    dev: I8042Device<ResetLine>,
    events: Arc<GuestEvents>,
}

impl I8042 {
    pub fn new(events: Arc<GuestEvents>) -> Self {
        I8042 { dev: I8042Device::new(ResetLine(Arc::clone(&events))), events }
    }

    pub fn reset(&mut self) {
        self.dev = I8042Device::new(ResetLine(Arc::clone(&self.events)));
    }
}

impl BusDevice for I8042 {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if data.len() == 1 && (offset == 0 || offset == 4) {
            data[0] = self.dev.read(offset as u8);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() == 1 && (offset == 0 || offset == 4) {
            if let Err(e) = self.dev.write(offset as u8, data[0]) {
                tracing::debug!("i8042: {e:?}");
            }
        } else {
            tracing::debug!(offset, len = data.len(), "i8042: access ignored");
        }
    }
}
