//! Is /dev/kvm usable, and is it `kvm_pvm` (software nested virtualisation, where guest code
//! runs about a thousand times slower than on hardware KVM)?

use kvm_ioctls::{Cap, Kvm};

use crate::machine::MachineError;

/// What `probe` found about the host's KVM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmProbe {
    pub api_version: i32,
    /// The host's KVM is the `kvm_pvm` module.
    pub pvm: bool,
    pub max_vcpus: usize,
}

impl KvmProbe {
    /// The one line `vmm` prints on a kvm_pvm host.
    pub fn slow_note(&self) -> Option<&'static str> {
        self.pvm.then_some(
            "note: /dev/kvm is kvm_pvm (nested, software-emulated): guests will run very slowly here",
        )
    }
}

/// Open /dev/kvm and check the capabilities the machine needs.
pub fn probe() -> Result<KvmProbe, MachineError> {
    let kvm = open_kvm()?;
    check_capabilities(&kvm)?;
    Ok(KvmProbe {
        api_version: kvm.get_api_version(),
        pvm: std::path::Path::new("/sys/module/kvm_pvm").exists(),
        max_vcpus: kvm.get_max_vcpus(),
    })
}

pub(crate) fn open_kvm() -> Result<Kvm, MachineError> {
    Kvm::new().map_err(|e| MachineError::KvmUnavailable(errno_text(e.errno())))
}

pub(crate) fn check_capabilities(kvm: &Kvm) -> Result<(), MachineError> {
    let needed = [
        (Cap::Irqchip, "in-kernel irqchip"),
        (Cap::Pit2, "in-kernel PIT"),
        (Cap::UserMemory, "user memory regions"),
        (Cap::SetTssAddr, "TSS address"),
        (Cap::ImmediateExit, "immediate exit"),
        (Cap::Irqfd, "irqfd"),
        (Cap::ExtCpuid, "CPUID2"),
    ];
    for (cap, what) in needed {
        if !kvm.check_extension(cap) {
            return Err(MachineError::KvmUnavailable(format!("KVM lacks a required capability: {what}")));
        }
    }
    Ok(())
}

pub(crate) fn errno_text(errno: i32) -> String {
    std::io::Error::from_raw_os_error(errno)
        .to_string()
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string()
}
