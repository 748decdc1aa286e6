//! `vmm`: a KVM virtual machine monitor with a QEMU-compatible monitor, started with QEMU's
//! command-line spellings.
//!
//! Threads: the main thread runs the monitor (every QMP/HMP session, on one current-thread tokio
//! runtime); the control loop (`vmm::control`) has its own thread; the machine owns its vCPU
//! threads. See ARCHITECTURE.md.

use std::process::ExitCode;

use vmm::cli::{self, Parsed};
use vmm::launch;

fn main() -> ExitCode {
    let parsed = cli::parse(std::env::args().skip(1));
    let config = match parsed {
        Ok(Parsed::Run(c)) => c,
        Ok(Parsed::Print(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("vmm: {e}");
            return ExitCode::FAILURE;
        }
    };
    match launch::run(*config) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("vmm: {e}");
            ExitCode::FAILURE
        }
    }
}
