//! Real external QMP clients against `vmm`: QEMU's own Python library (`qemu.qmp`, installed into
//! `.venv` by scripts/setup.sh) and the Rust `qapi` crate (typed, QEMU 9.1 schema).

use std::path::PathBuf;
use std::process::Command;

use proto_tests::Server;

fn venv_python() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(p.exists(), "{} missing: run scripts/setup.sh (it installs qemu.qmp into .venv)", p.display());
    p
}

fn start() -> Server {
    Server::vmm(&["-machine", "none", "-S", "-nodefaults", "-qmp", "unix:{dir}/qmp.sock,server=on,wait=off"])
}

#[test]
fn qemu_qmp_python_library() {
    let mut vmm = start();
    // Wait until the socket answers.
    drop(vmm.connect_unix("qmp.sock"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/qemu_qmp_client.py");
    let out =
        Command::new(venv_python()).arg(&script).arg(vmm.path("qmp.sock")).output().expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qemu.qmp client failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("qemu.qmp checks passed"));
    assert_eq!(vmm.wait_exit(std::time::Duration::from_secs(5)), Some(0), "vmm should exit after quit");
}

#[test]
fn qmp_shell_piped() {
    let mut vmm = start();
    drop(vmm.connect_unix("qmp.sock"));
    let shell = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/qmp-shell");
    assert!(shell.exists(), "{} missing: run scripts/setup.sh", shell.display());
    let mut child = Command::new(venv_python())
        .arg(&shell)
        .arg(vmm.path("qmp.sock"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("qmp-shell");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(b"query-status\nquery-name\n").expect("write");
    let out = child.wait_with_output().expect("qmp-shell output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("prelaunch"),
        "qmp-shell output: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
