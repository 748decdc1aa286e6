//! Helpers for the machine tests: build the test guests once, check /dev/kvm, boot a
//! `KvmMachine` with its COM1 output captured, and wait for output or guest events.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use vmm::machine::{GuestEvent, KvmMachine, MachineConfig, MachineError, SmpConfig};

/// Guests are tiny but KVM here may be emulated: be generous.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A test guest from guests/, built once per test binary (the proto-tests helper).
pub fn guest(name: &str) -> PathBuf {
    proto_tests::guest(name)
}

/// Fail clearly when this host cannot run VMs.
pub fn require_kvm() {
    if let Err(e) = vmm::machine::probe() {
        panic!("these tests need a usable /dev/kvm: {e}");
    }
}

#[derive(Clone, Default)]
pub struct Output(pub Arc<Mutex<Vec<u8>>>);

impl Write for Output {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Output {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).replace('\r', "")
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Wait until `needle` has been printed `count` times.
    pub fn wait_for_n(&self, needle: &str, count: usize) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let t = self.text();
            if t.matches(needle).count() >= count {
                return t;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {needle:?}; the guest printed:\n{t}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn wait_for(&self, needle: &str) -> String {
        self.wait_for_n(needle, 1)
    }
}

pub struct Vm {
    pub machine: KvmMachine,
    pub events: Receiver<GuestEvent>,
    pub out: Output,
}

impl Vm {
    pub fn next_event(&self) -> GuestEvent {
        self.events
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("no guest event ({e}); the guest printed:\n{}", self.out.text()))
    }
}

pub fn config(kernel: &Path, append: &str) -> MachineConfig {
    MachineConfig {
        memory_bytes: 128 << 20,
        smp: SmpConfig::default(),
        kernel: Some(kernel.to_path_buf()),
        initrd: None,
        append: append.to_string(),
        serial: vec![],
        machine_alias: None,
    }
}

pub fn try_boot(config: &MachineConfig) -> Result<Vm, MachineError> {
    require_kvm();
    let out = Output::default();
    let (tx, rx) = channel();
    let machine = KvmMachine::new(config, vec![Box::new(out.clone())], tx)?;
    Ok(Vm { machine, events: rx, out })
}

/// Build and start a machine.
pub fn boot(config: &MachineConfig) -> Vm {
    use vmm::machine::Machine;
    let mut vm = try_boot(config).unwrap_or_else(|e| panic!("machine construction failed: {e}"));
    vm.machine.start().unwrap();
    vm
}

/// The polynomial hash the guest prints for the initrd.
pub fn guest_hash(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |h, &b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
}
