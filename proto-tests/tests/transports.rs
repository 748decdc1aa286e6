//! Every transport through the real binary: `-qmp stdio` and `-monitor stdio` from a pipe and from
//! a terminal, telnet (negotiation bytes, banner, prompt, line editing), tcp, `-chardev` + `-mon`,
//! the legacy `server,nowait` spelling, and the issue's own command line.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proto_tests::{Conn, Server, binary, which};
use serde_json::{Value, json};

/// A free loopback TCP port (bound then released; the race is acceptable in tests).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

fn connect_tcp(port: u16) -> TcpStream {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => return s,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect to {port}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Reads until `needle` has been seen (or panics after 10 s); returns everything read.
fn read_until(s: &mut impl Read, needle: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.windows(needle.len()).any(|w| w == needle) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {:?} in {:?}",
            String::from_utf8_lossy(needle),
            String::from_utf8_lossy(&got)
        );
        match s.read(&mut buf) {
            Ok(0) => panic!(
                "EOF before {:?}; got {:?}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(&got)
            ),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    got
}

/// HMP output with telnet negotiation and ANSI redraw sequences removed (HMP.md §3 says tests
/// should compare text, not echo bytes).
fn clean(bytes: &[u8]) -> String {
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            0xff if i + 2 < bytes.len() => i += 3,
            0x1b => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'[' {
                    i += 1;
                    while i < bytes.len() && !bytes[i].is_ascii_alphabetic() {
                        i += 1;
                    }
                }
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn issue_command_line_qmp_unix_and_hmp_telnet() {
    let port = free_port();
    let telnet = format!("telnet:127.0.0.1:{port},server=on,wait=off");
    let mut vmm = Server::vmm(&[
        "-machine",
        "none",
        "-S",
        "-qmp",
        "unix:{dir}/q.sock,server=on,wait=off",
        "-monitor",
        &telnet,
    ]);
    // QMP: greeting and both replies, as `printf ... | socat - UNIX-CONNECT:` would see them.
    let mut q = vmm.connect_unix("q.sock");
    q.send_raw(b"{\"execute\":\"qmp_capabilities\"}{\"execute\":\"query-status\"}");
    assert!(q.recv().get("QMP").is_some());
    assert_eq!(q.recv(), json!({"return": {}}));
    assert_eq!(q.recv(), json!({"return": {"status": "prelaunch", "singlestep": false, "running": false}}));

    // Telnet: QEMU's 12 negotiation bytes, the banner, the prompt.
    let mut t = connect_tcp(port);
    t.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let hello = read_until(&mut t, b"(qemu) ");
    assert_eq!(&hello[..12], &[0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfb, 0x00, 0xff, 0xfd, 0x00]);
    assert_eq!(&hello[12..], b"QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ");
    // Client IAC sequences are swallowed; backspace edits the line (HMP.md: info + 4 DEL + help stop).
    t.write_all(&[0xff, 0xfd, 0x01]).unwrap();
    t.write_all(b"info\x7f\x7f\x7f\x7fhelp stop\n").unwrap();
    let out = clean(&read_until(&mut t, b"emulation\r\n(qemu) "));
    assert!(out.contains("help stop\r\nstop|s  -- stop emulation\r\n(qemu) "), "{out:?}");
    t.write_all(b"info status\n").unwrap();
    let out = clean(&read_until(&mut t, b"(prelaunch)\r\n(qemu) "));
    assert!(out.contains("VM status: paused (prelaunch)"), "{out:?}");
    // \r\n is two line ends: the command's output, then a second, empty prompt.
    t.write_all(b"info name\r\n").unwrap();
    let out = clean(&read_until(&mut t, b"(qemu) \r\n(qemu) "));
    assert!(out.ends_with("info name\r\n(qemu) \r\n(qemu) "), "{out:?}");
    t.write_all(b"bogus\n").unwrap();
    let out = clean(&read_until(&mut t, b"'bogus'\r\n(qemu) "));
    assert!(out.contains("unknown command: 'bogus'"), "{out:?}");
    // A STOP caused over QMP is seen by HMP's `info status`.
    assert_eq!(q.execute("cont", None), json!({"return": {}}));
    t.write_all(b"stop\ninfo status\n").unwrap();
    let out = clean(&read_until(&mut t, b"VM status: paused\r\n(qemu) "));
    assert!(!out.contains("Error"), "{out:?}");
    assert_eq!(q.recv()["event"], "STOP");
}

#[test]
fn qmp_stdio_from_a_pipe() {
    let mut child = Command::new(binary("vmm"))
        .args(["-machine", "none", "-S", "-nodefaults", "-qmp", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmm");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(b"{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-status\",\"id\":1}\n{\"execute\":\"quit\"}\n")
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let lines: Vec<Value> =
        text.split("\r\n").filter(|l| !l.is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines[0].get("QMP").is_some(), "{text}");
    assert_eq!(lines[1], json!({"return": {}}));
    assert_eq!(
        lines[2],
        json!({"return": {"status": "prelaunch", "singlestep": false, "running": false}, "id": 1})
    );
    assert_eq!(lines[3]["event"], "SHUTDOWN");
    assert_eq!(lines[4], json!({"return": {}}));
}

#[test]
fn hmp_stdio_from_a_pipe() {
    let mut child = Command::new(binary("vmm"))
        .args(["-machine", "none", "-S", "-nodefaults", "-monitor", "stdio"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("vmm");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"info status\ninfo version\nquit\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = clean(&out.stdout);
    assert!(text.starts_with("QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) "), "{text:?}");
    assert!(text.contains("VM status: paused (prelaunch)\r\n"), "{text:?}");
    assert!(text.contains("7.2.0 (vmm "), "{text:?}");
}

#[test]
fn hmp_stdio_in_a_terminal() {
    let tmux = which("tmux").expect("tmux is not installed (scripts/setup.sh installs it)");
    let sock = format!("vmm-test-{}", std::process::id());
    let cmd = format!("{} -machine none -S -nodefaults -monitor stdio", binary("vmm").display());
    let st = Command::new(&tmux)
        .args(["-L", &sock, "new-session", "-d", "-x", "100", "-y", "20", &cmd])
        .status()
        .expect("tmux");
    assert!(st.success());
    let capture = || {
        let out = Command::new(&tmux).args(["-L", &sock, "capture-pane", "-p"]).output().expect("capture");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let wait_for = |needle: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let screen = capture();
            if screen.contains(needle) {
                return screen;
            }
            assert!(Instant::now() < deadline, "terminal never showed {needle:?}:\n{screen}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait_for("(qemu)");
    let keys = |k: &[&str]| {
        Command::new(&tmux).args(["-L", &sock, "send-keys"]).args(k).status().expect("send-keys");
    };
    keys(&["info stat", "Enter"]);
    wait_for("unknown command: 'info stat'");
    // History recall with the up arrow, then fix the line with backspace-free typing.
    keys(&["Up", "us", "Enter"]);
    let screen = wait_for("VM status: paused (prelaunch)");
    assert!(screen.contains("(qemu) info status"), "{screen}");
    keys(&["quit", "Enter"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Command::new(&tmux)
        .args(["-L", &sock, "has-session"])
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "vmm did not quit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new(&tmux).args(["-L", &sock, "kill-server"]).stderr(Stdio::null()).status();
}

#[test]
fn tcp_qmp_chardev_mon_and_legacy_spellings() {
    let port = free_port();
    let tcp = format!("tcp:127.0.0.1:{port},server,nowait");
    let mut vmm = Server::vmm(&[
        "-machine",
        "none",
        "-qmp",
        &tcp,
        "-chardev",
        "socket,id=mon1,path={dir}/c.sock,server=on,wait=off",
        "-mon",
        "chardev=mon1,mode=control",
        "-chardev",
        "socket,id=hmp1,path={dir}/h.sock,server=on,wait=off",
        "-mon",
        "chardev=hmp1,mode=readline",
    ]);
    let mut c = Conn::from_tcp(connect_tcp(port));
    c.negotiate();
    assert_eq!(c.execute("query-status", None)["return"]["status"], "running");
    let mut m = vmm.connect_unix("c.sock");
    m.negotiate();
    let chardevs = m.execute("query-chardev", None);
    let labels: Vec<&str> =
        chardevs["return"].as_array().unwrap().iter().map(|c| c["label"].as_str().unwrap()).collect();
    assert!(
        labels.contains(&"mon1") && labels.contains(&"hmp1") && labels.contains(&"compat_monitor0"),
        "{chardevs}"
    );
    let mut h = std::os::unix::net::UnixStream::connect(vmm.path("h.sock")).expect("hmp socket");
    h.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let hello = read_until(&mut h, b"(qemu) ");
    assert!(hello.starts_with(b"QEMU 7.2.0 monitor"), "no telnet bytes on a plain socket: {hello:?}");
    // The socket files are owner-only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(vmm.path("c.sock")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn tcp_with_empty_host_binds_loopback_and_says_so() {
    let port = free_port();
    let spec = format!("tcp::{port},server=on,wait=off");
    let mut vmm = Server::vmm(&["-machine", "none", "-qmp", &spec]);
    let mut c = Conn::from_tcp(connect_tcp(port));
    c.negotiate();
    c.send(&json!({"execute": "quit"}));
    assert_eq!(vmm.wait_exit(Duration::from_secs(10)), Some(0));
    let err = vmm.stderr();
    assert!(err.contains("127.0.0.1"), "stderr should say it bound loopback: {err}");
}

#[test]
fn wait_on_waits_for_the_first_client() {
    let mut vmm = Server::vmm(&[
        "-machine",
        "none",
        "-qmp",
        "unix:{dir}/a.sock,server=on,wait=on",
        "-qmp",
        "unix:{dir}/b.sock,server=on,wait=off",
    ]);
    let mut a = vmm.connect_unix("a.sock");
    a.negotiate();
    assert_eq!(a.execute("query-status", None)["return"]["status"], "running");
    let mut b = vmm.connect_unix("b.sock");
    b.negotiate();
}
