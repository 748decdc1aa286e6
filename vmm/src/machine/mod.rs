//! The machine as the control loop sees it.
//!
//! The control loop (`crate::control`) owns the run state (prelaunch, running, paused, shutdown, ...)
//! and the QMP events; it drives a [`Machine`] through this trait and learns about guest-initiated
//! transitions (ACPI S5, i8042 reset, triple fault, an unrecoverable vCPU error) from the
//! [`GuestEvent`]s the machine sends on the channel given at construction. `-machine none` has no
//! `Machine` at all: the control loop then runs the same state machine without vCPUs.
//!
//! Threading: `Machine` methods are called only from the control-loop thread. vCPU threads belong to
//! the implementation; `pause` returns only once every vCPU is out of `KVM_RUN` and parked.

use std::path::PathBuf;

pub mod kvm;
pub mod pci;
pub mod virtio;

pub use kvm::{KvmMachine, KvmProbe, probe};

/// What the command line asked for (`-m`, `-smp`, `-kernel`, ...), already validated syntactically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachineConfig {
    /// Guest RAM in bytes (`-m`, QEMU's default is 128 MiB).
    pub memory_bytes: u64,
    /// vCPU topology (`-smp`).
    pub smp: SmpConfig,
    /// `-kernel`: bzImage, ELF vmlinux or PVH ELF.
    pub kernel: Option<PathBuf>,
    /// `-initrd`.
    pub initrd: Option<PathBuf>,
    /// `-append`.
    pub append: String,
    /// `-serial` back ends, COM1 first (empty: no serial port wired, as with `-nodefaults`).
    pub serial: Vec<SerialBackend>,
    /// The machine type the user named (`pc`, `q35`, `microvm`), only used for messages.
    pub machine_alias: Option<String>,
}

/// vCPU topology; `cpus == sockets * cores * threads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmpConfig {
    pub cpus: u32,
    pub sockets: u32,
    pub cores: u32,
    pub threads: u32,
}

impl Default for SmpConfig {
    fn default() -> Self {
        SmpConfig { cpus: 1, sockets: 1, cores: 1, threads: 1 }
    }
}

/// Where a serial port's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialBackend {
    /// The process's stdin/stdout (with `-nographic`: multiplexed with the HMP monitor).
    Stdio,
    /// Output appended to a file; no input.
    File(PathBuf),
    /// Discard output; no input.
    Null,
    /// A chardev spec handled by the monitor's transport layer (`unix:..`, `tcp:..`, `chardev:ID`).
    Chardev(String),
}

/// A guest-initiated transition, reported by the machine to the control loop. When one is
/// reported every vCPU has been asked to park (the machine stops itself, as QEMU does on such
/// requests); the control loop then calls `reset` + `resume`, keeps it paused, or `shutdown`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestEvent {
    /// The guest entered ACPI S5 (PM1a control write with SLP_EN and the `\_S5` type).
    Shutdown,
    /// The guest asked for a reset (i8042 pulse, port 0xcf9, ACPI reset register) or triple-faulted.
    Reset { triple_fault: bool },
    /// A vCPU hit something the VMM cannot continue from (KVM_EXIT_INTERNAL_ERROR, FAIL_ENTRY...).
    InternalError { cpu: usize, detail: String },
}

/// One vCPU as `query-cpus-fast` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    pub cpu_index: u32,
    /// The host thread id (`gettid`) of the vCPU thread.
    pub thread_id: i64,
    pub socket_id: u32,
    pub core_id: u32,
    pub thread_id_in_core: u32,
}

/// Errors of the machine layer, shown to the user (command line) or the monitor (QMP desc).
#[derive(Debug, thiserror::Error)]
pub enum MachineError {
    #[error("{0}")]
    Config(String),
    #[error("Could not access KVM kernel module: {0}")]
    KvmUnavailable(String),
    #[error("{0}")]
    Boot(String),
    #[error("{0}")]
    Vcpu(String),
    #[error("{0}")]
    Other(String),
}

/// The hypervisor-backed machine, driven by the control loop.
pub trait Machine: Send {
    /// Start vCPUs for the first time (leaving prelaunch). Called once.
    fn start(&mut self) -> Result<(), MachineError>;
    /// Stop every vCPU; returns when none is executing guest code.
    fn pause(&mut self) -> Result<(), MachineError>;
    /// Let paused vCPUs run again.
    fn resume(&mut self) -> Result<(), MachineError>;
    /// Put the machine back to its boot state (reload kernel, registers, devices); the caller decides
    /// whether vCPUs run afterwards (it calls `resume` if the VM was running).
    fn reset(&mut self) -> Result<(), MachineError>;
    /// Press the ACPI power button (the guest decides what to do).
    fn powerdown(&mut self) -> Result<(), MachineError>;
    /// The vCPUs, in index order.
    fn cpus(&self) -> Vec<CpuInfo>;
    /// Guest RAM size in bytes.
    fn memory_size(&self) -> u64;
    /// HMP `info registers` text for one vCPU, formatted as QEMU's `cpu_dump_state` prints it
    /// (from the `RAX=`/`EAX=` line to the last `XMM` line; the caller prints the `CPU#n` line).
    fn registers(&self, cpu: usize) -> Result<String, MachineError>;
    /// Guest memory at `addr`: guest-physical, or with `cpu` a virtual address translated by
    /// that vCPU's page tables (QEMU's `xp` / `x`, `pmemsave` / `memsave`). Errors if any byte
    /// is not guest RAM or not mapped.
    fn read_memory(&self, addr: u64, len: usize, cpu: Option<usize>) -> Result<Vec<u8>, MachineError> {
        let _ = (addr, len, cpu);
        Err(MachineError::Other("Cannot access memory".into()))
    }
    /// The PCI functions (`query-pci`); none for a machine without PCI.
    fn pci_info(&self) -> Vec<pci::PciDeviceInfo> {
        Vec::new()
    }
    /// Stop and join every vCPU thread; the machine is not used afterwards.
    fn shutdown(&mut self);
}
