//! A monitor with a small fake control loop, and byte-level client helpers, for the integration
//! tests. The fake answers every [`ControlRequest`], keeps a run state (starting in prelaunch, as
//! with `-S`), publishes it, and emits the events QEMU would.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use monitor::commands::pci::{PciDeviceClass, PciDeviceId, PciDeviceInfo, PciInfo, PciMemoryRegion};
use monitor::control::{ControlError, ControlHandle, ControlRequest, CpuInfoFast, RunState, ShutdownCause};
use monitor::events::catalog::{Powerdown, Reset, Resume, Shutdown, Stop};
use monitor::events::{EventBus, SystemClock};
use monitor::{KvmInfo, Monitor, MonitorConfig};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

/// How long a test waits for expected bytes before failing.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A monitor whose machine has `cpus` vCPUs.
pub fn monitor_with(cpus: usize, config: MonitorConfig) -> Arc<Monitor> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (state_tx, state_rx) = watch::channel(RunState::Prelaunch);
    let events = EventBus::new(Box::new(SystemClock));
    let monitor = Monitor::new(config, events.clone(), ControlHandle::new(tx, state_rx));
    tokio::spawn(control_loop(rx, state_tx, events, cpus));
    monitor
}

/// A named VM with one vCPU and KVM enabled.
pub fn monitor() -> Arc<Monitor> {
    let config = MonitorConfig {
        name: Some("probe-vm".into()),
        kvm: KvmInfo { enabled: true, present: true },
        ..MonitorConfig::default()
    };
    monitor_with(1, config)
}

async fn control_loop(
    mut rx: mpsc::UnboundedReceiver<ControlRequest>,
    state: watch::Sender<RunState>,
    events: EventBus,
    cpus: usize,
) {
    while let Some(req) = rx.recv().await {
        let current = *state.borrow();
        match req {
            ControlRequest::Stop(reply) => {
                if current == RunState::Running {
                    state.send_replace(RunState::Paused);
                    events.emit(&Stop);
                }
                let _ = reply.send(Ok(()));
            }
            ControlRequest::Cont(reply) => {
                if current != RunState::Running {
                    state.send_replace(RunState::Running);
                    events.emit(&Resume);
                }
                let _ = reply.send(Ok(()));
            }
            ControlRequest::SystemReset(reply) => {
                events.emit(&Reset { guest: false, reason: ShutdownCause::HostQmpSystemReset });
                let _ = reply.send(Ok(()));
            }
            ControlRequest::SystemPowerdown(reply) => {
                events.emit(&Powerdown);
                let _ = reply.send(Ok(()));
            }
            ControlRequest::Quit(reply) => {
                events.emit(&Shutdown { guest: false, reason: ShutdownCause::HostQmpQuit });
                state.send_replace(RunState::Shutdown);
                let _ = reply.send(Ok(()));
            }
            ControlRequest::QueryCpusFast(reply) => {
                let list = (0..cpus)
                    .map(|i| CpuInfoFast {
                        cpu_index: i as i64,
                        qom_path: format!("/machine/unattached/device[{i}]"),
                        thread_id: 9001 + i as i64,
                        props: None,
                        target: "x86_64".into(),
                    })
                    .collect();
                let _ = reply.send(Ok(list));
            }
            ControlRequest::QueryPci(reply) => {
                let _ = reply.send(Ok(fake_pci()));
            }
            ControlRequest::ReadMemory { reply, .. } => {
                let _ = reply.send(Err(ControlError::Failed("Cannot access memory".into())));
            }
            ControlRequest::QomMachine(reply) => {
                let _ = reply.send(Ok(monitor::commands::qom::QomObject::machine("none", "", "", "")));
            }
            ControlRequest::InfoRegisters { cpu, reply } => {
                let r = if cpu < cpus {
                    Ok(format!("RAX=000000000000000{cpu} RBX=0000000000000000\nRIP=000000000000fff0\n"))
                } else {
                    Err(ControlError::Failed(format!("CPU {cpu} does not exist")))
                };
                let _ = reply.send(r);
            }
            // No block layer in this fake: the dropped reply reads as the machine going away.
            ControlRequest::Block(_) => {}
        }
    }
}

/// The functions of the machine recorded in shared/ref/qemu-7.2/qemu72-t2.txt (`info pci`).
fn fake_pci() -> Vec<PciInfo> {
    let dev =
        |slot: i64, function: i64, class: i64, desc: &str, vendor: i64, device: i64, sub: (i64, i64)| {
            PciDeviceInfo {
                bus: 0,
                slot,
                function,
                class_info: PciDeviceClass { desc: Some(desc.into()), class },
                id: PciDeviceId { device, vendor, subsystem: Some(sub.1), subsystem_vendor: Some(sub.0) },
                irq: None,
                irq_pin: 0,
                qdev_id: String::new(),
                regions: Vec::new(),
            }
        };
    let mem = |bar: i64, address: i64, size: i64, pf: bool, m64: bool| PciMemoryRegion {
        bar,
        kind: "memory".into(),
        address,
        size,
        prefetch: Some(pf),
        mem_type_64: Some(m64),
    };
    let io = |bar: i64, address: i64, size: i64| PciMemoryRegion {
        bar,
        kind: "io".into(),
        address,
        size,
        prefetch: None,
        mem_type_64: None,
    };
    let qemu = (0x1af4, 0x1100);
    let mut ide = dev(1, 1, 0x0101, "IDE controller", 0x8086, 0x7010, qemu);
    ide.regions = vec![io(4, 0xc0a0, 16)];
    let mut bridge = dev(1, 3, 0x0680, "Bridge", 0x8086, 0x7113, qemu);
    (bridge.irq, bridge.irq_pin) = (Some(9), 1);
    let mut blk = dev(2, 0, 0x0100, "SCSI controller", 0x1af4, 0x1001, (0x1af4, 2));
    (blk.irq, blk.irq_pin, blk.qdev_id) = (Some(10), 1, "vd0".into());
    blk.regions = vec![
        io(0, 0xc000, 128),
        mem(1, 0xfebc0000, 4096, false, false),
        mem(4, 0xfebf8000, 16384, true, true),
    ];
    let mut nic = dev(3, 0, 0x0200, "Ethernet controller", 0x1af4, 0x1000, (0x1af4, 1));
    (nic.irq, nic.irq_pin, nic.qdev_id) = (Some(11), 1, "nic0".into());
    nic.regions = vec![
        io(0, 0xc080, 32),
        mem(1, 0xfebc1000, 4096, false, false),
        mem(4, 0xfebfc000, 16384, true, true),
        mem(6, -1, 0x40000, false, false),
    ];
    let devices = vec![
        dev(0, 0, 0x0600, "Host bridge", 0x8086, 0x1237, qemu),
        dev(1, 0, 0x0601, "ISA bridge", 0x8086, 0x7000, qemu),
        ide,
        bridge,
        blk,
        nic,
    ];
    vec![PciInfo { bus: 0, devices }]
}

/// Sets the fake's run state directly (e.g. to test `info status` texts).
pub async fn cont(monitor: &Arc<Monitor>) {
    monitor.registry.get("cont").unwrap().call(monitor.clone(), Default::default()).await.unwrap();
}

/// Reads until the bytes read so far end with `pattern`; returns everything read.
pub async fn read_until<R: AsyncRead + Unpin>(r: &mut R, pattern: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let res = tokio::time::timeout(TIMEOUT, async {
        while !got.ends_with(pattern) {
            let n = r.read(&mut buf).await.expect("read");
            assert!(
                n > 0,
                "EOF before {:?}; got {:?}",
                String::from_utf8_lossy(pattern),
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "timed out waiting for {:?}; got {:?}",
        String::from_utf8_lossy(pattern),
        String::from_utf8_lossy(&got)
    );
    got
}

/// Reads until end of stream.
pub async fn read_to_eof<R: AsyncRead + Unpin>(r: &mut R) -> Vec<u8> {
    let mut got = Vec::new();
    tokio::time::timeout(TIMEOUT, r.read_to_end(&mut got))
        .await
        .expect("timed out waiting for EOF")
        .expect("read");
    got
}

/// Removes telnet commands and ANSI escape sequences, as HMP.md says conformance tests should.
pub fn plain_text(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0xff if bytes.get(i + 1).is_some_and(|b| (0xfb..=0xfe).contains(b)) => i += 3,
            0xff => i += 2,
            0x1b if bytes.get(i + 1) == Some(&b'[') => {
                i += 2;
                while i < bytes.len() && !bytes[i].is_ascii_alphabetic() {
                    i += 1;
                }
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The output of the command whose echo ends the first `ESC[K \r\n` in `bytes`, up to the prompt
/// that follows it.
pub fn response(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.find("\x1b[K\r\n").map_or(0, |i| i + 5);
    let rest = &text[start..];
    let end = rest.find("(qemu) ").unwrap_or(rest.len());
    rest[..end].to_string()
}
