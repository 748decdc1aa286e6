//! Every event the server can emit, with its data type: the single list that introspection
//! (`query-qmp-schema`) reads, and the types producers emit.

use serde::Serialize;

use super::bus::QmpEvent;
use crate::block::types::{JobStatus, JobType};
use crate::control::ShutdownCause;
use crate::qapi::{Empty, Qapi, TypeFn};

macro_rules! no_data_event {
    ($(#[$m:meta])* $ty:ident, $name:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, Serialize)]
        pub struct $ty;
        impl Qapi for $ty {
            fn qapi_type() -> crate::qapi::QType {
                Empty::qapi_type()
            }
        }
        impl QmpEvent for $ty {
            const NAME: &'static str = $name;
        }
    };
}

no_data_event!(
    /// The VM stopped (`stop`, or an error policy).
    Stop,
    "STOP"
);
no_data_event!(
    /// The VM resumed.
    Resume,
    "RESUME"
);
no_data_event!(
    /// The ACPI power button was pressed (`system_powerdown`).
    Powerdown,
    "POWERDOWN"
);

/// The VM shut down (or was asked to quit).
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct Shutdown {
    pub guest: bool,
    pub reason: ShutdownCause,
}

impl QmpEvent for Shutdown {
    const NAME: &'static str = "SHUTDOWN";
}

/// The VM was reset.
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct Reset {
    pub guest: bool,
    pub reason: ShutdownCause,
}

impl QmpEvent for Reset {
    const NAME: &'static str = "RESET";
}

/// A job changed status (every transition of the job state machine).
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct JobStatusChange {
    pub id: String,
    pub status: JobStatus,
}

impl QmpEvent for JobStatusChange {
    const NAME: &'static str = "JOB_STATUS_CHANGE";
}

/// A block job finished; `error` is present when it failed.
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct BlockJobCompleted {
    #[serde(rename = "type")]
    pub kind: JobType,
    pub device: String,
    pub len: i64,
    pub offset: i64,
    pub speed: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl QmpEvent for BlockJobCompleted {
    const NAME: &'static str = "BLOCK_JOB_COMPLETED";
}

/// Progress data of BLOCK_JOB_CANCELLED and BLOCK_JOB_READY.
#[derive(Debug, Clone, Serialize, Qapi)]
#[qapi(name = "BlockJobProgressEvent")]
pub struct BlockJobProgress {
    #[serde(rename = "type")]
    pub kind: JobType,
    pub device: String,
    pub len: i64,
    pub offset: i64,
    pub speed: i64,
}

/// A block job was cancelled before it completed.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct BlockJobCancelled(pub BlockJobProgress);

impl Qapi for BlockJobCancelled {
    fn qapi_type() -> crate::qapi::QType {
        BlockJobProgress::qapi_type()
    }
}

impl QmpEvent for BlockJobCancelled {
    const NAME: &'static str = "BLOCK_JOB_CANCELLED";
}

/// A mirror-like job (active commit) is in sync and waits for `block-job-complete`.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct BlockJobReady(pub BlockJobProgress);

impl Qapi for BlockJobReady {
    fn qapi_type() -> crate::qapi::QType {
        BlockJobProgress::qapi_type()
    }
}

impl QmpEvent for BlockJobReady {
    const NAME: &'static str = "BLOCK_JOB_READY";
}

/// `IoOperationType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum IoOperationType {
    Read,
    Write,
}

/// `BlockErrorAction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum BlockErrorAction {
    Ignore,
    Report,
    Stop,
}

/// A guest request to a drive failed on the host; `action` is what the drive's
/// `rerror`/`werror` did with it (`stop`: the VM stops in `io-error`).
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct BlockIoError {
    /// The drive name (empty for a drive a device put over a `-blockdev` node).
    pub device: String,
    #[serde(rename = "node-name", skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub operation: IoOperationType,
    pub action: BlockErrorAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nospace: Option<bool>,
    pub reason: String,
}

impl QmpEvent for BlockIoError {
    const NAME: &'static str = "BLOCK_IO_ERROR";
}

/// A block job met an I/O error; `action` is what its `on-error` policy did.
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct BlockJobError {
    pub device: String,
    pub operation: IoOperationType,
    pub action: BlockErrorAction,
}

impl QmpEvent for BlockJobError {
    const NAME: &'static str = "BLOCK_JOB_ERROR";
}

/// A job with `auto-finalize: false` waits in `pending` for `job-finalize`.
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct BlockJobPending {
    #[serde(rename = "type")]
    pub kind: JobType,
    pub id: String,
}

impl QmpEvent for BlockJobPending {
    const NAME: &'static str = "BLOCK_JOB_PENDING";
}

/// `(name, data type)` of every event, in the order introspection lists them.
pub fn all() -> Vec<(&'static str, TypeFn)> {
    fn entry<E: QmpEvent>() -> (&'static str, TypeFn) {
        (E::NAME, E::qapi_type)
    }
    vec![
        entry::<Shutdown>(),
        entry::<Powerdown>(),
        entry::<Reset>(),
        entry::<Stop>(),
        entry::<Resume>(),
        entry::<BlockIoError>(),
        entry::<BlockJobCompleted>(),
        entry::<BlockJobCancelled>(),
        entry::<BlockJobError>(),
        entry::<BlockJobReady>(),
        entry::<BlockJobPending>(),
        entry::<JobStatusChange>(),
    ]
}
