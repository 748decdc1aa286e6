//! The machine boots the test guests through each boot protocol and they find what a real
//! kernel would: command line, E820 map, initrd, ACPI tables with valid checksums, CPUs.

mod common;

use common::{boot, config, guest, guest_hash};
use vmm::machine::kvm::loader::BootEntry;
use vmm::machine::{GuestEvent, Machine};

#[test]
fn pvh_guest_reports_boot_info_and_powers_off_through_s5() {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), "action=poweroff marker=pvh-1"));
    assert_eq!(vm.next_event(), GuestEvent::Shutdown);
    let t = vm.out.text();
    assert!(matches!(vm.machine.boot_entry(), BootEntry::Pvh { .. }));
    assert!(t.contains("testguest: boot protocol pvh"), "{t}");
    assert!(t.contains("cmdline: action=poweroff marker=pvh-1"), "{t}");
    assert!(t.contains("e820: 0000000000000000-000000000009fbff type 1"), "{t}");
    assert!(t.contains("e820: 0000000000100000-0000000007ffffff type 1"), "{t}");
    assert!(t.contains("acpi: RSDP at 000e0000 revision 2 checksum ok"), "{t}");
    for sig in ["XSDT", "FACP", "APIC", "DSDT"] {
        assert!(t.contains(&format!("acpi: {sig} at ")), "{sig} missing:\n{t}");
    }
    assert!(t.contains("fadt: sci 9 pm1a_evt 0600 pm1a_cnt 0604"), "{t}");
    assert!(t.contains("madt: 1 cpus, ioapic fec00000"), "{t}");
    assert!(t.contains("acpi: s5 5 5, all checksums ok"), "{t}");
    assert!(t.contains("poweroff: PM1a_CNT 0604 SLP_TYP 5"), "{t}");
    assert!(!t.contains("still running"), "{t}");
    vm.machine.shutdown();
}

#[test]
fn elf_vmlinux_and_bzimage_enter_through_the_64bit_boot_protocol() {
    for kernel in ["testguest.elf", "testguest.bzImage"] {
        let mut vm = boot(&config(&guest(kernel), "action=poweroff"));
        assert_eq!(vm.next_event(), GuestEvent::Shutdown, "{kernel}");
        let t = vm.out.text();
        assert!(matches!(vm.machine.boot_entry(), BootEntry::Linux64 { boot_params: 0x7000, .. }));
        assert!(t.contains("testguest: boot protocol linux64"), "{kernel}: {t}");
        assert!(t.contains("cmdline: action=poweroff"), "{kernel}: {t}");
        assert!(t.contains("e820: 3 entries"), "{kernel}: {t}");
        assert!(t.contains("acpi: s5 5 5, all checksums ok"), "{kernel}: {t}");
        vm.machine.shutdown();
    }
}

#[test]
fn initrd_reaches_the_guest_intact() {
    let dir = tempfile::tempdir().unwrap();
    let initrd = dir.path().join("initrd.img");
    let bytes: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    std::fs::write(&initrd, &bytes).unwrap();
    let expect = format!("size {} hash {:08x}", bytes.len(), guest_hash(&bytes));
    for kernel in ["testguest-pvh.elf", "testguest.bzImage"] {
        let mut c = config(&guest(kernel), "action=poweroff");
        c.initrd = Some(initrd.clone());
        let mut vm = boot(&c);
        assert_eq!(vm.next_event(), GuestEvent::Shutdown);
        let t = vm.out.text();
        assert!(t.contains(&expect), "{kernel}: expected {expect:?} in\n{t}");
        vm.machine.shutdown();
    }
}

#[test]
fn every_ap_comes_up_and_cpus_have_thread_ids() {
    let mut c = config(&guest("testguest-pvh.elf"), "action=smp quiet");
    c.smp = vmm::machine::SmpConfig { cpus: 4, sockets: 2, cores: 2, threads: 1 };
    let mut vm = boot(&c);
    assert_eq!(vm.next_event(), GuestEvent::Shutdown);
    let t = vm.out.text();
    assert!(t.contains("smp: 4 of 4 cpus up"), "{t}");
    let cpus = vm.machine.cpus();
    assert_eq!(cpus.len(), 4);
    let mut tids: Vec<i64> = cpus.iter().map(|c| c.thread_id).collect();
    assert!(tids.iter().all(|&t| t > 0));
    tids.dedup();
    assert_eq!(tids.len(), 4);
    assert_eq!((cpus[3].socket_id, cpus[3].core_id, cpus[3].thread_id_in_core), (1, 1, 0));
    vm.machine.shutdown();
}

#[test]
fn large_memory_is_split_around_the_pci_hole() {
    let mut c = config(&guest("testguest-pvh.elf"), "action=poweroff");
    c.memory_bytes = 4 << 30;
    let mut vm = boot(&c);
    assert_eq!(vm.next_event(), GuestEvent::Shutdown);
    let t = vm.out.text();
    assert!(t.contains("e820: 0000000000100000-00000000bfffffff type 1"), "{t}");
    assert!(t.contains("e820: 0000000100000000-000000013fffffff type 1"), "{t}");
    assert_eq!(vm.machine.memory_size(), 4 << 30);
    vm.machine.shutdown();
}
