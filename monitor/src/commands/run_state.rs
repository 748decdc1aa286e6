//! Run-state commands: query-status, stop, cont, system_reset, system_powerdown, quit.

use std::sync::Arc;

use serde::Serialize;

use crate::Monitor;
use crate::control::{ControlRequest, RunState};
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

pub(super) fn register(reg: &mut Registry) {
    reg.add("query-status", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        let status = m.control.run_state();
        Ok::<_, QmpError>(StatusInfo { running: status == RunState::Running, singlestep: false, status })
    });
    reg.add("stop", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        m.control.call(ControlRequest::Stop).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("cont", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        m.control.call(ControlRequest::Cont).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("system_reset", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        m.control.call(ControlRequest::SystemReset).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("system_powerdown", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        m.control.call(ControlRequest::SystemPowerdown).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("quit", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        m.control.call(ControlRequest::Quit).await?;
        Ok::<_, QmpError>(Empty {})
    });
}
