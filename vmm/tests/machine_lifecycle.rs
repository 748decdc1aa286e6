//! Guest-initiated transitions (S5, i8042/0xcf9/ACPI resets, triple fault), the power button,
//! pause/resume, `info registers`, and bad input from the guest.

mod common;

use std::time::Duration;

use common::{boot, config, guest};
use vmm::machine::{GuestEvent, Machine};

fn reset_then_second_boot(action: &str, triple_fault: bool) {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), &format!("action={action} quiet")));
    assert_eq!(vm.next_event(), GuestEvent::Reset { triple_fault }, "{action}: {}", vm.out.text());
    vm.machine.pause().unwrap();
    vm.machine.reset().unwrap();
    vm.machine.resume().unwrap();
    assert_eq!(vm.next_event(), GuestEvent::Shutdown, "{action}: {}", vm.out.text());
    let t = vm.out.text();
    assert_eq!(t.matches("testguest: boot protocol pvh").count(), 2, "{t}");
    assert!(t.contains("reset: this is the boot after the reset"), "{t}");
    vm.machine.shutdown();
}

#[test]
fn i8042_reset() {
    reset_then_second_boot("reset", false);
}

#[test]
fn reset_control_register_0xcf9() {
    reset_then_second_boot("cf9", false);
}

#[test]
fn acpi_reset_register() {
    reset_then_second_boot("acpireset", false);
}

#[test]
fn triple_fault_is_a_reset() {
    reset_then_second_boot("triplefault", true);
}

#[test]
fn power_button_reaches_the_guest_as_an_sci() {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), "action=powerbutton quiet"));
    vm.out.wait_for("powerbutton: waiting (SCI gsi 9)");
    assert!(vm.events.try_recv().is_err());
    vm.machine.powerdown().unwrap();
    assert_eq!(vm.next_event(), GuestEvent::Shutdown);
    assert!(vm.out.text().contains("powerbutton: pressed"));
    vm.machine.shutdown();
}

#[test]
fn demo_guest_prints_a_banner_and_waits_for_the_power_button() {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), "action=demo quiet"));
    let t = vm.out.wait_for("powerbutton: waiting");
    assert!(t.contains("*** vmm demo guest ***"), "{t}");
    vm.machine.powerdown().unwrap();
    assert_eq!(vm.next_event(), GuestEvent::Shutdown);
    vm.machine.shutdown();
}

#[test]
fn pause_stops_every_vcpu_and_resume_continues() {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), "action=tick quiet"));
    vm.out.wait_for("tick 2\n");
    vm.machine.pause().unwrap();
    let len = vm.out.len();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(vm.out.len(), len, "output grew while paused");
    let regs = vm.machine.registers(0).unwrap();
    assert!(regs.starts_with("RAX="), "{regs}");
    assert!(regs.contains("CS =0008 0000000000000000 ffffffff 00a09b00 DPL=0 CS64 [-RA]"), "{regs}");
    assert!(regs.contains("EFER=0000000000000500"), "{regs}");
    vm.machine.resume().unwrap();
    let ticks = vm.out.text().matches("tick ").count();
    vm.out.wait_for_n("tick ", ticks + 2);
    // `info registers` also works on a running vCPU (it is briefly interrupted).
    assert!(vm.machine.registers(0).unwrap().contains("RIP="));
    assert!(vm.machine.registers(1).is_err());
    vm.machine.shutdown();
}

#[test]
fn system_reset_from_the_host_restarts_from_the_boot_entry() {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), "action=tick quiet"));
    vm.out.wait_for("tick 1\n");
    vm.machine.pause().unwrap();
    vm.machine.reset().unwrap();
    let regs = vm.machine.registers(0).unwrap();
    assert!(regs.starts_with("EAX=00000000 EBX=00006000"), "PVH entry state expected:\n{regs}");
    assert!(regs.contains("EIP=00100000"), "{regs}");
    vm.machine.resume().unwrap();
    vm.out.wait_for_n("testguest: boot protocol pvh", 2);
    vm.machine.shutdown();
}

#[test]
fn bad_guest_io_is_ignored() {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), "action=badio quiet"));
    assert_eq!(vm.next_event(), GuestEvent::Shutdown, "{}", vm.out.text());
    let t = vm.out.text();
    assert!(t.contains("badio: survived"), "{t}");
    vm.machine.shutdown();
}

#[test]
fn bench_port_writes_complete() {
    let mut vm = boot(&config(&guest("testguest-pvh.elf"), "action=bench count=2000 quiet"));
    assert_eq!(vm.next_event(), GuestEvent::Shutdown);
    assert!(vm.out.text().contains("bench: 2000 port writes done"));
    vm.machine.shutdown();
}

#[test]
fn shutdown_of_a_running_machine_joins_its_threads() {
    let mut c = config(&guest("testguest-pvh.elf"), "action=tick quiet");
    c.smp = vmm::machine::SmpConfig { cpus: 2, sockets: 1, cores: 2, threads: 1 };
    let mut vm = boot(&c);
    vm.out.wait_for("tick 1\n");
    let start = std::time::Instant::now();
    vm.machine.shutdown();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(vm.machine.resume().is_err());
}
