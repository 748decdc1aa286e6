//! Bad kernel files, a missing initrd, too much memory: clear errors, no VM.

mod common;

use common::{config, guest, try_boot};
use vmm::machine::MachineError;

fn error_text(c: &vmm::machine::MachineConfig) -> String {
    match try_boot(c) {
        Ok(_) => panic!("construction should have failed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_kernel_file() {
    let t = error_text(&config(std::path::Path::new("/nonexistent/vmlinuz"), ""));
    assert_eq!(t, "could not open kernel file '/nonexistent/vmlinuz': No such file or directory");
}

#[test]
fn kernel_that_is_neither_elf_nor_bzimage() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, vec![0x5au8; 4096]).unwrap();
    let t = error_text(&config(&junk, ""));
    assert!(t.contains("not a bzImage or an ELF kernel"), "{t}");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(error_text(&config(&empty, "")).contains("not a bzImage or an ELF kernel"));
    // A truncated ELF: the header is there, the program headers are not.
    let elf = std::fs::read(guest("testguest-pvh.elf")).unwrap();
    let cut = dir.path().join("cut.elf");
    std::fs::write(&cut, &elf[..80]).unwrap();
    assert!(error_text(&config(&cut, "")).starts_with("could not load kernel"));
}

#[test]
fn missing_initrd() {
    let mut c = config(&guest("testguest-pvh.elf"), "");
    c.initrd = Some("/nonexistent/initrd.img".into());
    assert_eq!(
        error_text(&c),
        "could not load initial ram disk '/nonexistent/initrd.img': No such file or directory"
    );
}

#[test]
fn memory_beyond_the_host() {
    let mut c = config(&guest("testguest-pvh.elf"), "");
    c.memory_bytes = 1 << 50;
    let e = try_boot(&c).err().expect("must fail");
    assert!(matches!(e, MachineError::Config(_)));
    assert!(e.to_string().starts_with("cannot set up guest memory 'pc.ram': Cannot allocate memory"), "{e}");
}

#[test]
fn initrd_too_large_for_ram() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.img");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(200 << 20).unwrap();
    let mut c = config(&guest("testguest-pvh.elf"), "");
    c.initrd = Some(big);
    assert!(error_text(&c).contains("do not fit in guest RAM"));
}

#[test]
fn no_kernel_and_bad_topology() {
    let mut c = config(&guest("testguest-pvh.elf"), "");
    c.kernel = None;
    assert!(error_text(&c).contains("use -kernel"));
    let mut c = config(&guest("testguest-pvh.elf"), "");
    c.smp = vmm::machine::SmpConfig { cpus: 3, sockets: 1, cores: 2, threads: 1 };
    assert!(error_text(&c).starts_with("Invalid CPU topology"));
}

#[test]
fn probe_reports_kvm() {
    let p = vmm::machine::probe().unwrap_or_else(|e| panic!("these tests need a usable /dev/kvm: {e}"));
    assert_eq!(p.api_version, 12);
    assert_eq!(p.pvm, std::path::Path::new("/sys/module/kvm_pvm").exists());
    assert_eq!(p.slow_note().is_some(), p.pvm);
}
