//! Helpers shared by the black-box conformance tests: start the real `vmm` binary (or
//! `qemu-system-x86_64` for side-by-side checks), connect over real sockets, and run golden
//! transcripts written in QEMU's `->` / `<-` notation.
//!
//! Transcript lines:
//! - `-> JSON` sends the JSON text as written (followed by `\n`);
//! - `->raw TEXT` sends TEXT with escapes (`\xNN`, `\r`, `\n`, `\t`, `\\`) and nothing appended;
//! - `<- JSON` expects the next message to equal JSON (objects compare regardless of key order; a
//!   `"timestamp": "*"` member matches any `{"seconds", "microseconds"}` stamp, and any string value
//!   `"*"` matches any value);
//! - `<- EOF` expects the server to close the connection;
//! - `## quiet MS` expects no message for MS milliseconds;
//! - `#` starts a comment; blank lines are ignored.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The directory holding the workspace's built binaries (next to this test executable).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    exe.parent().and_then(Path::parent).map(Path::to_path_buf).expect("target dir")
}

/// Path of a workspace binary; panics with a clear message if it was not built.
pub fn binary(name: &str) -> PathBuf {
    let p = target_dir().join(name);
    assert!(p.exists(), "{} not found: build the workspace first (cargo build --workspace)", p.display());
    p
}

/// A process that is killed when dropped.
pub struct Server {
    pub child: Child,
    pub dir: tempfile::TempDir,
}

impl Server {
    /// Starts `vmm` with `args`; `{dir}` in an argument is replaced by a fresh temporary directory.
    pub fn vmm(args: &[&str]) -> Server {
        Self::spawn(&binary("vmm"), args)
    }

    /// Starts `qemu-system-x86_64` (for side-by-side tests); panics clearly if it is missing.
    pub fn qemu(args: &[&str]) -> Server {
        let path = which("qemu-system-x86_64")
            .expect("qemu-system-x86_64 is not installed (apt-get install qemu-system-x86; .ci/run does it)");
        Self::spawn(&path, args)
    }

    fn spawn(program: &Path, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_str().expect("utf-8 temp path").to_string();
        let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", &d)).collect();
        let child = Command::new(program)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        Server { child, dir }
    }

    /// A path inside the server's temporary directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Connects to a unix socket, retrying until it exists (the server is starting).
    pub fn connect_unix(&mut self, name: &str) -> Conn {
        let path = self.path(name);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match UnixStream::connect(&path) {
                Ok(s) => return Conn::new(s),
                Err(e) => {
                    if let Ok(Some(status)) = self.child.try_wait() {
                        let mut err = String::new();
                        if let Some(mut e) = self.child.stderr.take() {
                            let _ = e.read_to_string(&mut err);
                        }
                        panic!("server exited with {status} before listening: {err}");
                    }
                    assert!(Instant::now() < deadline, "cannot connect to {}: {e}", path.display());
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// Waits for the process to exit (up to `timeout`) and returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Everything the server wrote on stderr so far (after it exited).
    pub fn stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Finds a program on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.exists())
}

/// A client connection that reads `\r\n`-terminated messages.
pub struct Conn {
    reader: BufReader<Box<dyn Read + Send>>,
    writer: Box<dyn Write + Send>,
    raw_read: Box<dyn Fn(Option<Duration>) + Send>,
}

impl Conn {
    pub fn new(s: UnixStream) -> Conn {
        let r = s.try_clone().expect("clone");
        let t = s.try_clone().expect("clone");
        Conn {
            reader: BufReader::new(Box::new(r)),
            writer: Box::new(s),
            raw_read: Box::new(move |d| {
                let _ = t.set_read_timeout(d);
            }),
        }
    }

    pub fn from_tcp(s: std::net::TcpStream) -> Conn {
        let r = s.try_clone().expect("clone");
        let t = s.try_clone().expect("clone");
        Conn {
            reader: BufReader::new(Box::new(r)),
            writer: Box::new(s),
            raw_read: Box::new(move |d| {
                let _ = t.set_read_timeout(d);
            }),
        }
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("send");
        self.writer.flush().expect("flush");
    }

    /// Sends a JSON value followed by a newline.
    pub fn send(&mut self, v: &Value) {
        let mut b = serde_json::to_vec(v).expect("json");
        b.push(b'\n');
        self.send_raw(&b);
    }

    /// The next line (without `\r\n`), or `None` at EOF; panics after `timeout`.
    pub fn recv_line_timeout(&mut self, timeout: Duration) -> Result<Option<String>, String> {
        (self.raw_read)(Some(timeout));
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => Ok(None),
            Ok(_) => {
                let s = String::from_utf8(line).map_err(|e| format!("non-UTF-8 output: {e}"))?;
                let body =
                    s.strip_suffix("\r\n").ok_or_else(|| format!("line not terminated by \\r\\n: {s:?}"))?;
                Ok(Some(body.to_string()))
            }
            Err(e) => Err(format!("no message within {timeout:?}: {e}")),
        }
    }

    /// The next message as JSON (10 s timeout).
    pub fn recv(&mut self) -> Value {
        let line = self
            .recv_line_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("EOF while waiting for a message"));
        assert!(line.is_ascii(), "output must be ASCII: {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("invalid JSON from server ({e}): {line}"))
    }

    /// The next non-event message.
    pub fn recv_reply(&mut self) -> Value {
        loop {
            let v = self.recv();
            if v.get("event").is_none() {
                return v;
            }
        }
    }

    /// Sends a command and returns its reply (skipping events).
    pub fn execute(&mut self, cmd: &str, args: Option<Value>) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("execute".into(), cmd.into());
        if let Some(a) = args {
            o.insert("arguments".into(), a);
        }
        self.send(&Value::Object(o));
        self.recv_reply()
    }

    /// Reads the greeting and negotiates.
    pub fn negotiate(&mut self) -> Value {
        let greeting = self.recv();
        assert!(greeting.get("QMP").is_some(), "expected a greeting, got {greeting}");
        let r = self.execute("qmp_capabilities", None);
        assert_eq!(r, serde_json::json!({"return": {}}));
        greeting
    }

    /// Asserts that nothing arrives for `ms` milliseconds.
    pub fn expect_quiet(&mut self, ms: u64) {
        match self.recv_line_timeout(Duration::from_millis(ms)) {
            Err(_) => {}
            Ok(Some(l)) => panic!("unexpected message: {l}"),
            Ok(None) => panic!("unexpected EOF"),
        }
    }

    /// Asserts that the server closes the connection.
    pub fn expect_eof(&mut self) {
        match self.recv_line_timeout(Duration::from_secs(10)) {
            Ok(None) => {}
            Ok(Some(l)) => panic!("expected EOF, got {l}"),
            Err(e) => panic!("expected EOF: {e}"),
        }
    }
}

/// Whether `got` matches `want` (see the module doc for wildcards).
pub fn matches(want: &Value, got: &Value) -> bool {
    match (want, got) {
        (Value::String(w), _) if w == "*" => true,
        (Value::Object(w), Value::Object(g)) => {
            if w.len() != g.len() {
                return false;
            }
            w.iter().all(|(k, wv)| {
                g.get(k).is_some_and(|gv| {
                    if k == "timestamp" && wv == "*" {
                        gv.get("seconds").is_some_and(Value::is_i64)
                            && gv.get("microseconds").is_some_and(Value::is_i64)
                            && gv.as_object().is_some_and(|o| o.len() == 2)
                    } else {
                        matches(wv, gv)
                    }
                })
            })
        }
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| matches(a, b))
        }
        _ => want == got,
    }
}

/// Decodes `\xNN`, `\r`, `\n`, `\t`, `\\` in a `->raw` line.
pub fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'x' if i + 3 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).expect("hex");
                    out.push(u8::from_str_radix(hex, 16).expect("hex escape"));
                    i += 4;
                    continue;
                }
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Runs a transcript against a connection; panics with the line number on the first mismatch.
pub fn run_transcript(conn: &mut Conn, name: &str, text: &str) {
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end();
        let at = format!("{name}:{}", n + 1);
        if let Some(ms) = line.strip_prefix("## quiet ") {
            conn.expect_quiet(ms.trim().parse().expect("quiet ms"));
        } else if line.is_empty() || line.starts_with('#') {
            continue;
        } else if let Some(raw) = line.strip_prefix("->raw ") {
            conn.send_raw(&unescape(raw));
        } else if let Some(json) = line.strip_prefix("-> ") {
            let mut b = json.as_bytes().to_vec();
            b.push(b'\n');
            conn.send_raw(&b);
        } else if line == "<- EOF" {
            conn.expect_eof();
        } else if let Some(json) = line.strip_prefix("<- ") {
            let want: Value =
                serde_json::from_str(json).unwrap_or_else(|e| panic!("{at}: bad expectation: {e}"));
            let line = match conn.recv_line_timeout(Duration::from_secs(10)) {
                Ok(Some(l)) => l,
                Ok(None) => panic!("{at}: EOF, expected {want}"),
                Err(e) => panic!("{at}: {e}, expected {want}"),
            };
            assert!(line.is_ascii(), "{at}: output must be ASCII: {line:?}");
            let got: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("{at}: invalid JSON ({e}): {line}"));
            assert!(matches(&want, &got), "{at}:\n  want {want}\n  got  {got}");
        } else {
            panic!("{at}: cannot parse transcript line: {line}");
        }
    }
}

/// A test guest from `guests/`, built once per test binary (needs make, gcc, binutils).
pub fn guest(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let out = target_dir().join("proto-guests");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests");
        let r = Command::new("make")
            .arg("-s")
            .arg("-C")
            .arg(&src)
            .arg(format!("OUT={}", out.display()))
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run make to build the test guests (install make and gcc): {e}")
            });
        assert!(
            r.status.success(),
            "building the test guests failed:\n{}{}",
            String::from_utf8_lossy(&r.stdout),
            String::from_utf8_lossy(&r.stderr)
        );
        out
    });
    dir.join(name)
}

/// Fails clearly where /dev/kvm cannot be used.
pub fn require_kvm() {
    let ok = std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok();
    assert!(ok, "this test needs a usable /dev/kvm (read/write access); none on this host");
}

/// Waits until `path` contains `needle` (the guest's serial log); panics after `timeout`.
pub fn wait_for_file_text(path: &Path, needle: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{} never showed {needle:?}; it has:\n{text}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards() {
        assert!(matches(
            &json!({"event": "STOP", "timestamp": "*"}),
            &json!({"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"})
        ));
        assert!(!matches(&json!({"event": "STOP", "timestamp": "*"}), &json!({"event": "STOP"})));
        assert!(matches(&json!({"return": {"thread-id": "*"}}), &json!({"return": {"thread-id": 7}})));
        assert!(!matches(&json!({"return": {}}), &json!({"return": {}, "id": 1})));
        assert_eq!(unescape("a\\x01\\r\\n\\\\"), b"a\x01\r\n\\".to_vec());
    }
}
