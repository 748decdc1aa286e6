//! MSR values at power-on and reset: what firmware leaves behind (fast strings, MTRRs on with
//! write-back default) and the KVM paravirtual MSRs switched off so that a rebooted guest does
//! not find kvmclock or async-PF still writing into its memory.

use kvm_bindings::{Msrs, kvm_msr_entry};

use crate::machine::MachineError;

const MSR_IA32_TSC: u32 = 0x10;
const MSR_IA32_SYSENTER_CS: u32 = 0x174;
const MSR_IA32_SYSENTER_ESP: u32 = 0x175;
const MSR_IA32_SYSENTER_EIP: u32 = 0x176;
const MSR_IA32_MISC_ENABLE: u32 = 0x1a0;
const MSR_MTRR_DEF_TYPE: u32 = 0x2ff;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_CSTAR: u32 = 0xc000_0083;
const MSR_SYSCALL_MASK: u32 = 0xc000_0084;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;
const MSR_KVM_SYSTEM_TIME: u32 = 0x12;
const MSR_KVM_SYSTEM_TIME_NEW: u32 = 0x4b56_4d01;
const MSR_KVM_ASYNC_PF_EN: u32 = 0x4b56_4d02;
const MSR_KVM_STEAL_TIME: u32 = 0x4b56_4d03;
const MSR_KVM_PV_EOI_EN: u32 = 0x4b56_4d04;
const MSR_KVM_POLL_CONTROL: u32 = 0x4b56_4d05;

const MISC_ENABLE_FAST_STRING: u64 = 1;
const MTRR_ENABLE: u64 = 1 << 11;
const MTRR_TYPE_WB: u64 = 6;

/// The boot MSRs KVM knows about on this host (`supported` is KVM_GET_MSR_INDEX_LIST).
pub fn boot_msrs(supported: &[u32]) -> Result<Msrs, MachineError> {
    let wanted: [(u32, u64); 17] = [
        (MSR_IA32_SYSENTER_CS, 0),
        (MSR_IA32_SYSENTER_ESP, 0),
        (MSR_IA32_SYSENTER_EIP, 0),
        (MSR_STAR, 0),
        (MSR_LSTAR, 0),
        (MSR_CSTAR, 0),
        (MSR_SYSCALL_MASK, 0),
        (MSR_KERNEL_GS_BASE, 0),
        (MSR_IA32_TSC, 0),
        (MSR_IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
        (MSR_MTRR_DEF_TYPE, MTRR_ENABLE | MTRR_TYPE_WB),
        (MSR_KVM_SYSTEM_TIME, 0),
        (MSR_KVM_SYSTEM_TIME_NEW, 0),
        (MSR_KVM_ASYNC_PF_EN, 0),
        (MSR_KVM_STEAL_TIME, 0),
        (MSR_KVM_PV_EOI_EN, 0),
        (MSR_KVM_POLL_CONTROL, 1),
    ];
    let entries: Vec<kvm_msr_entry> = wanted
        .iter()
        .filter(|(index, _)| supported.contains(index))
        .map(|&(index, data)| kvm_msr_entry { index, data, ..Default::default() })
        .collect();
    Msrs::from_entries(&entries)
        .map_err(|e| MachineError::Vcpu(format!("could not build the MSR list: {e:?}")))
}
