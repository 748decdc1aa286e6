//! The control loop: the one owner of the run state.
//!
//! It runs on its own thread and takes, in arrival order, requests from the monitor
//! ([`ControlRequest`], plain data with a reply channel each), guest-initiated transitions from the
//! machine ([`GuestEvent`]), host signals and block I/O errors from devices ([`HostRequest`]). For each it applies QEMU 7.2's run-state rules
//! (`runstate.c`, `cpus.c`, `softmmu/runstate.c`'s main loop), drives the [`Machine`], emits the
//! QMP events, publishes the new state on the watch channel the monitor reads, and replies. Events
//! are emitted before the reply, so a client sees `STOP` before the `return` of its `stop`, as with
//! QEMU.
//!
//! `-machine none` has no machine: the same rules apply with nothing to drive.

use monitor::commands::pci::{PciDeviceClass, PciDeviceId, PciDeviceInfo, PciInfo, PciMemoryRegion};
use monitor::commands::qom::QomObject;
use monitor::control::{
    ControlError, ControlRequest, CpuInfoFast, CpuInstanceProperties, RunState, ShutdownCause,
};
use monitor::events::EventBus;
use monitor::events::catalog::{
    BlockErrorAction, BlockIoError, IoOperationType, Powerdown, Reset, Resume, Shutdown, Stop,
};
use tokio::sync::{mpsc, watch};

use std::sync::Arc;

use crate::blockdev::{BlockGraph, BlockService, IoStatus};
use crate::machine::virtio::blk::policy::IoErrorReport;
use crate::machine::virtio::blk::request::{ErrorAction, IoOp};
use crate::machine::{GuestEvent, Machine, MachineError};

/// Requests from the host side of the process (not the monitor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRequest {
    /// SIGINT, SIGTERM or SIGHUP: `terminating on signal N`, SHUTDOWN `host-signal`, exit.
    Signal(i32),
    /// The console's `C-a x`: SHUTDOWN `host-ui`, exit.
    UiQuit,
    /// A guest request failed on the host: BLOCK_IO_ERROR, and for `stop` the VM stops in
    /// `io-error` (the device holds the request until `cont`).
    BlockIoError(IoErrorReport),
}

/// `-no-reboot` / `-no-shutdown`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// A reset request (guest or host) shuts down instead.
    pub no_reboot: bool,
    /// A shutdown stops the VM in state `shutdown` instead of exiting.
    pub no_shutdown: bool,
}

/// Why the loop ended; the process exits with `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i32,
}

/// The control loop's state.
pub struct ControlLoop {
    machine: Option<Box<dyn Machine>>,
    /// Drives, nodes and jobs: block requests are forwarded to its thread.
    block: BlockService,
    events: EventBus,
    state: watch::Sender<RunState>,
    policy: Policy,
    /// Whether the machine's vCPUs have been started once (leaving prelaunch the first time).
    started: bool,
    /// `/machine` for `qom-list` / `qom-get`.
    qom: QomObject,
}

impl ControlLoop {
    /// `start_paused`: `-S` (state prelaunch). Otherwise the machine is started at once.
    pub fn new(
        machine: Option<Box<dyn Machine>>,
        blockdev: Arc<BlockGraph>,
        events: EventBus,
        state: watch::Sender<RunState>,
        policy: Policy,
        start_paused: bool,
    ) -> Result<Self, MachineError> {
        let block = BlockService::start(blockdev, events.clone()).map_err(MachineError::Other)?;
        let qom = QomObject::machine("none", "", "", "");
        let mut lp = ControlLoop { machine, block, events, state, policy, started: false, qom };
        if start_paused {
            lp.set_state(RunState::Prelaunch);
        } else {
            lp.launch()?;
            lp.set_state(RunState::Running);
        }
        Ok(lp)
    }

    /// Runs until quit, a shutdown that exits, or the monitor's senders are gone. `guest`
    /// carries the machine's [`GuestEvent`]s, `host` the [`HostRequest`]s (signals, console quit).
    pub async fn run(
        mut self,
        mut requests: mpsc::UnboundedReceiver<ControlRequest>,
        mut guest: mpsc::UnboundedReceiver<GuestEvent>,
        mut host: mpsc::UnboundedReceiver<HostRequest>,
    ) -> Exit {
        let exit = loop {
            let exit = tokio::select! {
                biased;
                Some(req) = host.recv() => match req {
                    HostRequest::Signal(sig) => {
                        eprintln!("vmm: terminating on signal {sig}");
                        self.shutdown(false, ShutdownCause::HostSignal, true)
                    }
                    HostRequest::UiQuit => self.shutdown(false, ShutdownCause::HostUi, true),
                    HostRequest::BlockIoError(report) => {
                        self.block_io_error(report);
                        None
                    }
                },
                Some(ev) = guest.recv() => self.handle_guest(ev),
                req = requests.recv() => match req {
                    Some(req) => self.handle_request(req),
                    None => break Exit { code: 0 },
                },
            };
            if let Some(exit) = exit {
                break exit;
            }
        };
        // QEMU's qemu_cleanup: cancel the jobs (quit did already), then close the images.
        self.block.cancel_all_jobs();
        if let Some(m) = self.machine.as_mut() {
            m.shutdown();
        }
        if let Err(e) = self.block.graph().flush_all() {
            eprintln!("vmm: {e}");
        }
        exit
    }

    /// The machine's QOM subtree (it does not change: there is no hot-plug).
    pub fn with_qom(mut self, qom: QomObject) -> Self {
        self.qom = qom;
        self
    }

    fn state(&self) -> RunState {
        *self.state.borrow()
    }

    fn set_state(&self, s: RunState) {
        self.state.send_replace(s);
    }

    /// Starts vCPUs the first time, resumes them afterwards.
    fn launch(&mut self) -> Result<(), MachineError> {
        let Some(m) = self.machine.as_mut() else { return Ok(()) };
        if self.started {
            m.resume()
        } else {
            self.started = true;
            m.start()
        }
    }

    fn handle_request(&mut self, req: ControlRequest) -> Option<Exit> {
        match req {
            ControlRequest::Stop(reply) => {
                let _ = reply.send(self.stop(RunState::Paused));
            }
            ControlRequest::Cont(reply) => {
                let _ = reply.send(self.cont());
            }
            ControlRequest::SystemReset(reply) => {
                match self.reset_request(false, ShutdownCause::HostQmpSystemReset) {
                    Ok(exit) => {
                        let _ = reply.send(Ok(()));
                        return exit;
                    }
                    Err(e) => {
                        let _ = reply.send(Err(failed(e)));
                    }
                }
            }
            ControlRequest::SystemPowerdown(reply) => {
                self.events.emit(&Powerdown);
                let r = match self.machine.as_mut() {
                    Some(m) => m.powerdown().map_err(failed),
                    None => Ok(()),
                };
                let _ = reply.send(r);
            }
            ControlRequest::Quit(reply) => {
                let exit = self.shutdown(false, ShutdownCause::HostQmpQuit, true);
                // Jobs are cancelled with their events before the reply, as in QEMU.
                self.block.cancel_all_jobs();
                let _ = reply.send(Ok(()));
                return exit;
            }
            ControlRequest::Block(req) => self.block.submit(*req),
            ControlRequest::QueryCpusFast(reply) => {
                let _ = reply.send(Ok(self.cpus()));
            }
            ControlRequest::QueryPci(reply) => {
                let _ = reply.send(Ok(self.pci()));
            }
            ControlRequest::ReadMemory { addr, len, cpu, reply } => {
                let r = match (self.machine.as_ref(), usize::try_from(len)) {
                    (Some(m), Ok(len)) => m.read_memory(addr, len, cpu).map_err(failed),
                    _ => Err(ControlError::Failed("Cannot access memory".into())),
                };
                let _ = reply.send(r);
            }
            ControlRequest::QomMachine(reply) => {
                let _ = reply.send(Ok(self.qom.clone()));
            }
            ControlRequest::InfoRegisters { cpu, reply } => {
                let r = match self.machine.as_ref() {
                    Some(m) => m.registers(cpu).map_err(failed),
                    None => Err(ControlError::Failed("No CPU available".into())),
                };
                let _ = reply.send(r);
            }
        }
        None
    }

    fn handle_guest(&mut self, ev: GuestEvent) -> Option<Exit> {
        match ev {
            GuestEvent::Shutdown => self.shutdown(true, ShutdownCause::GuestShutdown, false),
            GuestEvent::Reset { .. } => {
                self.reset_request(true, ShutdownCause::GuestReset).unwrap_or_else(|e| {
                    tracing::error!("guest reset failed: {e}");
                    self.internal_error();
                    None
                })
            }
            GuestEvent::InternalError { cpu, detail } => {
                eprintln!("vmm: vCPU {cpu}: {detail}");
                self.internal_error();
                None
            }
        }
    }

    /// QEMU's `vm_stop`: only a running VM stops (STOP event); otherwise nothing happens.
    fn stop(&mut self, to: RunState) -> Result<(), ControlError> {
        if self.state() != RunState::Running {
            return Ok(());
        }
        if let Some(m) = self.machine.as_mut() {
            m.pause().map_err(failed)?;
        }
        self.set_state(to);
        self.events.emit(&Stop);
        Ok(())
    }

    /// QEMU's `blk_error_action` (the device already set the drive's io-status for `stop`).
    fn block_io_error(&mut self, r: IoErrorReport) {
        self.events.emit(&BlockIoError {
            device: r.device,
            node_name: r.node_name,
            operation: match r.operation {
                IoOp::Read => IoOperationType::Read,
                IoOp::Write => IoOperationType::Write,
            },
            action: match r.action {
                ErrorAction::Report => BlockErrorAction::Report,
                ErrorAction::Ignore => BlockErrorAction::Ignore,
                ErrorAction::Stop => BlockErrorAction::Stop,
            },
            nospace: Some(r.nospace),
            reason: r.reason,
        });
        if r.action == ErrorAction::Stop
            && let Err(e) = self.stop(RunState::IoError)
        {
            tracing::error!("stopping after an I/O error failed: {e}");
        }
    }

    /// QEMU's `qmp_cont`: every drive's io-status is reset, then the VM runs (the devices serve
    /// the requests they held).
    fn cont(&mut self) -> Result<(), ControlError> {
        match self.state() {
            RunState::InternalError | RunState::Shutdown => {
                Err(ControlError::Failed("Resetting the Virtual Machine is required".into()))
            }
            RunState::Suspended => Ok(()),
            RunState::Running => {
                self.reset_io_status();
                Ok(())
            }
            _ => {
                self.reset_io_status();
                self.launch().map_err(failed)?;
                self.set_state(RunState::Running);
                self.events.emit(&Resume);
                Ok(())
            }
        }
    }

    fn reset_io_status(&self) {
        for b in self.block.graph().backends() {
            b.set_io_status(IoStatus::Ok);
        }
    }

    /// A reset request: with `-no-reboot` it becomes a shutdown; otherwise RESET, the machine goes
    /// back to its boot state, and a VM that was not running ends up in `prelaunch`
    /// (QEMU's main loop does exactly this).
    fn reset_request(&mut self, guest: bool, cause: ShutdownCause) -> Result<Option<Exit>, MachineError> {
        if self.policy.no_reboot {
            return Ok(self.shutdown(guest, cause, false));
        }
        let running = self.state() == RunState::Running;
        if let Some(m) = self.machine.as_mut() {
            if running {
                m.pause()?;
            }
            m.reset()?;
        }
        self.events.emit(&Reset { guest, reason: cause });
        if running {
            if let Some(m) = self.machine.as_mut() {
                m.resume()?;
            }
        } else {
            self.set_state(RunState::Prelaunch);
        }
        Ok(None)
    }

    /// SHUTDOWN event, then exit, or with `-no-shutdown` (and not `force_exit`) stop in state
    /// `shutdown` (STOP event if it was running).
    fn shutdown(&mut self, guest: bool, cause: ShutdownCause, force_exit: bool) -> Option<Exit> {
        self.events.emit(&Shutdown { guest, reason: cause });
        if self.policy.no_shutdown && !force_exit {
            if self.state() == RunState::Running {
                if let Err(e) = self.stop(RunState::Shutdown) {
                    tracing::error!("pausing after shutdown failed: {e}");
                }
            } else {
                self.set_state(RunState::Shutdown);
            }
            return None;
        }
        self.set_state(RunState::Shutdown);
        Some(Exit { code: 0 })
    }

    /// A vCPU could not continue: stop in `internal-error` (STOP event), keep serving the monitor.
    fn internal_error(&mut self) {
        if let Err(e) = self.stop(RunState::InternalError) {
            tracing::error!("pausing after an internal error failed: {e}");
            self.set_state(RunState::InternalError);
        }
    }

    fn pci(&self) -> Vec<PciInfo> {
        pci_info(self.machine.as_ref().map(|m| m.pci_info()).unwrap_or_default())
    }

    fn cpus(&self) -> Vec<CpuInfoFast> {
        let Some(m) = self.machine.as_ref() else { return Vec::new() };
        m.cpus()
            .into_iter()
            .map(|c| CpuInfoFast {
                cpu_index: c.cpu_index.into(),
                qom_path: format!("/machine/unattached/device[{}]", c.cpu_index),
                thread_id: c.thread_id,
                props: Some(CpuInstanceProperties {
                    socket_id: Some(c.socket_id.into()),
                    core_id: Some(c.core_id.into()),
                    thread_id: Some(c.thread_id_in_core.into()),
                }),
                target: "x86_64".into(),
            })
            .collect()
    }
}

/// `query-pci` from the machine's PCI functions (none without a machine, as QEMU's `-M none`).
fn pci_info(devices: Vec<crate::machine::pci::PciDeviceInfo>) -> Vec<PciInfo> {
    if devices.is_empty() {
        return Vec::new();
    }
    let devices = devices
        .into_iter()
        .map(|d| PciDeviceInfo {
            bus: d.bus.into(),
            slot: d.slot.into(),
            function: d.function.into(),
            class_info: PciDeviceClass { desc: d.class_desc.map(str::to_string), class: d.class.into() },
            id: PciDeviceId {
                device: d.device.into(),
                vendor: d.vendor.into(),
                subsystem: Some(d.subsystem.into()),
                subsystem_vendor: Some(d.subsystem_vendor.into()),
            },
            irq: (d.irq_pin != 0).then_some(d.irq.into()),
            irq_pin: d.irq_pin.into(),
            qdev_id: d.qdev_id,
            regions: d
                .regions
                .into_iter()
                .map(|r| PciMemoryRegion {
                    bar: r.bar.into(),
                    kind: r.kind.to_string(),
                    address: r.address as i64,
                    size: r.size as i64,
                    prefetch: (r.kind == "memory").then_some(r.prefetch),
                    mem_type_64: (r.kind == "memory").then_some(r.mem_type_64),
                })
                .collect(),
        })
        .collect();
    vec![PciInfo { bus: 0, devices }]
}

fn failed(e: MachineError) -> ControlError {
    ControlError::Failed(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor::events::SystemClock;
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot;

    /// Records what the loop asked of the machine.
    #[derive(Clone, Default)]
    struct FakeMachine {
        log: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Machine for FakeMachine {
        fn start(&mut self) -> Result<(), MachineError> {
            self.log.lock().unwrap().push("start");
            Ok(())
        }
        fn pause(&mut self) -> Result<(), MachineError> {
            self.log.lock().unwrap().push("pause");
            Ok(())
        }
        fn resume(&mut self) -> Result<(), MachineError> {
            self.log.lock().unwrap().push("resume");
            Ok(())
        }
        fn reset(&mut self) -> Result<(), MachineError> {
            self.log.lock().unwrap().push("reset");
            Ok(())
        }
        fn powerdown(&mut self) -> Result<(), MachineError> {
            self.log.lock().unwrap().push("powerdown");
            Ok(())
        }
        fn cpus(&self) -> Vec<crate::machine::CpuInfo> {
            Vec::new()
        }
        fn memory_size(&self) -> u64 {
            0
        }
        fn registers(&self, _cpu: usize) -> Result<String, MachineError> {
            Ok(String::new())
        }
        fn shutdown(&mut self) {
            self.log.lock().unwrap().push("shutdown");
        }
    }

    struct Harness {
        lp: ControlLoop,
        state: watch::Receiver<RunState>,
        events: tokio::sync::broadcast::Receiver<Arc<monitor::events::EventMessage>>,
        log: Arc<Mutex<Vec<&'static str>>>,
    }

    fn harness(policy: Policy, start_paused: bool) -> Harness {
        let m = FakeMachine::default();
        let log = m.log.clone();
        let bus = EventBus::new(Box::new(SystemClock));
        let events = bus.subscribe();
        let (tx, state) = watch::channel(RunState::Prelaunch);
        let lp =
            ControlLoop::new(Some(Box::new(m)), Arc::new(BlockGraph::new()), bus, tx, policy, start_paused)
                .unwrap();
        Harness { lp, state, events, log }
    }

    impl Harness {
        fn call(
            &mut self,
            make: impl FnOnce(oneshot::Sender<Result<(), ControlError>>) -> ControlRequest,
        ) -> (Result<(), ControlError>, Option<Exit>) {
            let (tx, mut rx) = oneshot::channel();
            let exit = self.lp.handle_request(make(tx));
            (rx.try_recv().unwrap(), exit)
        }
        fn events(&mut self) -> Vec<String> {
            let mut out = Vec::new();
            while let Ok(e) = self.events.try_recv() {
                let mut s = e.name.to_string();
                if let Some(d) = e.value.get("data") {
                    s += &format!(" {}", d);
                }
                out.push(s);
            }
            out
        }
        fn state(&self) -> RunState {
            *self.state.borrow()
        }
    }

    #[test]
    fn prelaunch_cont_stop_like_qemu() {
        let mut h = harness(Policy::default(), true);
        assert_eq!(h.state(), RunState::Prelaunch);
        assert!(h.log.lock().unwrap().is_empty());
        // stop while not running: nothing
        assert_eq!(h.call(ControlRequest::Stop).0, Ok(()));
        assert!(h.events().is_empty());
        assert_eq!(h.call(ControlRequest::Cont).0, Ok(()));
        assert_eq!(h.events(), vec!["RESUME"]);
        assert_eq!(h.state(), RunState::Running);
        // second cont: no event
        assert_eq!(h.call(ControlRequest::Cont).0, Ok(()));
        assert!(h.events().is_empty());
        assert_eq!(h.call(ControlRequest::Stop).0, Ok(()));
        assert_eq!(h.events(), vec!["STOP"]);
        assert_eq!(h.state(), RunState::Paused);
        assert_eq!(h.call(ControlRequest::Cont).0, Ok(()));
        assert_eq!(*h.log.lock().unwrap(), vec!["start", "pause", "resume"]);
    }

    #[test]
    fn reset_from_paused_goes_to_prelaunch() {
        let mut h = harness(Policy::default(), false);
        assert_eq!(h.state(), RunState::Running);
        assert_eq!(h.call(ControlRequest::Stop).0, Ok(()));
        h.events();
        assert_eq!(h.call(ControlRequest::SystemReset).0, Ok(()));
        assert_eq!(h.events(), vec![r#"RESET {"guest":false,"reason":"host-qmp-system-reset"}"#]);
        assert_eq!(h.state(), RunState::Prelaunch);
        // from running it stays running
        assert_eq!(h.call(ControlRequest::Cont).0, Ok(()));
        h.events();
        assert_eq!(h.call(ControlRequest::SystemReset).0, Ok(()));
        assert_eq!(h.state(), RunState::Running);
    }

    #[test]
    fn guest_shutdown_with_no_shutdown_pauses() {
        let mut h = harness(Policy { no_reboot: false, no_shutdown: true }, false);
        assert_eq!(h.lp.handle_guest(GuestEvent::Shutdown), None);
        assert_eq!(h.events(), vec![r#"SHUTDOWN {"guest":true,"reason":"guest-shutdown"}"#, "STOP"]);
        assert_eq!(h.state(), RunState::Shutdown);
        assert_eq!(
            h.call(ControlRequest::Cont).0,
            Err(ControlError::Failed("Resetting the Virtual Machine is required".into()))
        );
        // quit exits even with -no-shutdown
        let (r, exit) = h.call(ControlRequest::Quit);
        assert_eq!(r, Ok(()));
        assert_eq!(exit, Some(Exit { code: 0 }));
        assert_eq!(h.events(), vec![r#"SHUTDOWN {"guest":false,"reason":"host-qmp-quit"}"#]);
    }

    #[test]
    fn guest_shutdown_exits_by_default() {
        let mut h = harness(Policy::default(), false);
        assert_eq!(h.lp.handle_guest(GuestEvent::Shutdown), Some(Exit { code: 0 }));
    }

    #[test]
    fn guest_reset_and_no_reboot() {
        let mut h = harness(Policy::default(), false);
        assert_eq!(h.lp.handle_guest(GuestEvent::Reset { triple_fault: true }), None);
        assert_eq!(h.events(), vec![r#"RESET {"guest":true,"reason":"guest-reset"}"#]);
        assert_eq!(h.state(), RunState::Running);
        let mut h = harness(Policy { no_reboot: true, no_shutdown: false }, false);
        assert_eq!(h.lp.handle_guest(GuestEvent::Reset { triple_fault: false }), Some(Exit { code: 0 }));
        assert_eq!(h.events(), vec![r#"SHUTDOWN {"guest":true,"reason":"guest-reset"}"#]);
    }

    #[test]
    fn internal_error_then_reset_then_cont() {
        let mut h = harness(Policy::default(), false);
        h.lp.handle_guest(GuestEvent::InternalError { cpu: 0, detail: "emulation failure".into() });
        assert_eq!(h.events(), vec!["STOP"]);
        assert_eq!(h.state(), RunState::InternalError);
        assert!(h.call(ControlRequest::Cont).0.is_err());
        assert_eq!(h.call(ControlRequest::SystemReset).0, Ok(()));
        assert_eq!(h.state(), RunState::Prelaunch);
        assert_eq!(h.call(ControlRequest::Cont).0, Ok(()));
        assert_eq!(h.state(), RunState::Running);
    }

    #[test]
    fn powerdown_emits_and_presses_button() {
        let mut h = harness(Policy::default(), false);
        assert_eq!(h.call(ControlRequest::SystemPowerdown).0, Ok(()));
        assert_eq!(h.events(), vec!["POWERDOWN"]);
        assert!(h.log.lock().unwrap().contains(&"powerdown"));
        assert_eq!(h.state(), RunState::Running);
    }
}
