//! Guest-initiated transitions on their way to the control loop. Reporting one also asks every
//! vCPU to park (the machine stops itself, as QEMU's main loop stops the VM on such requests);
//! the control loop then resets, resumes or shuts the machine down.

use std::sync::Mutex;
use std::sync::mpsc::Sender;

use crate::machine::GuestEvent;

/// Called with every reported event before it is sent: parks the vCPUs.
pub type StopHook = Box<dyn Fn() + Send + Sync>;

pub struct GuestEvents {
    tx: Mutex<Sender<GuestEvent>>,
    stop: Mutex<Option<StopHook>>,
}

impl GuestEvents {
    pub fn new(tx: Sender<GuestEvent>) -> Self {
        GuestEvents { tx: Mutex::new(tx), stop: Mutex::new(None) }
    }

    pub fn set_stop_hook(&self, hook: StopHook) {
        *self.stop.lock().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    pub fn report(&self, event: GuestEvent) {
        tracing::info!(?event, "guest event");
        if let Some(stop) = self.stop.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            stop();
        }
        // A closed channel means nobody listens any more (the machine is being torn down).
        let _ = self.tx.lock().unwrap_or_else(|p| p.into_inner()).send(event);
    }
}
