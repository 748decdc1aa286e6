//! The monitor's only way into the machine: plain-data requests sent to the VMM's control loop.
//!
//! Each [`ControlRequest`] carries its own typed reply channel, so requests can be logged, tested
//! and matched exhaustively by the control loop (in the `vmm` crate), and no reply needs a
//! catch-all payload type. Reads that must be fast (the run state for `query-status`) come from a
//! [`tokio::sync::watch`] the control loop publishes, without a round trip.
//!
//! Errors come back as [`ControlError`]; [`From<ControlError> for QmpError`] is the single place
//! where failures get their QMP error class.

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::{ErrorClass, QmpError};
use crate::qapi::Qapi;

/// The reply half of a request.
pub type Reply<T> = oneshot::Sender<Result<T, ControlError>>;

/// Everything the monitor asks of the machine.
#[derive(Debug)]
pub enum ControlRequest {
    /// Pause every vCPU (STOP event if it was running).
    Stop(Reply<()>),
    /// Resume (RESUME event if it was not running).
    Cont(Reply<()>),
    /// Reset the machine (RESET event, `host-qmp-system-reset`).
    SystemReset(Reply<()>),
    /// Press the ACPI power button (POWERDOWN event).
    SystemPowerdown(Reply<()>),
    /// Shut down and exit (SHUTDOWN event, `host-qmp-quit`). The reply is sent before the exit.
    Quit(Reply<()>),
    /// `query-cpus-fast`.
    QueryCpusFast(Reply<Vec<CpuInfoFast>>),
    /// HMP `info registers` for one vCPU.
    InfoRegisters { cpu: usize, reply: Reply<String> },
    /// Block devices, nodes and jobs (handled off the control loop's thread by the VMM's block
    /// service; see [`crate::block::request`]).
    Block(Box<crate::block::BlockRequest>),
    /// `query-pci`.
    QueryPci(Reply<Vec<crate::commands::pci::PciInfo>>),
    /// Guest memory: `len` bytes at guest-physical `addr`, or with `cpu` at a virtual address
    /// translated by that vCPU (`xp`/`x`, `pmemsave`/`memsave`).
    ReadMemory { addr: u64, len: u64, cpu: Option<usize>, reply: Reply<Vec<u8>> },
    /// The machine's QOM subtree (`/machine`) for `qom-list` / `qom-get`.
    QomMachine(Reply<crate::commands::qom::QomObject>),
}

/// Why a request failed, in terms the monitor maps to QMP error classes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// A named device, drive or netdev does not exist: `Device 'x' not found`.
    #[error("Device '{0}' not found")]
    DeviceNotFound(String),
    /// A block job id does not exist: `Block job 'x' not found`.
    #[error("Block job '{0}' not found")]
    BlockJobNotFound(String),
    /// A feature whose device is absent (`No balloon device has been activated`).
    #[error("{0}")]
    NotActive(String),
    /// Any other failure, with QEMU's text where it has one.
    #[error("{0}")]
    Failed(String),
    /// The control loop is gone (the VMM is exiting).
    #[error("The machine is shutting down")]
    Gone,
}

impl From<ControlError> for QmpError {
    fn from(e: ControlError) -> Self {
        let class = match &e {
            ControlError::DeviceNotFound(_) => ErrorClass::DeviceNotFound,
            ControlError::BlockJobNotFound(_) | ControlError::NotActive(_) => ErrorClass::DeviceNotActive,
            ControlError::Failed(_) | ControlError::Gone => ErrorClass::GenericError,
        };
        QmpError { class, desc: e.to_string() }
    }
}

/// QEMU's RunState (7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    Debug,
    Inmigrate,
    InternalError,
    IoError,
    Paused,
    Postmigrate,
    Prelaunch,
    FinishMigrate,
    RestoreVm,
    Running,
    SaveVm,
    Shutdown,
    Suspended,
    Watchdog,
    GuestPanicked,
    Colo,
}

impl RunState {
    /// The wire name (`prelaunch`, `internal-error`...).
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Debug => "debug",
            RunState::Inmigrate => "inmigrate",
            RunState::InternalError => "internal-error",
            RunState::IoError => "io-error",
            RunState::Paused => "paused",
            RunState::Postmigrate => "postmigrate",
            RunState::Prelaunch => "prelaunch",
            RunState::FinishMigrate => "finish-migrate",
            RunState::RestoreVm => "restore-vm",
            RunState::Running => "running",
            RunState::SaveVm => "save-vm",
            RunState::Shutdown => "shutdown",
            RunState::Suspended => "suspended",
            RunState::Watchdog => "watchdog",
            RunState::GuestPanicked => "guest-panicked",
            RunState::Colo => "colo",
        }
    }
}

/// QEMU's ShutdownCause, the `reason` of SHUTDOWN and RESET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum ShutdownCause {
    None,
    HostError,
    HostQmpQuit,
    HostQmpSystemReset,
    HostSignal,
    HostUi,
    GuestShutdown,
    GuestReset,
    GuestPanic,
    SubsystemReset,
    SnapshotLoad,
}

/// `query-cpus-fast` element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[qapi(name = "CpuInfoFast")]
pub struct CpuInfoFast {
    #[serde(rename = "cpu-index")]
    pub cpu_index: i64,
    #[serde(rename = "qom-path")]
    pub qom_path: String,
    #[serde(rename = "thread-id")]
    pub thread_id: i64,
    pub props: Option<CpuInstanceProperties>,
    /// Always `x86_64` here.
    pub target: String,
}

/// Where a vCPU sits in the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct CpuInstanceProperties {
    #[serde(rename = "socket-id", skip_serializing_if = "Option::is_none")]
    pub socket_id: Option<i64>,
    #[serde(rename = "core-id", skip_serializing_if = "Option::is_none")]
    pub core_id: Option<i64>,
    #[serde(rename = "thread-id", skip_serializing_if = "Option::is_none")]
    pub thread_id: Option<i64>,
}

/// The monitor's handle on the control loop.
#[derive(Clone)]
pub struct ControlHandle {
    tx: mpsc::UnboundedSender<ControlRequest>,
    run_state: watch::Receiver<RunState>,
}

impl ControlHandle {
    /// Creates the handle; the control loop keeps the receiver and the run-state sender.
    pub fn new(tx: mpsc::UnboundedSender<ControlRequest>, run_state: watch::Receiver<RunState>) -> Self {
        ControlHandle { tx, run_state }
    }

    /// Sends a request built around a fresh reply channel and waits for the answer.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> ControlRequest) -> Result<T, ControlError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(make(reply)).map_err(|_| ControlError::Gone)?;
        rx.await.map_err(|_| ControlError::Gone)?
    }

    /// The current run state, as last published by the control loop.
    pub fn run_state(&self) -> RunState {
        *self.run_state.borrow()
    }

    /// A receiver that sees run-state changes (HMP's `-nographic` mux uses it, tests too).
    pub fn watch_run_state(&self) -> watch::Receiver<RunState> {
        self.run_state.clone()
    }
}
