//! Run-state commands: query-status, stop, cont, system_reset, system_powerdown, quit,
//! system_wakeup.

use std::sync::Arc;

use serde::Serialize;

use crate::Monitor;
use crate::control::{ControlRequest, Reply, RunState};
use crate::error::QmpError;
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};

/// `query-status` (7.2 shape, with the `singlestep` member).
#[derive(Debug, Serialize, Qapi)]
pub struct StatusInfo {
    pub running: bool,
    pub singlestep: bool,
    pub status: RunState,
}

/// Builds a request around its reply channel.
type MakeRequest = fn(Reply<()>) -> ControlRequest;

pub(super) fn register(reg: &mut Registry) {
    reg.add("query-status", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        let status = m.control.run_state();
        Ok::<_, QmpError>(StatusInfo { running: status == RunState::Running, singlestep: false, status })
    });
    // Commands without arguments or return data that only ask the control loop for an action.
    let actions: [(&'static str, MakeRequest); 4] = [
        ("stop", ControlRequest::Stop),
        ("cont", ControlRequest::Cont),
        ("system_reset", ControlRequest::SystemReset),
        ("system_powerdown", ControlRequest::SystemPowerdown),
    ];
    for (name, request) in actions {
        reg.add(name, Flags::default(), move |m: Arc<Monitor>, _a: Empty| async move {
            m.control.call(request).await?;
            Ok::<_, QmpError>(Empty {})
        });
    }
    reg.add("quit", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        m.control.call(ControlRequest::Quit).await?;
        // The process is exiting: sessions write what they have (this reply included) and stop
        // reading, so nothing after `quit` is answered, as with QEMU.
        m.close();
        Ok::<_, QmpError>(Empty {})
    });
    // No machine here has ACPI S3 (`wakeup-suspend-support: false` in query-current-machine),
    // so a guest is never suspended: QEMU's answer for such a machine.
    reg.add("system_wakeup", Flags::default(), |_m, _a: Empty| async {
        Err::<Empty, _>(QmpError::generic("wake-up from suspend is not supported by this guest"))
    });
}
