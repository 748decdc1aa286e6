//! Helpers shared by the interop tests: run qemu-img / qemu-io (the oracle) and vmm-img.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn tool(name: &str) -> String {
    let ok = Command::new(name).arg("--version").output().is_ok();
    assert!(ok, "{name} is required for this test (Debian package qemu-utils) but was not found");
    name.to_string()
}

pub fn run(cmd: &str, args: &[&str]) -> Output {
    Command::new(tool(cmd)).args(args).output().unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"))
}

fn show(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn qemu_img(args: &[&str]) -> Output {
    run("qemu-img", args)
}

pub fn qemu_img_ok(args: &[&str]) -> String {
    let o = qemu_img(args);
    assert!(o.status.success(), "qemu-img {args:?} failed: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs one qemu-io command on an image and asserts it succeeded without errors (qemu-io
/// exits 0 even when a pattern check fails, so its output is checked too).
pub fn qemu_io_ok(img: &str, cmd: &str) {
    let o = run("qemu-io", &["-c", cmd, img]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !out.contains("Pattern verification failed") && !out.contains("failed"),
        "qemu-io -c '{cmd}' {img}: {}",
        show(&o)
    );
}

pub fn qemu_io_fmt_ok(img: &str, fmt: &str, cmd: &str) {
    let o = run("qemu-io", &["-f", fmt, "-c", cmd, img]);
    let out = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !out.contains("Pattern verification failed") && !out.contains("failed"),
        "qemu-io -f {fmt} -c '{cmd}' {img}: {}",
        show(&o)
    );
}

/// Path of the vmm-img binary, (re)built once per test process so it is never stale.
pub fn vmm_img_path() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // `cargo test` builds the workspace's binaries next to the test executables
            // (target/<profile>/deps/<test>): use that one; build it only if it is missing.
            let exe = std::env::current_exe().expect("current_exe");
            let dir = exe.parent().and_then(Path::parent).expect("target dir").to_path_buf();
            let path = dir.join("vmm-img");
            if !path.exists() {
                let st = Command::new(env!("CARGO"))
                    .args(["build", "-q", "-p", "vmm", "--bin", "vmm-img"])
                    .status()
                    .expect("cargo build vmm-img");
                assert!(st.success(), "building vmm-img failed");
            }
            assert!(path.exists(), "{} not found: build the workspace first", path.display());
            path
        })
        .clone()
}

pub fn vmm_img(args: &[&str]) -> Output {
    Command::new(vmm_img_path()).args(args).output().expect("run vmm-img")
}

pub fn vmm_img_ok(args: &[&str]) -> String {
    let o = vmm_img(args);
    assert!(o.status.success(), "vmm-img {args:?} failed: {}", show(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
