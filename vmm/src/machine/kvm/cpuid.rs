//! The CPUID each vCPU sees: what KVM supports on this host, with the topology (APIC IDs, leaf
//! 0x1/0x4/0xB/0x1F) of `-smp`, the hypervisor bit, and no PMU (as a VMM without a vPMU must).

use kvm_bindings::CpuId;

use crate::machine::SmpConfig;

fn bits_for(n: u32) -> u32 {
    if n <= 1 { 0 } else { 32 - (n - 1).leading_zeros() }
}

/// The APIC ID of vCPU `index`: socket, core and thread fields packed as hardware does.
pub fn apic_id(smp: &SmpConfig, index: u32) -> u32 {
    let (threads, cores) = (smp.threads.max(1), smp.cores.max(1));
    let (tbits, cbits) = (bits_for(threads), bits_for(cores));
    let thread = index % threads;
    let core = (index / threads) % cores;
    let socket = index / (threads * cores);
    (socket << (cbits + tbits)) | (core << tbits) | thread
}

/// (socket, core, thread) of vCPU `index`.
pub fn topology_ids(smp: &SmpConfig, index: u32) -> (u32, u32, u32) {
    let (threads, cores) = (smp.threads.max(1), smp.cores.max(1));
    (index / (threads * cores), (index / threads) % cores, index % threads)
}

/// Patch `supported` (KVM_GET_SUPPORTED_CPUID) for vCPU `index`.
pub fn vcpu_cpuid(supported: &CpuId, smp: &SmpConfig, index: u32) -> CpuId {
    let mut cpuid = supported.clone();
    let id = apic_id(smp, index);
    let (threads, cores) = (smp.threads.max(1), smp.cores.max(1));
    let (tbits, cbits) = (bits_for(threads), bits_for(cores));
    for e in cpuid.as_mut_slice() {
        match e.function {
            1 => {
                let logical = (1u32 << (tbits + cbits)).min(255);
                e.ebx = (e.ebx & 0xffff) | (logical << 16) | (id << 24);
                e.ecx |= 1 << 31; // running under a hypervisor
                if threads * cores > 1 {
                    e.edx |= 1 << 28; // HTT: more than one logical processor per package
                } else {
                    e.edx &= !(1 << 28);
                }
            }
            4 => {
                let cores_field = ((1u32 << cbits) - 1) & 0x3f;
                e.eax = (e.eax & 0x03ff_ffff) | (cores_field << 26);
            }
            6 => e.ecx &= !(1 << 3), // no energy-performance bias MSR
            0xa => {
                e.eax = 0;
                e.ebx = 0;
                e.ecx = 0;
                e.edx = 0;
            }
            0xb | 0x1f => {
                e.edx = id;
                match e.index {
                    0 => {
                        e.eax = tbits;
                        e.ebx = threads;
                        e.ecx = (1 << 8) | e.index;
                    }
                    1 => {
                        e.eax = tbits + cbits;
                        e.ebx = threads * cores;
                        e.ecx = (2 << 8) | e.index;
                    }
                    _ => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = e.index;
                    }
                }
            }
            _ => {}
        }
    }
    cpuid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apic_ids_follow_the_topology() {
        let smp = SmpConfig { cpus: 6, sockets: 1, cores: 3, threads: 2 };
        let ids: Vec<u32> = (0..6).map(|i| apic_id(&smp, i)).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4, 5]);
        let smp = SmpConfig { cpus: 6, sockets: 2, cores: 3, threads: 1 };
        let ids: Vec<u32> = (0..6).map(|i| apic_id(&smp, i)).collect();
        assert_eq!(ids, vec![0, 1, 2, 4, 5, 6]);
        assert_eq!(topology_ids(&smp, 4), (1, 1, 0));
    }
}
