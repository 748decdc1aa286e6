//! The monitor: QMP engine, HMP layer and transports. No KVM code lives here.
//!
//! Data flow of one QMP command (see ARCHITECTURE.md for the code map):
//!
//! ```text
//! transport (unix/tcp/telnet/stdio) ─bytes─▶ qmp::session ─▶ json_stream splitter
//!   ─▶ qmp::message (envelope, keeps `id`) ─▶ negotiation gate ─▶ registry lookup
//!   ─▶ qapi::check (typed arguments, QEMU's texts) ─▶ commands::* handler
//!   ─▶ control::ControlRequest (plain data) ─▶ the VMM's control loop ─▶ reply
//!   ─▶ QmpError mapping ─▶ the session's single writer (events drained first)
//! ```
//!
//! Threading: all sessions run as tasks on one tokio runtime (the vmm uses a current-thread
//! runtime on a dedicated monitor thread, so a command that needs no machine state is answered
//! without any cross-thread wake-up). The machine's control loop runs on its own thread and is
//! reached only through [`control::ControlHandle`]. Events are broadcast through
//! [`events::EventBus`] from any thread.

extern crate self as monitor;

pub mod block;
pub mod commands;
pub mod control;
pub mod error;
pub mod events;
pub mod hmp;
pub mod qapi;
pub mod qmp;
pub mod registry;
pub mod transport;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::control::ControlHandle;
use crate::events::EventBus;
use crate::qapi::Qapi;
use crate::registry::Registry;

/// The version we report: the QEMU release whose QMP/HMP behaviour we follow, and our own package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct VersionInfo {
    pub qemu: VersionTriple,
    pub package: String,
}

/// `{"major", "minor", "micro"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct VersionTriple {
    pub major: i64,
    pub minor: i64,
    pub micro: i64,
}

impl Default for VersionInfo {
    fn default() -> Self {
        VersionInfo {
            qemu: VersionTriple { major: 7, minor: 2, micro: 0 },
            package: format!(" (vmm {})", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// `query-kvm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Qapi)]
pub struct KvmInfo {
    pub enabled: bool,
    pub present: bool,
}

/// What the monitor knows about the machine statically, from the command line.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub version: VersionInfo,
    /// `-name`.
    pub name: Option<String>,
    /// `-uuid` (all zeros by default, as QEMU).
    pub uuid: String,
    pub kvm: KvmInfo,
    /// The machine type in use (`none` for `-machine none`).
    pub machine_type: String,
    /// Guest RAM in bytes (0 for `-machine none`).
    pub memory_bytes: u64,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            version: VersionInfo::default(),
            name: None,
            uuid: "00000000-0000-0000-0000-000000000000".into(),
            kvm: KvmInfo::default(),
            machine_type: "none".into(),
            memory_bytes: 0,
        }
    }
}

/// State shared by every monitor session of the process.
pub struct Monitor {
    pub config: MonitorConfig,
    pub registry: Registry,
    pub events: EventBus,
    pub control: ControlHandle,
    /// The character devices (monitor transports) for `query-chardev`; the transport fills it.
    pub chardevs: transport::ChardevRegistry,
    /// Set once when the process is about to exit: sessions flush and close.
    closing: watch::Sender<bool>,
    /// Sessions alive, so the exit path can wait for replies (to `quit`) to be written.
    sessions: watch::Sender<usize>,
    /// The `/fmt` defaults of `x`/`xp` (format letter, unit size): QEMU keeps them process-wide,
    /// across HMP sessions and `human-monitor-command` calls.
    pub hmp_dump_defaults: std::sync::Mutex<(u8, i64)>,
}

/// Counts a session as alive until dropped.
pub struct SessionGuard {
    sessions: watch::Sender<usize>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.sessions.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Monitor {
    /// Builds the monitor with every command registered.
    pub fn new(config: MonitorConfig, events: EventBus, control: ControlHandle) -> Arc<Self> {
        let mut registry = Registry::default();
        commands::register_all(&mut registry);
        Arc::new(Monitor {
            config,
            registry,
            events,
            control,
            chardevs: transport::ChardevRegistry::default(),
            closing: watch::Sender::new(false),
            sessions: watch::Sender::new(0),
            hmp_dump_defaults: std::sync::Mutex::new((b'x', 4)),
        })
    }

    /// Registers a live session (QMP or HMP); it counts until the guard is dropped.
    pub fn session_guard(&self) -> SessionGuard {
        self.sessions.send_modify(|n| *n += 1);
        SessionGuard { sessions: self.sessions.clone() }
    }

    /// Resolves (via `changed()`) when the monitor starts closing.
    pub fn closing_signal(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Asks every session to flush what it has written and close.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Waits until every session has closed, or `timeout` passed.
    pub async fn wait_sessions_closed(&self, timeout: std::time::Duration) {
        let mut rx = self.sessions.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|n| *n == 0)).await;
    }
}
