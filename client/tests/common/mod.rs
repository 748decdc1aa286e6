//! Shared helpers for vmmon's integration tests: starting the monitor server under test,
//! running vmmon with a time limit, tmux sessions, and fake servers.
//!
//! The server is chosen with `VMMON_TEST_SERVER=qemu|vmm` (default `qemu`). Both are started with
//! the same QEMU-style command line. `vmm` is looked up in `VMMON_TEST_VMM`, else next to the test
//! binary's target directory (`target/debug/vmm`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub const VMMON: &str = env!("CARGO_BIN_EXE_vmmon");

/// Longest any single vmmon run may take in a test before it counts as a hang.
pub const RUN_LIMIT: Duration = Duration::from_secs(40);

/// Which server the tests run against.
pub fn server_kind() -> String {
    std::env::var("VMMON_TEST_SERVER").unwrap_or_else(|_| "qemu".into())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The server binary, or a panic that says how to get it.
pub fn server_binary() -> PathBuf {
    match server_kind().as_str() {
        "qemu" => find_in_path("qemu-system-x86_64").unwrap_or_else(|| {
            panic!(
                "qemu-system-x86_64 is not installed; these tests need it \
                 (Debian: apt-get install -y qemu-system-x86), or set VMMON_TEST_SERVER=vmm"
            )
        }),
        "vmm" => {
            let p = std::env::var_os("VMMON_TEST_VMM").map(PathBuf::from).unwrap_or_else(|| {
                // target/debug/deps/<test> -> target/debug/vmm
                let exe = std::env::current_exe().expect("test binary path");
                exe.parent()
                    .and_then(Path::parent)
                    .map(|d| d.join("vmm"))
                    .unwrap_or_else(|| PathBuf::from("vmm"))
            });
            assert!(
                p.is_file(),
                "VMMON_TEST_SERVER=vmm but {} does not exist: build it (cargo build -p vmm) \
                 or set VMMON_TEST_VMM",
                p.display()
            );
            p
        }
        other => panic!("VMMON_TEST_SERVER must be 'qemu' or 'vmm', not '{other}'"),
    }
}

/// A tool the tests need (qemu-img, tmux...), or a panic that names the package.
pub fn require_tool(name: &str, package: &str) -> PathBuf {
    find_in_path(name).unwrap_or_else(|| {
        panic!("{name} is not installed; this test needs it (Debian: apt-get install -y {package})")
    })
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// A running monitor server with every kind of monitor socket.
pub struct Server {
    child: Child,
    pub dir: tempfile::TempDir,
    /// QMP on a unix socket.
    pub qmp: PathBuf,
    /// A second QMP unix socket (QEMU serves one client per socket).
    pub qmp2: PathBuf,
    /// QMP on TCP.
    pub qmp_tcp: u16,
    /// HMP on a unix socket.
    pub hmp: PathBuf,
    /// HMP over telnet.
    pub hmp_telnet: u16,
}

impl Server {
    pub fn start() -> Server {
        Self::start_with(&[])
    }

    /// Starts the server with extra arguments (e.g. `-blockdev ...`).
    pub fn start_with(extra: &[String]) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, extra)
    }

    pub fn start_in(dir: tempfile::TempDir, extra: &[String]) -> Server {
        let qmp = dir.path().join("qmp.sock");
        let qmp2 = dir.path().join("qmp2.sock");
        let hmp = dir.path().join("hmp.sock");
        let qmp_tcp = free_port();
        let hmp_telnet = free_port();
        let mut args: Vec<String> = ["-machine", "none", "-nodefaults", "-display", "none", "-S"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend([
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp.display()),
            "-qmp".into(),
            format!("unix:{},server=on,wait=off", qmp2.display()),
            "-qmp".into(),
            format!("tcp:127.0.0.1:{qmp_tcp},server=on,wait=off"),
            "-monitor".into(),
            format!("unix:{},server=on,wait=off", hmp.display()),
            "-monitor".into(),
            format!("telnet:127.0.0.1:{hmp_telnet},server=on,wait=off"),
        ]);
        args.extend(extra.iter().cloned());
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(server_binary())
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start the server");
        let mut server = Server { child, dir, qmp, qmp2, qmp_tcp, hmp, hmp_telnet };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the server exited ({status}) during startup: {}", self.log());
            }
            let sockets = [&self.qmp, &self.qmp2, &self.hmp].iter().all(|p| p.exists());
            let ports = [self.qmp_tcp, self.hmp_telnet]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok());
            if sockets && ports {
                // The port probes were clients too: let the server notice they left.
                thread::sleep(Duration::from_millis(100));
                return;
            }
            assert!(Instant::now() < deadline, "the server did not open its monitors: {}", self.log());
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn unix(&self) -> String {
        format!("unix:{}", self.qmp.display())
    }

    pub fn unix2(&self) -> String {
        format!("unix:{}", self.qmp2.display())
    }

    /// True while the server process runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one vmmon run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the exit status, showing the output when it differs, and that nothing panicked.
    pub fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit status\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "vmmon panicked: {}", self.stderr);
        self
    }
}

/// Runs vmmon with `args` and `stdin`, killing it (and failing) if it outlives [`RUN_LIMIT`].
pub fn vmmon(args: &[&str], stdin: &str) -> Run {
    vmmon_env(args, stdin, &[])
}

pub fn vmmon_env(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Run {
    let mut child = Command::new(VMMON)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start vmmon");
    let mut input = child.stdin.take().expect("stdin");
    let stdin = stdin.to_string();
    let feeder = thread::spawn(move || {
        let _ = input.write_all(stdin.as_bytes());
    });
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let out_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let err_reader = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for vmmon") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vmmon {args:?} hung for more than {RUN_LIMIT:?}");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let _ = feeder.join();
    Run::from(Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    })
}

/// A tmux server of our own (its own socket), with one session running `command`.
pub struct Tmux {
    socket: String,
}

static TMUX_COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Tmux {
    pub fn start(command: &str) -> Tmux {
        require_tool("tmux", "tmux");
        let socket =
            format!("vmmon-test-{}-{}", std::process::id(), TMUX_COUNTER.fetch_add(1, Ordering::SeqCst));
        let t = Tmux { socket };
        let ok = t
            .cmd(&["new-session", "-d", "-s", "main", "-x", "140", "-y", "40", command])
            .status()
            .expect("run tmux")
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.socket).args(args);
        c.env_remove("TMUX");
        c
    }

    /// Types literal text.
    pub fn type_text(&self, text: &str) {
        let ok =
            self.cmd(&["send-keys", "-t", "main", "-l", text]).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "tmux send-keys failed");
    }

    /// Presses keys by tmux name (`Tab`, `Enter`, `Up`, `C-u`, `C-d`).
    pub fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "main"];
        args.extend_from_slice(keys);
        let ok = self.cmd(&args).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "tmux send-keys failed");
    }

    /// The visible screen.
    pub fn screen(&self) -> String {
        let out = self.cmd(&["capture-pane", "-p", "-t", "main"]).output().expect("tmux capture-pane");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `pred` holds for the screen; panics with the screen after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the screen contains `text`.
    pub fn wait_text(&self, text: &str) -> String {
        self.wait_for(&format!("{text:?}"), Duration::from_secs(15), |s| s.contains(text))
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).status();
    }
}

/// The last non-blank line of a screen.
pub fn last_line(screen: &str) -> &str {
    screen.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("")
}

/// A fake monitor on a unix socket: `serve` handles each connection.
pub struct FakeServer {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl FakeServer {
    pub fn start<F>(serve: F) -> FakeServer
    where
        F: Fn(std::os::unix::net::UnixStream) + Send + Sync + 'static,
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("fake.sock");
        let listener = UnixListener::bind(&path).expect("bind fake server");
        thread::spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => serve(c),
                    Err(_) => return,
                }
            }
        });
        FakeServer { dir, path }
    }

    pub fn address(&self) -> String {
        format!("unix:{}", self.path.display())
    }
}

/// The greeting QEMU 7.2 sends.
pub const GREETING: &str = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 22, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n";

/// Reads one JSON request (up to its closing brace at depth 0) from a fake server's client.
pub fn read_request(s: &mut impl Read) -> Option<serde_json::Value> {
    let mut buf = Vec::new();
    let mut depth = 0usize;
    let mut in_str = false;
    let mut esc = false;
    let mut byte = [0u8; 1];
    loop {
        if s.read(&mut byte).ok()? == 0 {
            return None;
        }
        let b = byte[0];
        if buf.is_empty() && b != b'{' {
            continue;
        }
        buf.push(b);
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return serde_json::from_slice(&buf).ok();
                }
            }
            _ => {}
        }
    }
}

/// Answers `qmp_capabilities` like QEMU (echoing the id).
pub fn negotiate(s: &mut std::os::unix::net::UnixStream) -> Option<()> {
    s.write_all(GREETING.as_bytes()).ok()?;
    let req = read_request(s)?;
    reply(s, &req, "{}")
}

/// Sends `{"return": <ret>, "id": <the request's id>}`.
pub fn reply(s: &mut std::os::unix::net::UnixStream, req: &serde_json::Value, ret: &str) -> Option<()> {
    let id = req.get("id").map(|i| format!(", \"id\": {i}")).unwrap_or_default();
    s.write_all(format!("{{\"return\": {ret}{id}}}\r\n").as_bytes()).ok()
}

/// Small qcow2 images for block-job tests: base (data) <- top (empty overlay).
pub fn block_images(dir: &Path) -> (PathBuf, PathBuf) {
    let qemu_img = require_tool("qemu-img", "qemu-utils");
    let qemu_io = require_tool("qemu-io", "qemu-utils");
    let base = dir.join("base.qcow2");
    let top = dir.join("top.qcow2");
    let run = |c: &mut Command| {
        let out = c.output().expect("run qemu-img/qemu-io");
        assert!(out.status.success(), "{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    };
    run(Command::new(&qemu_img).args(["create", "-q", "-f", "qcow2"]).arg(&base).arg("8M"));
    run(Command::new(&qemu_io).args(["-c", "write -P 0xaa 0 8M"]).arg(&base));
    run(Command::new(&qemu_img)
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
        .arg(&base)
        .arg(&top));
    (base, top)
}

/// `-blockdev` arguments for base <- top with node names `base` and `top`.
pub fn blockdev_args(base: &Path, top: &Path) -> Vec<String> {
    vec![
        "-blockdev".into(),
        format!("driver=file,filename={},node-name=base-file", base.display()),
        "-blockdev".into(),
        "driver=qcow2,file=base-file,node-name=base".into(),
        "-blockdev".into(),
        format!("driver=file,filename={},node-name=top-file", top.display()),
        "-blockdev".into(),
        "driver=qcow2,file=top-file,backing=base,node-name=top".into(),
    ]
}
