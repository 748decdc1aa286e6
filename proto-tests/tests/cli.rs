//! The `vmm` command line as a user meets it: version and help, errors that name the option and
//! exit 1, `-daemonize` with `-pidfile`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proto_tests::{Conn, binary};
use serde_json::json;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(binary("vmm")).args(args).stdin(Stdio::null()).output().expect("run vmm");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn version_and_help() {
    let (code, out, _) = run(&["-version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("vmm version "), "{out}");
    let (code, out, _) = run(&["-h"]);
    assert_eq!(code, 0);
    for opt in ["-qmp", "-monitor", "-chardev", "-mon", "-machine", "-daemonize", "-pidfile", "-nographic"] {
        assert!(out.contains(opt), "help lacks {opt}:\n{out}");
    }
}

#[test]
fn bad_options_name_the_option_and_exit_1() {
    let cases: &[(&[&str], &str)] = &[
        (&["-bogus"], "vmm: -bogus: invalid option"),
        (&["--no-such-thing"], "vmm: -no-such-thing: invalid option"),
        (&["-vnc", ":0"], "vmm: -vnc: this option is not supported by vmm"),
        (&["-m"], "vmm: -m: requires an argument"),
        (&["-machine", "bogus"], "vmm: unsupported machine type: \"bogus\""),
        (&["-machine", "none", "-qmp", "bogus:x"], "vmm: -qmp bogus:x: "),
        (&["-machine", "none", "-daemonize", "-nographic"], "vmm: -nographic cannot be used with -daemonize"),
        (&["-machine", "none", "-daemonize", "-qmp", "stdio"], "vmm: cannot use stdio with -daemonize"),
        (
            &["-machine", "none", "-nic", "user"],
            "vmm: -nic user: network back ends (-nic, -net) are not supported yet",
        ),
        (
            &["-machine", "none", "-netdev", "user,id=n0"],
            "vmm: network back ends (-netdev) are not supported yet",
        ),
        (
            &["-machine", "none", "-device", "e1000"],
            "vmm: -device e1000: device 'e1000' is not supported by vmm yet",
        ),
    ];
    for (args, want) in cases {
        let (code, _, err) = run(args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.starts_with(want), "{args:?}: stderr {err:?} does not start with {want:?}");
        assert!(!err.contains("vmm: vmm:"), "{args:?}: {err}");
    }
}

#[test]
fn unusable_socket_path_is_reported_as_qemu_does() {
    let (code, _, err) =
        run(&["-machine", "none", "-qmp", "unix:/nonexistent-dir/q.sock,server=on,wait=off"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("Failed to bind socket to /nonexistent-dir/q.sock: No such file or directory"),
        "{err}"
    );
}

#[test]
fn machine_without_kernel_or_with_bad_kernel_fails_clearly() {
    let (code, _, err) = run(&["-machine", "pc", "-display", "none"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("kernel"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"this is not a kernel").unwrap();
    let (code, _, err) = run(&["-display", "none", "-kernel", junk.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("vmm: "), "{err}");
    let (code, _, err) = run(&["-display", "none", "-kernel", "/nonexistent/vmlinuz"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/nonexistent/vmlinuz"), "{err}");
}

#[test]
fn daemonize_with_pidfile() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("q.sock");
    let pidfile = dir.path().join("vmm.pid");
    let t = Instant::now();
    let status = Command::new(binary("vmm"))
        .args(["-machine", "none", "-daemonize", "-pidfile"])
        .arg(&pidfile)
        .arg("-qmp")
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .stdin(Stdio::null())
        .status()
        .expect("run vmm");
    assert!(status.success(), "the parent exits 0 once the daemon is up");
    assert!(t.elapsed() < Duration::from_secs(10));
    // The daemon is up when the parent returns: socket and pid file exist.
    let pid: i32 = std::fs::read_to_string(&pidfile).expect("pid file").trim().parse().expect("pid");
    // SAFETY: kill with signal 0 only checks that the process exists.
    assert_eq!(unsafe { libc_kill(pid, 0) }, 0, "daemon {pid} is running");
    let mut c = Conn::new(std::os::unix::net::UnixStream::connect(&sock).expect("connect"));
    c.negotiate();
    c.send(&json!({"execute": "quit"}));
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: as above.
    while unsafe { libc_kill(pid, 0) } == 0 {
        assert!(Instant::now() < deadline, "daemon did not exit after quit");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!pidfile.exists(), "pid file removed at exit");
    assert!(!sock.exists(), "socket removed at exit");
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
