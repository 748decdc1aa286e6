//! A drive's `rerror` / `werror` applied to a guest request that failed on the host (QEMU's
//! `blk_get_error_action` + `blk_error_action`).
//!
//! Runs on the device's I/O threads. `stop` first sets the drive's `io-status` (so a
//! `query-block` after the event shows it), then reports; the report goes to the control loop,
//! which sends BLOCK_IO_ERROR and, for `stop`, stops the VM in `io-error`. The held request is
//! served again on `cont` (see `worker.rs`), which also resets every drive's `io-status`.

use std::sync::Arc;

use super::request::{DiskError, ErrorAction, ErrorPolicy, IoOp};
use crate::blockdev::{BlockBackend, BlockGraph, IoStatus, OnError};

/// A failed guest request, as BLOCK_IO_ERROR tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoErrorReport {
    /// The drive name (empty for the drive a device put over a `-blockdev` node).
    pub device: String,
    /// The node at the top of the drive.
    pub node_name: Option<String>,
    pub operation: IoOp,
    pub action: ErrorAction,
    /// The host said ENOSPC.
    pub nospace: bool,
    /// `strerror` of the host's error.
    pub reason: String,
}

/// Where reports go (the control loop).
pub type ReportFn = Box<dyn Fn(IoErrorReport) + Send + Sync>;

/// The error policy of one drive.
pub struct DriveErrorPolicy {
    drive: Arc<BlockBackend>,
    graph: Arc<BlockGraph>,
    report: ReportFn,
}

impl DriveErrorPolicy {
    pub fn new(drive: Arc<BlockBackend>, graph: Arc<BlockGraph>, report: ReportFn) -> Self {
        DriveErrorPolicy { drive, graph, report }
    }
}

/// What `policy` does with an error (`nospace`: the host said ENOSPC).
pub fn action_for(policy: OnError, nospace: bool) -> ErrorAction {
    match policy {
        OnError::Report => ErrorAction::Report,
        OnError::Ignore => ErrorAction::Ignore,
        OnError::Stop => ErrorAction::Stop,
        OnError::Enospc if nospace => ErrorAction::Stop,
        OnError::Enospc => ErrorAction::Report,
    }
}

impl ErrorPolicy for DriveErrorPolicy {
    fn on_error(&self, op: IoOp, err: &DiskError) -> ErrorAction {
        let (rerror, werror) = self.drive.on_error();
        let nospace = err.errno == Some(libc::ENOSPC);
        let action = action_for(if op == IoOp::Read { rerror } else { werror }, nospace);
        if action == ErrorAction::Stop {
            self.drive.set_io_status(if nospace { IoStatus::NoSpace } else { IoStatus::Failed });
        }
        let reason = match err.errno {
            Some(n) => block::error::os_text(&std::io::Error::from_raw_os_error(n)),
            None => err.message.clone(),
        };
        (self.report)(IoErrorReport {
            device: self.drive.name().to_string(),
            node_name: self.graph.name_of(&self.drive.root()),
            operation: op,
            action,
            nospace,
            reason,
        });
        action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemus_decision_table() {
        use ErrorAction::*;
        for (policy, nospace, want) in [
            (OnError::Report, true, Report),
            (OnError::Ignore, true, Ignore),
            (OnError::Stop, false, Stop),
            (OnError::Enospc, true, Stop),
            (OnError::Enospc, false, Report),
        ] {
            assert_eq!(action_for(policy, nospace), want, "{policy:?} nospace={nospace}");
        }
    }
}
