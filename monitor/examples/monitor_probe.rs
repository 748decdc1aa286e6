//! Serves monitors with a fake machine (the integration tests' control loop), for comparing our
//! bytes with QEMU's by hand or with `monitor/tools/compare_qemu.py`.
//!
//! ```text
//! cargo run -p monitor --example monitor_probe -- -monitor telnet:127.0.0.1:4444,server=on,wait=off
//! cargo run -p monitor --example monitor_probe -- -nographic      # console shared with a serial port
//! ```
//! It reports version 7.2.22 with Debian's package string, like the QEMU the recordings come from.

#[path = "../tests/common/mod.rs"]
mod common;

use monitor::transport::{self, MonitorSpecs};
use monitor::{MonitorConfig, VersionInfo, VersionTriple};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = MonitorConfig {
        version: VersionInfo {
            qemu: VersionTriple { major: 7, minor: 2, micro: 22 },
            package: "Debian 1:7.2+dfsg-7+deb12u18+b3".into(),
        },
        ..Default::default()
    };
    let monitor = common::monitor_with(1, config);
    let mut specs = MonitorSpecs::new("monitor_probe");
    let mut args = std::env::args().skip(1);
    while let Some(option) = args.next() {
        let result = if option == "-nographic" {
            specs.add_muxed_monitor("-nographic", "serial0", "mon:stdio")
        } else {
            let Some(value) = args.next() else {
                eprintln!("monitor_probe: {option} needs a value");
                std::process::exit(1);
            };
            match specs.add_option(option.trim_start_matches('-'), &value) {
                Ok(true) => Ok(()),
                Ok(false) => {
                    eprintln!("monitor_probe: unknown option {option}");
                    std::process::exit(1);
                }
                Err(e) => Err(e),
            }
        };
        if let Err(e) = result {
            eprintln!("{}", e.report("monitor_probe"));
            std::process::exit(1);
        }
    }
    let mut running = match transport::start(monitor, specs).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}", e.report("monitor_probe"));
            std::process::exit(1);
        }
    };
    running.wait_for_clients().await;
    // The serial side of a shared console stays connected (and silent), as a guest that prints
    // nothing.
    let _serial = running.take_mux("serial0");
    std::future::pending::<()>().await;
}
