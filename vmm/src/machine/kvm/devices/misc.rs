//! Small port devices: the reset control register at 0xcf9 (also the FADT reset register) and
//! the POST/debug port 0x80 (writes swallowed: the classic I/O delay port).

use std::sync::Arc;

use crate::machine::GuestEvent;
use crate::machine::kvm::bus::BusDevice;
use crate::machine::kvm::events::GuestEvents;

const RCR_SYS_RST: u8 = 1 << 1;
const RCR_RST_CPU: u8 = 1 << 2;

pub struct ResetControl {
    value: u8,
    events: Arc<GuestEvents>,
}

impl ResetControl {
    pub fn new(events: Arc<GuestEvents>) -> Self {
        ResetControl { value: 0, events }
    }

    pub fn reset(&mut self) {
        self.value = 0;
    }
}

impl BusDevice for ResetControl {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(d) = data.first_mut() {
            *d = self.value;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if data.len() != 1 {
            return;
        }
        if data[0] & RCR_RST_CPU != 0 {
            self.value = 0;
            self.events.report(GuestEvent::Reset { triple_fault: false });
        } else {
            self.value = data[0] & RCR_SYS_RST;
        }
    }
}

/// Port 0x80.
pub struct DebugPort;

impl BusDevice for DebugPort {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u64, _data: &[u8]) {}
}
