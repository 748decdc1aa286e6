//! A stock Debian cloud kernel with a busybox initramfs boots to /init under `KvmMachine` and
//! powers off. Needs hardware KVM: on kvm_pvm (software nested) Linux does not reach /init in
//! useful time, so this test is ignored unless asked for:
//!
//! `VMM_LINUX_BOOT_TEST=1 cargo test -p vmm --test linux_boot -- --ignored`
//!
//! The kernel and initramfs come from `VMM_LINUX_KERNEL` / `VMM_LINUX_INITRD` if set, else they
//! are fetched and built (cached) with the project's scripts in `scripts/guest/`
//! (`get-kernel.sh`, `mkinitramfs.sh`; needs apt, busybox-static, cpio).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Output, require_kvm};
use vmm::machine::{GuestEvent, KvmMachine, Machine, MachineConfig, SmpConfig};

fn scripts() -> PathBuf {
    std::env::var_os("VMM_GUEST_SCRIPTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/guest"))
}

fn kernel_and_initrd() -> (PathBuf, PathBuf) {
    if let (Some(k), Some(i)) = (std::env::var_os("VMM_LINUX_KERNEL"), std::env::var_os("VMM_LINUX_INITRD")) {
        return (k.into(), i.into());
    }
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("linux-guest");
    let out = Command::new("sh")
        .arg(scripts().join("get-kernel.sh"))
        .arg(&cache)
        .output()
        .expect("cannot run get-kernel.sh");
    assert!(out.status.success(), "get-kernel.sh failed: {}", String::from_utf8_lossy(&out.stderr));
    let rel = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let initrd = cache.join("initramfs.cpio.gz");
    if !initrd.exists() {
        let st = Command::new("sh")
            .arg(scripts().join("mkinitramfs.sh"))
            .arg(&initrd)
            .env("KVER", &rel)
            .env("KROOT", &cache)
            .status()
            .expect("cannot run mkinitramfs.sh");
        assert!(st.success(), "mkinitramfs.sh failed");
    }
    (cache.join(format!("boot/vmlinuz-{rel}")), initrd)
}

#[test]
#[ignore = "needs hardware KVM; VMM_LINUX_BOOT_TEST=1 cargo test -p vmm --test linux_boot -- --ignored"]
fn debian_cloud_kernel_boots_to_init_and_powers_off() {
    assert_eq!(
        std::env::var("VMM_LINUX_BOOT_TEST").as_deref(),
        Ok("1"),
        "set VMM_LINUX_BOOT_TEST=1 on a host with hardware virtualisation"
    );
    require_kvm();
    let (kernel, initrd) = kernel_and_initrd();
    let config = MachineConfig {
        memory_bytes: 512 << 20,
        smp: SmpConfig { cpus: 2, sockets: 1, cores: 2, threads: 1 },
        kernel: Some(kernel),
        initrd: Some(initrd),
        append: "console=ttyS0 rdmode=poweroff".into(),
        serial: vec![],
        machine_alias: None,
    };
    let out = Output::default();
    let (tx, rx) = std::sync::mpsc::channel();
    let mut m = KvmMachine::new(&config, vec![Box::new(out.clone())], tx).unwrap();
    m.start().unwrap();
    let event = rx.recv_timeout(Duration::from_secs(180));
    let text = out.text();
    assert_eq!(event, Ok(GuestEvent::Shutdown), "console:\n{text}");
    assert!(text.contains("INIT-READY"), "console:\n{text}");
    assert!(text.contains("ACPI"), "console:\n{text}");
    m.shutdown();
}
