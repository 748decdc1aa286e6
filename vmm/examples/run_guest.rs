//! Boot a kernel on `KvmMachine` directly (no monitor): the machine's own driver for manual
//! runs and the benchmark until the `vmm` command line is in place.
//!
//! `run_guest [-kernel] KERNEL [-append STR] [-m MIB] [-smp N] [-initrd FILE] [-serial file:PATH]
//!  [-no-reboot] [-powerdown-after MS] [-timeout SEC] [-dump-acpi DIR]`
//! `-dump-acpi DIR` writes every ACPI table to DIR/<SIG>.dat for `iasl -d`.
//! The serial port goes to stdout unless `-serial file:PATH`. Exits 0 after the guest powers off,
//! 2 on a guest reset with -no-reboot, 3 on an internal error, 4 on timeout.

use std::path::PathBuf;
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use vmm::machine::kvm::serial_outputs;
use vmm::machine::{GuestEvent, KvmMachine, Machine, MachineConfig, SerialBackend, SmpConfig, probe};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut config = MachineConfig {
        memory_bytes: 128 << 20,
        smp: SmpConfig::default(),
        kernel: None,
        initrd: None,
        append: String::new(),
        serial: vec![SerialBackend::Stdio],
        machine_alias: None,
    };
    let (mut no_reboot, mut powerdown_after, mut timeout, mut dump_acpi) = (false, None, 600u64, None);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_else(|| fail(&format!("{a} needs a value")));
        match a.as_str() {
            "-append" => config.append = val(),
            "-kernel" => config.kernel = Some(PathBuf::from(val())),
            "-display" => drop(val()),
            "-nographic" | "-nodefaults" => {}
            "-m" => config.memory_bytes = val().parse::<u64>().unwrap_or_else(|_| fail("bad -m")) << 20,
            "-smp" => {
                let n = val().parse().unwrap_or_else(|_| fail("bad -smp"));
                config.smp = SmpConfig { cpus: n, sockets: 1, cores: n, threads: 1 };
            }
            "-initrd" => config.initrd = Some(PathBuf::from(val())),
            "-serial" => {
                let v = val();
                config.serial = vec![match v.strip_prefix("file:") {
                    Some(p) => SerialBackend::File(p.into()),
                    None if v == "null" => SerialBackend::Null,
                    None => SerialBackend::Stdio,
                }];
            }
            "-no-reboot" => no_reboot = true,
            "-dump-acpi" => dump_acpi = Some(PathBuf::from(val())),
            "-powerdown-after" => powerdown_after = Some(Duration::from_millis(val().parse().unwrap_or(0))),
            "-timeout" => timeout = val().parse().unwrap_or(600),
            k if config.kernel.is_none() && !k.starts_with('-') => config.kernel = Some(PathBuf::from(k)),
            other => fail(&format!("unknown argument {other}")),
        }
    }
    match probe() {
        Ok(p) => {
            if let Some(note) = p.slow_note() {
                eprintln!("{note}");
            }
        }
        Err(e) => fail(&e.to_string()),
    }
    let outputs = serial_outputs(&config).unwrap_or_else(|e| fail(&e.to_string()));
    let (tx, rx) = channel();
    let mut m = KvmMachine::new(&config, outputs, tx).unwrap_or_else(|e| fail(&e.to_string()));
    if let Some(dir) = dump_acpi {
        let files = m.acpi_tables().write_to_dir(&dir).unwrap_or_else(|e| fail(&e.to_string()));
        eprintln!("ACPI tables written: {files:?}");
    }
    m.start().unwrap_or_else(|e| fail(&e.to_string()));
    let start = Instant::now();
    let deadline = start + Duration::from_secs(timeout);
    let mut pressed = false;
    let code = loop {
        let wait = match (powerdown_after, pressed) {
            (Some(d), false) => (start + d).saturating_duration_since(Instant::now()),
            _ => deadline.saturating_duration_since(Instant::now()),
        };
        match rx.recv_timeout(wait) {
            Ok(GuestEvent::Shutdown) => break 0,
            Ok(GuestEvent::Reset { triple_fault }) => {
                eprintln!("guest reset (triple fault: {triple_fault})");
                if no_reboot {
                    break 2;
                }
                m.reset().unwrap_or_else(|e| fail(&e.to_string()));
                m.resume().unwrap_or_else(|e| fail(&e.to_string()));
            }
            Ok(GuestEvent::InternalError { cpu, detail }) => {
                eprintln!("internal error on CPU {cpu}: {detail}");
                if let Ok(r) = m.registers(cpu) {
                    eprint!("{r}");
                }
                break 3;
            }
            Err(RecvTimeoutError::Timeout) if powerdown_after.is_some() && !pressed => {
                pressed = true;
                m.powerdown().unwrap_or_else(|e| fail(&e.to_string()));
            }
            Err(_) => {
                eprintln!("timeout");
                break 4;
            }
        }
    };
    m.shutdown();
    std::process::exit(code);
}

fn fail(msg: &str) -> ! {
    eprintln!("run_guest: {msg}");
    std::process::exit(1);
}
