//! Start-up and shut-down of the whole process: from a parsed [`Config`] to a running machine
//! with its monitors, and back to an exit code.
//!
//! Order (as QEMU): validate the configuration; daemonize (before any thread exists); open the
//! monitors' sockets (waiting for a client where `wait=on`); build the machine; start the control
//! loop; write the pid file; tell a daemonizing parent that we are up; serve until the control loop
//! ends; then let every session flush (so `quit` gets its reply) and clean up.

use std::sync::Arc;
use std::time::Duration;

use monitor::commands::qom::QomObject;
use monitor::control::{ControlHandle, RunState};
use monitor::events::{EventBus, SystemClock};
use monitor::{KvmInfo, Monitor, MonitorConfig};
use tokio::sync::{mpsc, watch};

use crate::blockdev::{BlockBackend, BlockGraph, DriveNamer, Interface};
use crate::cli::device::{self, DeviceSpec};
use crate::cli::{Config, DriveArg, MonitorArg};
use crate::control::{ControlLoop, HostRequest, Policy};
use crate::daemon::{Daemon, PidFile};
use crate::machine::virtio::blk::policy::{DriveErrorPolicy, ReportFn};
use crate::machine::virtio::blk::{BlkConfig, VirtioBlk};
use crate::machine::{GuestEvent, Machine, SerialBackend, kvm};
use crate::serial;

/// Machine types accepted by `-machine`; all but `none` are our one machine model.
const MACHINE_TYPES: &[&str] = &["none", "vmm", "pc", "q35", "microvm", "vmm-q35", "vmm-microvm"];

/// Errors that end start-up with exit status 1.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Machine(#[from] crate::machine::MachineError),
    #[error("{0}")]
    Io(String),
}

/// Runs the VMM; returns the process exit code.
pub fn run(config: Config) -> Result<u8, LaunchError> {
    init_logging();
    ignore_file_size_signal();
    validate(&config)?;
    let daemon = if config.daemonize { Some(Daemon::fork().map_err(LaunchError::Io)?) } else { None };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LaunchError::Io(format!("cannot start the runtime: {e}")))?;
    let code = runtime.block_on(serve(config, daemon))?;
    // Do not wait for stuck connections: every session has had its chance to flush.
    runtime.shutdown_timeout(Duration::from_millis(100));
    Ok(code)
}

async fn serve(config: Config, daemon: Option<Daemon>) -> Result<u8, LaunchError> {
    let events = EventBus::new(Box::new(SystemClock));
    events.set_runtime(tokio::runtime::Handle::current());
    let initial = if config.start_paused { RunState::Prelaunch } else { RunState::Running };
    let (state_tx, state_rx) = watch::channel(initial);
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (guest_tx, guest_rx) = mpsc::unbounded_channel();
    let (signal_tx, signal_rx) = mpsc::unbounded_channel();

    let monitor_config = MonitorConfig {
        name: config.name.clone(),
        uuid: config.uuid.clone().unwrap_or_else(|| MonitorConfig::default().uuid),
        kvm: KvmInfo {
            enabled: !config.is_machine_none(),
            present: std::path::Path::new("/dev/kvm").exists(),
        },
        machine_type: config.machine_type.clone().unwrap_or_else(|| "vmm".into()),
        memory_bytes: if config.is_machine_none() { 0 } else { config.machine_config().memory_bytes },
        ..MonitorConfig::default()
    };
    let monitor = Monitor::new(monitor_config, events.clone(), ControlHandle::new(req_tx, state_rx));
    let blockdev = Arc::new(BlockGraph::new());
    let drive_disks = open_drives(&config, &blockdev)?;
    let disks = plan_disks(&config, &blockdev, drive_disks)?;
    let mut monitors = crate::monitors::start(&monitor, &config).await.map_err(LaunchError::Config)?;
    let mut links =
        serial::SerialLinks { console: monitors.take_mux(crate::monitors::SERIAL0), sockets: Vec::new() };
    for (i, b) in serial::backends(&config).map_err(LaunchError::Config)?.iter().enumerate() {
        if let SerialBackend::Chardev(label) = b
            && let Some(side) = monitors.serial(label)
        {
            links.sockets.push((i, side));
        }
    }

    let mut qom = qom_machine(&config);
    let machine = if config.is_machine_none() {
        None
    } else {
        let (machine, devices) =
            build_machine(&config, guest_tx, links, signal_tx.clone(), disks, &blockdev)?;
        for (id, device) in devices {
            qom.add_device(id.as_deref(), device);
        }
        Some(machine)
    };
    let policy = Policy { no_reboot: config.no_reboot, no_shutdown: config.no_shutdown };
    let control =
        ControlLoop::new(machine, blockdev, events, state_tx, policy, config.start_paused)?.with_qom(qom);
    let (exit_tx, exit_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("vmm: cannot start the control loop: {e}");
                    let _ = exit_tx.send(1);
                    return;
                }
            };
            let exit = rt.block_on(control.run(req_rx, guest_rx, signal_rx));
            let _ = exit_tx.send(exit.code);
        })
        .map_err(|e| LaunchError::Io(format!("cannot start the control thread: {e}")))?;

    let pidfile = match &config.pidfile {
        Some(p) => Some(PidFile::create(p).map_err(LaunchError::Io)?),
        None => None,
    };
    if let Some(d) = daemon {
        d.ready();
    }
    spawn_signal_forwarder(signal_tx);

    let code = exit_rx.await.unwrap_or(1);
    monitor.close();
    monitor.wait_sessions_closed(Duration::from_secs(1)).await;
    drop(monitors);
    drop(pidfile);
    Ok(u8::try_from(code).unwrap_or(1))
}

/// Probes KVM (one line of warning on kvm_pvm), builds the machine with its serial ports wired
/// (a console shared with the monitor, stdio, files), and forwards guest events from the
/// machine's channel to the control loop's.
fn build_machine(
    config: &Config,
    guest_tx: mpsc::UnboundedSender<GuestEvent>,
    links: serial::SerialLinks,
    host_tx: mpsc::UnboundedSender<HostRequest>,
    disks: Vec<BlkDevice>,
    graph: &Arc<BlockGraph>,
) -> Result<(Box<dyn Machine>, QomDevices), LaunchError> {
    let probe = kvm::probe()?;
    if let Some(note) = probe.slow_note() {
        eprintln!("vmm: {note}");
    }
    if let Some(alias) = config.machine_type.as_deref().filter(|t| matches!(*t, "pc" | "q35" | "microvm")) {
        eprintln!("vmm: machine type '{alias}' is an alias: the device model is vmm's own (see README)");
    }
    let mut mc = config.machine_config();
    mc.serial = serial::backends(config).map_err(LaunchError::Config)?;
    let outputs = serial::outputs(&mc.serial, &links).map_err(LaunchError::Config)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let machine = kvm::KvmMachine::new(&mc, outputs, tx)?;
    let mut qom_devices = Vec::new();
    for d in disks {
        let name = d.id.clone().unwrap_or_else(|| d.backend.name().to_string());
        let drive = match d.backend.name() {
            "" => graph.name_of(&d.backend.root()).unwrap_or_default(),
            n => n.to_string(),
        };
        let blk_props = |o: QomObject| {
            o.prop("drive", "str", drive.clone())
                .prop("serial", "str", d.config.serial.clone().unwrap_or_default())
                .prop("num-queues", "uint16", d.config.num_queues)
                .prop("queue-size", "uint16", d.config.queue_size)
        };
        let qom_device = blk_props(QomObject::new("virtio-blk-pci"));
        let qom_backend = blk_props(QomObject::new("virtio-blk-device"));
        let tx = host_tx.clone();
        let report: ReportFn = Box::new(move |r| {
            let _ = tx.send(HostRequest::BlockIoError(r));
        });
        let policy = Arc::new(DriveErrorPolicy::new(d.backend.clone(), graph.clone(), report));
        let blk = VirtioBlk::new(d.backend, d.config, &format!("blk {name}"))
            .map_err(|e| LaunchError::Config(format!("{}: {e}", d.option)))?
            .with_error_policy(policy);
        let slot = machine
            .pci()
            .add_virtio(Box::new(blk), d.id.as_deref().unwrap_or(""), d.slot)
            .map_err(|e| LaunchError::Config(format!("{}: {e}", d.option)))?;
        let qom_device =
            qom_device.prop("addr", "int32", i64::from(slot) * 8).child("virtio-backend", qom_backend);
        qom_devices.push((d.id, qom_device));
    }
    serial::connect_input(&machine, &mc.serial, links, move || {
        let _ = host_tx.send(HostRequest::UiQuit);
    });
    std::thread::Builder::new()
        .name("guest-events".into())
        .spawn(move || {
            while let Ok(ev) = rx.recv() {
                if guest_tx.send(ev).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| LaunchError::Io(format!("cannot start a thread: {e}")))?;
    Ok((Box::new(machine), qom_devices))
}

/// `/machine` in QOM before devices are added: QEMU's `<type>-machine` with the boot options.
fn qom_machine(config: &Config) -> QomObject {
    let machine_type = match config.machine_type.as_deref() {
        None | Some("pc") => "vmm",
        Some("q35") => "vmm-q35",
        Some("microvm") => "vmm-microvm",
        Some(other) => other,
    };
    let path =
        |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
    let mut qom = QomObject::machine(
        machine_type,
        &path(&config.kernel),
        &path(&config.initrd),
        config.append.as_deref().unwrap_or_default(),
    );
    if !config.is_machine_none() {
        let model = config.cpu.as_deref().and_then(|c| c.split(',').next()).unwrap_or("host");
        for i in 0..config.machine_config().smp.cpus {
            qom.add_unattached(QomObject::new(&format!("{model}-x86_64-cpu")).prop("cpu-index", "uint32", i));
        }
    }
    qom
}

/// The devices of a built machine as QOM objects, with their `id` (peripheral) or none (anon).
type QomDevices = Vec<(Option<String>, QomObject)>;

/// A virtio-blk device to plug in once the machine exists.
struct BlkDevice {
    /// The option that asked for it (for error messages).
    option: String,
    backend: Arc<BlockBackend>,
    id: Option<String>,
    config: BlkConfig,
    slot: Option<u8>,
}

/// An opened drive; `if=virtio` and `-hda` ones get a virtio-blk device of their own.
struct DriveDisk {
    option: String,
    backend: Arc<BlockBackend>,
    serial: Option<String>,
    discard_unmap: bool,
    interface: Interface,
}

/// The virtio-blk devices to create: every `-device virtio-blk-pci` (in order), then one per
/// `if=virtio` / `-hda` drive, as QEMU orders them. Each takes its drive (`attach`) under its
/// QOM path. With `-machine none` there is no PCI bus: `-hda` drives are only opened.
fn plan_disks(
    config: &Config,
    graph: &BlockGraph,
    drives: Vec<DriveDisk>,
) -> Result<Vec<BlkDevice>, LaunchError> {
    let no_bus = || "No 'PCI' bus found for device 'virtio-blk-pci'".to_string();
    let mut out = Vec::new();
    let mut ids: Vec<String> = Vec::new();
    let mut anon = 0usize;
    let mut qom = |id: &Option<String>| match id {
        Some(id) => format!("/machine/peripheral/{id}/virtio-backend"),
        None => {
            anon += 1;
            format!("/machine/peripheral-anon/device[{}]/virtio-backend", anon - 1)
        }
    };
    for opts in &config.devices {
        let option = format!("-device {opts}");
        let cfg_err = |e: String| LaunchError::Config(format!("{option}: {e}"));
        let DeviceSpec::VirtioBlk(spec) = device::parse(opts).map_err(cfg_err)?;
        if config.is_machine_none() {
            return Err(cfg_err(no_bus()));
        }
        if let Some(id) = &spec.id {
            if ids.contains(id) {
                return Err(cfg_err(format!("Duplicate ID '{id}' for device")));
            }
            ids.push(id.clone());
        }
        let backend = graph.backend_for_device(&spec.drive).map_err(cfg_err)?;
        let discard_unmap = drives.iter().any(|d| Arc::ptr_eq(&d.backend, &backend) && d.discard_unmap);
        backend.attach(&qom(&spec.id)).map_err(cfg_err)?;
        if spec.rerror.is_some() || spec.werror.is_some() {
            let (rerror, werror) = backend.on_error();
            backend.set_on_error(spec.rerror.unwrap_or(rerror), spec.werror.unwrap_or(werror));
        }
        out.push(BlkDevice {
            option,
            backend,
            id: spec.id,
            config: BlkConfig {
                serial: spec.serial,
                num_queues: spec.num_queues,
                queue_size: spec.queue_size,
                discard_unmap,
            },
            slot: spec.slot,
        });
    }
    for d in drives.into_iter().filter(|d| d.interface != Interface::None) {
        if config.is_machine_none() {
            if d.interface == Interface::Virtio {
                return Err(LaunchError::Config(format!("{}: {}", d.option, no_bus())));
            }
            continue;
        }
        d.backend.attach(&qom(&None)).map_err(|e| LaunchError::Config(format!("{}: {e}", d.option)))?;
        out.push(BlkDevice {
            option: d.option,
            backend: d.backend,
            id: None,
            config: BlkConfig { serial: d.serial, discard_unmap: d.discard_unmap, ..Default::default() },
            slot: None,
        });
    }
    Ok(out)
}

/// Opens the images of `-drive` and `-hda`..`-hdd` into the block graph.
fn open_drives(config: &Config, graph: &BlockGraph) -> Result<Vec<DriveDisk>, LaunchError> {
    let mut disks = Vec::new();
    let mut namer = DriveNamer::default();
    for d in &config.drives {
        let (option, spec) = match d {
            DriveArg::Hd(i, file) => (format!("-hd{} {file}", (b'a' + i) as char), namer.hd(*i, file)),
            DriveArg::Drive(opts) => (format!("-drive {opts}"), namer.drive(opts)),
            DriveArg::Blockdev(opts) => {
                let options = crate::blockdev::cmdline::parse_blockdev(opts)
                    .map_err(|e| LaunchError::Config(format!("-blockdev {opts}: {e}")))?;
                let _ops = graph.lock_ops();
                crate::blockdev::open::blockdev_add(graph, &options)
                    .map_err(|e| LaunchError::Config(format!("-blockdev {opts}: {e}")))?;
                continue;
            }
        };
        let spec = spec.map_err(|e| LaunchError::Config(format!("{option}: {e}")))?;
        let backend = graph.open_drive(&spec).map_err(|e| LaunchError::Config(format!("{option}: {e}")))?;
        backend.set_on_error(spec.rerror, spec.werror);
        disks.push(DriveDisk {
            option,
            backend,
            serial: spec.serial.clone(),
            discard_unmap: spec.discard_unmap,
            interface: spec.interface,
        });
    }
    Ok(disks)
}

/// Checks what can be checked before anything is opened.
fn validate(config: &Config) -> Result<(), LaunchError> {
    if let Some(t) = &config.machine_type {
        if t == "help" || t == "?" {
            return Err(LaunchError::Config(format!("Supported machines are: {}", MACHINE_TYPES.join(", "))));
        }
        if !MACHINE_TYPES.contains(&t.as_str()) {
            return Err(LaunchError::Config(format!(
                "unsupported machine type: \"{t}\"\nUse -machine help to list supported machines"
            )));
        }
    }
    if config.daemonize {
        if config.nographic {
            return Err(LaunchError::Config("-nographic cannot be used with -daemonize".into()));
        }
        let uses_stdio = config.monitors.iter().any(|m| match m {
            MonitorArg::Qmp(s) | MonitorArg::Monitor(s) => s == "stdio",
            MonitorArg::Chardev(s) => s.starts_with("stdio"),
            MonitorArg::Mon(_) => false,
        }) || config.serial.iter().any(|s| s == "stdio");
        if uses_stdio {
            return Err(LaunchError::Config("cannot use stdio with -daemonize".into()));
        }
    }
    if !config.netdevs.is_empty() {
        return Err(LaunchError::Config("network back ends (-netdev) are not supported yet".into()));
    }
    Ok(())
}

/// A write past `RLIMIT_FSIZE` fails with EFBIG (reported through the block layer and a job's
/// `on-error`) instead of killing the process with SIGXFSZ.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to SIG_IGN has no memory effects and is done before
    // any other thread exists.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("VMM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// SIGINT, SIGTERM and SIGHUP shut the VM down through the control loop (SHUTDOWN event,
/// `host-signal`), as QEMU does.
fn spawn_signal_forwarder(tx: mpsc::UnboundedSender<HostRequest>) {
    use tokio::signal::unix::{SignalKind, signal};
    for (kind, num) in [
        (SignalKind::interrupt(), libc::SIGINT),
        (SignalKind::terminate(), libc::SIGTERM),
        (SignalKind::hangup(), libc::SIGHUP),
    ] {
        let tx = tx.clone();
        match signal(kind) {
            Ok(mut s) => {
                tokio::spawn(async move {
                    while s.recv().await.is_some() {
                        if tx.send(HostRequest::Signal(num)).is_err() {
                            break;
                        }
                    }
                });
            }
            Err(e) => tracing::warn!("cannot handle signal {num}: {e}"),
        }
    }
}
