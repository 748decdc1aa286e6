//! The monitors of the command line (`-qmp`, `-monitor`, `-chardev`, `-mon`, and the console
//! `-nographic` shares with COM1), started through `monitor::transport`.

use std::sync::Arc;

use monitor::Monitor;
use monitor::transport::{self, MonitorSpecs, Running};

use crate::cli::{Config, MonitorArg};

/// The chardev label of a console shared between COM1 and the HMP monitor (`-nographic`,
/// `-serial mon:stdio`).
pub const SERIAL0: &str = "serial0";

/// Parses the monitor options and opens every monitor (waiting for a first client where
/// `wait=on`). Errors are rendered exactly as QEMU prints them.
///
/// `-nographic` defaults as QEMU's `vl.c`: with neither a serial port nor a monitor on the command
/// line, COM1 and the HMP monitor share stdio; with only a monitor given, COM1 goes to stdio
/// alone; with only `-serial` given, the HMP monitor takes stdio. `-nodefaults` adds nothing.
pub async fn start(monitor: &Arc<Monitor>, config: &Config) -> Result<Running, String> {
    let mut specs = MonitorSpecs::new("vmm");
    for arg in &config.monitors {
        let (name, value) = match arg {
            MonitorArg::Qmp(v) => ("qmp", v),
            MonitorArg::Monitor(v) => ("monitor", v),
            MonitorArg::Chardev(v) => ("chardev", v),
            MonitorArg::Mon(v) => ("mon", v),
        };
        specs.add_option(name, value).map_err(|e| report(&e))?;
    }
    let nographic_defaults = config.nographic && !config.nodefaults;
    let monitor_given = specs.monitor_option_given();
    if let Some(first) = config.serial.first().filter(|s| s.starts_with("mon:")) {
        specs.add_muxed_monitor("-serial", SERIAL0, first).map_err(|e| report(&e))?;
    } else if nographic_defaults && config.serial.is_empty() && !monitor_given {
        specs.add_muxed_monitor("-nographic", SERIAL0, "mon:stdio").map_err(|e| report(&e))?;
    } else if nographic_defaults && !monitor_given {
        specs.add_monitor("stdio").map_err(|e| report(&e))?;
    }
    for (i, spec) in config.serial.iter().filter(|s| s.as_str() != "none").enumerate() {
        if ["unix:", "tcp:", "telnet:", "chardev:"].iter().any(|p| spec.starts_with(p)) {
            specs
                .add_device_frontend(&format!("-serial {spec}"), &crate::serial::socket_label(i), spec)
                .map_err(|e| report(&e))?;
        }
    }
    let mut running = transport::start(monitor.clone(), specs).await.map_err(|e| report(&e))?;
    running.wait_for_clients().await;
    Ok(running)
}

/// QEMU's rendering of a transport error, without the first `vmm: ` (main prints it).
fn report(e: &transport::TransportError) -> String {
    let text = e.report("vmm");
    text.strip_prefix("vmm: ").map(str::to_string).unwrap_or(text)
}
