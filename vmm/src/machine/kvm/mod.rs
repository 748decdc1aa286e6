//! The KVM machine: a PC-compatible x86-64 VM with direct kernel boot (no firmware).
//!
//! Code map:
//! - `probe.rs`     is /dev/kvm usable, is it kvm_pvm
//! - `layout.rs`    guest physical addresses and ports
//! - `memory.rs`    guest RAM (lazy anonymous mappings) and the E820 map
//! - `loader.rs`    bzImage / ELF vmlinux / PVH ELF, initrd, command line, boot_params/start_info
//! - `boot_cpu.rs`  GDT, page tables and registers at the kernel entry
//! - `cpuid.rs`, `msrs.rs`  what each vCPU sees
//! - `acpi.rs`      RSDP, XSDT, FADT, FACS, DSDT, MADT
//! - `bus.rs`       port-I/O and MMIO dispatch
//! - `devices/`     UARTs, i8042, CMOS, ACPI PM1a + power button, reset control, debug port
//! - `events.rs`    guest events to the control loop
//! - `vcpu.rs`      vCPU threads, park/resume/kick, requests run on a vCPU thread
//! - `registers.rs` `info registers` text
//! - `machine.rs`   `KvmMachine`, the `Machine` implementation

pub mod acpi;
pub mod boot_cpu;
pub mod bus;
pub mod cpuid;
pub mod devices;
pub mod events;
pub mod layout;
pub mod loader;
pub mod machine;
pub mod memory;
pub mod msrs;
pub mod probe;
pub mod registers;
pub mod vcpu;

pub use devices::serial::{SerialInput, SerialOutput};
pub use machine::{KvmMachine, serial_outputs};
pub use probe::{KvmProbe, probe};
