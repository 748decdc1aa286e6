//! Block jobs in QEMU's iotests idiom, with qemu-img / qemu-io as the oracle: a 3-layer chain
//! with distinct patterns, zero writes and discards is built by qemu-io; `vmm -machine none` runs
//! stream, intermediate commit and active commit on it (with writes during the jobs through the
//! drive and through the node, via HMP `qemu-io`), pause / resume / set-speed / cancel, manual
//! finalize; a full disk with each `on-error` policy; a process killed during a job. Afterwards
//! every image is checked with `qemu-io -c 'read -P ..'`, `qemu-img compare` against a raw copy
//! of the expected contents, `qemu-img check` and `qemu-img info --backing-chain`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use proto_tests::{Conn, Server, binary, which};
use serde_json::{Value, json};

const MIB: u64 = 1 << 20;

fn tool(name: &str) -> PathBuf {
    which(name).unwrap_or_else(|| panic!("{name} is not installed (apt-get install qemu-utils)"))
}

fn run_tool(name: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(tool(name)).args(args).output().unwrap_or_else(|e| panic!("{name}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn must(name: &str, args: &[&str]) -> String {
    let (ok, text) = run_tool(name, args);
    assert!(ok, "{name} {args:?} failed:\n{text}");
    text
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The guest view of the test chain, as (offset, length, byte) runs covering all 64 MiB.
const EXPECTED: &[(u64, u64, u8)] = &[
    (0, 1, 0x00),
    (1, 3, 0x11),
    (4, 2, 0x21),
    (6, 4, 0x31),
    (10, 2, 0x21),
    (12, 4, 0x00),
    (16, 2, 0x12),
    (18, 2, 0x00),
    (20, 4, 0x12),
    (24, 16, 0x00),
    (40, 1, 0x13),
    (41, 1, 0x00),
    (42, 2, 0x13),
    (44, 4, 0x00),
    (48, 1, 0x22),
    (49, 1, 0x00),
    (50, 2, 0x22),
    (52, 8, 0x00),
    (60, 2, 0x32),
    (62, 2, 0x00),
];

/// base <- mid <- top, 64 MiB each: patterns, zero writes (`write -z`) and discards in the upper
/// layers over data below; `ref.raw` is qemu-img's conversion of the whole chain.
struct Chain {
    dir: tempfile::TempDir,
}

impl Chain {
    fn new() -> Chain {
        Self::in_dir(tempfile::tempdir().expect("tempdir"))
    }

    fn in_dir(dir: tempfile::TempDir) -> Chain {
        let c = Chain { dir };
        let (base, mid, top) = (c.p("base.qcow2"), c.p("mid.qcow2"), c.p("top.qcow2"));
        must("qemu-img", &["create", "-q", "-f", "qcow2", s(&base), "64M"]);
        c.io(&base, &["write -P 0x11 0 8M", "write -P 0x12 16M 8M", "write -P 0x13 40M 4M"]);
        must("qemu-img", &["create", "-q", "-f", "qcow2", "-b", s(&base), "-F", "qcow2", s(&mid)]);
        c.io(&mid, &["write -P 0x21 4M 8M", "write -z 18M 2M", "discard 41M 1M", "write -P 0x22 48M 4M"]);
        must("qemu-img", &["create", "-q", "-f", "qcow2", "-b", s(&mid), "-F", "qcow2", s(&top)]);
        c.io(&top, &["write -P 0x31 6M 4M", "write -z 0 1M", "discard 49M 1M", "write -P 0x32 60M 2M"]);
        must("qemu-img", &["convert", "-O", "raw", s(&top), s(&c.p("ref.raw"))]);
        c.expect_patterns(&c.p("ref.raw"), "raw");
        c
    }

    fn p(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Runs qemu-io commands on an image (writes allowed).
    fn io(&self, image: &Path, cmds: &[&str]) {
        self.io_fmt(image, "qcow2", cmds);
    }

    fn io_fmt(&self, image: &Path, fmt: &str, cmds: &[&str]) {
        let mut args = vec!["-f".to_string(), fmt.to_string()];
        for c in cmds {
            args.push("-c".into());
            args.push(c.to_string());
        }
        args.push(s(image).into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = must("qemu-io", &args);
        assert!(!out.contains("failed"), "qemu-io {args:?}:\n{out}");
    }

    /// `qemu-io -r -c 'read -P ..'` over every run of [`EXPECTED`].
    fn expect_patterns(&self, image: &Path, fmt: &str) {
        let cmds: Vec<String> =
            EXPECTED.iter().map(|&(o, l, b)| format!("read -P {b:#04x} {}M {}M", o, l)).collect();
        let mut args = vec!["-r".to_string(), "-f".into(), fmt.into()];
        for c in &cmds {
            args.push("-c".into());
            args.push(c.clone());
        }
        args.push(s(image).into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = must("qemu-io", &args);
        assert!(!out.contains("verification failed"), "{}:\n{out}", image.display());
    }

    /// Applies the same writes to the reference (for writes made during a job).
    fn ref_io(&self, cmds: &[&str]) {
        self.io_fmt(&self.p("ref.raw"), "raw", cmds);
    }

    /// `qemu-img compare` of an image (through its chain) with the reference.
    fn compare(&self, image: &str) {
        let out = must("qemu-img", &["compare", "-F", "raw", s(&self.p(image)), s(&self.p("ref.raw"))]);
        assert!(out.contains("Images are identical"), "{image}: {out}");
    }

    /// `qemu-img check`: clean, or (`leaks_ok`, after a kill) with leaked clusters only.
    fn check(&self, image: &str, leaks_ok: bool) {
        let out = Command::new(tool("qemu-img")).args(["check", s(&self.p(image))]).output().unwrap();
        let code = out.status.code();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(code == Some(0) || (leaks_ok && code == Some(3)), "qemu-img check {image}: {code:?}\n{text}");
    }

    /// The file names of `qemu-img info --backing-chain`, top first.
    fn chain_of(&self, image: &str) -> Vec<String> {
        let out = must("qemu-img", &["info", "--backing-chain", "--output=json", s(&self.p(image))]);
        let v: Value = serde_json::from_str(&out).expect("qemu-img info json");
        v.as_array()
            .expect("array")
            .iter()
            .map(|i| {
                let f = i["filename"].as_str().unwrap_or("");
                Path::new(f).file_name().and_then(|n| n.to_str()).unwrap_or(f).to_string()
            })
            .collect()
    }
}

/// A running vmm with its QMP connection. Every event is logged; waits look at the events after
/// the one the previous wait matched.
struct Vm {
    server: Server,
    conn: Conn,
    events: Vec<Value>,
    cursor: usize,
}

impl Vm {
    fn start(chain: &Chain, args: &[&str]) -> Vm {
        let mut full =
            vec!["-machine", "none", "-nodefaults", "-qmp", "unix:{dir}/qmp.sock,server=on,wait=off"];
        let args: Vec<String> = args.iter().map(|a| a.replace("{img}", s(chain.dir.path()))).collect();
        full.extend(args.iter().map(String::as_str));
        let server = Server::vmm(&full);
        Self::connect(server)
    }

    fn connect(mut server: Server) -> Vm {
        let mut conn = server.connect_unix("qmp.sock");
        conn.negotiate();
        Vm { server, conn, events: Vec::new(), cursor: 0 }
    }

    fn read(&mut self, timeout: Duration) -> Option<Value> {
        match self.conn.recv_line_timeout(timeout) {
            Ok(Some(l)) => Some(serde_json::from_str(&l).expect("json")),
            Ok(None) => panic!("vmm closed the connection"),
            Err(_) => None,
        }
    }

    fn cmd(&mut self, name: &str, args: Value) -> Value {
        self.conn.send(&json!({"execute": name, "arguments": args}));
        loop {
            let v = self.read(Duration::from_secs(30)).unwrap_or_else(|| panic!("no reply to {name}"));
            if v.get("event").is_some() {
                self.events.push(v);
            } else {
                return v;
            }
        }
    }

    fn ok(&mut self, name: &str, args: Value) -> Value {
        let r = self.cmd(name, args.clone());
        assert!(r.get("return").is_some(), "{name} {args}: {r}");
        r["return"].clone()
    }

    fn err(&mut self, name: &str, args: Value) -> String {
        let r = self.cmd(name, args.clone());
        r["error"]["desc"].as_str().unwrap_or_else(|| panic!("{name} {args} should fail: {r}")).to_string()
    }

    fn hmp(&mut self, line: &str) -> String {
        self.ok("human-monitor-command", json!({"command-line": line})).as_str().unwrap_or("").to_string()
    }

    /// Waits for an event matching `pred` after the last one a wait matched; returns it.
    fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.events[self.cursor..].iter().position(&pred) {
                self.cursor += i + 1;
                return self.events[self.cursor - 1].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for {what}; events: {:?}", self.events);
            if let Some(v) = self.read(left.min(Duration::from_millis(200)))
                && v.get("event").is_some()
            {
                self.events.push(v);
            }
        }
    }

    fn wait_status(&mut self, id: &str, status: &str) {
        let (i, st) = (id.to_string(), status.to_string());
        self.wait_event(
            &format!("job {id} {status}"),
            move |v| {
                v["event"] == "JOB_STATUS_CHANGE"
                    && v["data"]["id"] == i.as_str()
                    && v["data"]["status"] == st.as_str()
            },
            Duration::from_secs(60),
        );
    }

    /// The events of job `id` seen so far, as short strings (`running`, `BLOCK_JOB_COMPLETED`).
    fn job_events(&self, id: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|v| v["data"]["id"] == id || v["data"]["device"] == id)
            .map(|v| match v["event"].as_str() {
                Some("JOB_STATUS_CHANGE") => v["data"]["status"].as_str().unwrap_or("").to_string(),
                Some(e) => e.to_string(),
                None => String::new(),
            })
            .collect()
    }

    fn job(&mut self, id: &str) -> Value {
        let jobs = self.ok("query-block-jobs", json!({}));
        jobs.as_array().and_then(|a| a.iter().find(|j| j["device"] == id).cloned()).unwrap_or(Value::Null)
    }

    fn quit(mut self) {
        self.ok("quit", json!({}));
        assert_eq!(self.server.wait_exit(Duration::from_secs(20)), Some(0), "vmm exit");
    }
}

/// `-blockdev` nodes for the chain: base, mid, top with explicit backing references.
fn blockdevs() -> Vec<&'static str> {
    vec![
        "-blockdev",
        "driver=qcow2,node-name=base,file.driver=file,file.filename={img}/base.qcow2",
        "-blockdev",
        "driver=qcow2,node-name=mid,backing=base,file.driver=file,file.filename={img}/mid.qcow2",
        "-blockdev",
        "driver=qcow2,node-name=top,backing=mid,file.driver=file,file.filename={img}/top.qcow2",
    ]
}

#[test]
fn stream_whole_chain_with_writes_through_the_node() {
    let c = Chain::new();
    let mut vm = Vm::start(
        &c,
        &["-blockdev", "driver=qcow2,node-name=top,file.driver=file,file.filename={img}/top.qcow2"],
    );
    vm.ok("block-stream", json!({"device": "top", "job-id": "s0", "speed": 32 * MIB}));
    // Guest-like writes into the top while the job copies (never overwritten by older data).
    vm.hmp("qemu-io top \"write -P 0x77 30M 1M\"");
    vm.hmp("qemu-io top \"write -z 16M 64k\"");
    c.ref_io(&["write -P 0x77 30M 1M", "write -z 16M 64k"]);
    vm.ok("block-job-set-speed", json!({"device": "s0", "speed": 0}));
    vm.wait_status("s0", "null");
    assert_eq!(
        vm.job_events("s0"),
        ["created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null"]
    );
    vm.quit();
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2"], "top no longer has a backing file");
    c.compare("top.qcow2");
    c.check("top.qcow2", false);
}

#[test]
fn stream_to_a_base_node() {
    let c = Chain::new();
    must("qemu-img", &["convert", "-O", "raw", s(&c.p("base.qcow2")), s(&c.p("base-before.raw"))]);
    let mut vm = Vm::start(&c, &blockdevs());
    vm.ok("block-stream", json!({"device": "top", "job-id": "s1", "base-node": "base"}));
    vm.wait_status("s1", "null");
    let nodes = vm.ok("query-named-block-nodes", json!({"flat": true}));
    let top = nodes.as_array().unwrap().iter().find(|n| n["node-name"] == "top").unwrap().clone();
    assert_eq!(top["image"]["backing-filename"], s(&c.p("base.qcow2")));
    vm.quit();
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2", "base.qcow2"]);
    c.expect_patterns(&c.p("top.qcow2"), "qcow2");
    c.compare("top.qcow2");
    let out = must("qemu-img", &["compare", "-F", "raw", s(&c.p("base.qcow2")), s(&c.p("base-before.raw"))]);
    assert!(out.contains("identical"), "the base is untouched: {out}");
    for i in ["top.qcow2", "mid.qcow2", "base.qcow2"] {
        c.check(i, false);
    }
}

#[test]
fn intermediate_commit() {
    let c = Chain::new();
    let mut vm = Vm::start(&c, &blockdevs());
    vm.ok("block-commit", json!({"device": "top", "job-id": "c1", "top-node": "mid", "base-node": "base"}));
    vm.wait_status("c1", "null");
    assert_eq!(
        vm.job_events("c1"),
        ["created", "running", "waiting", "pending", "BLOCK_JOB_COMPLETED", "concluded", "null"]
    );
    // mid is gone from the chain; blockdev-del of it now works (the monitor added it).
    vm.ok("blockdev-del", json!({"node-name": "mid"}));
    vm.quit();
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2", "base.qcow2"]);
    c.expect_patterns(&c.p("top.qcow2"), "qcow2");
    c.compare("top.qcow2");
    for i in ["top.qcow2", "base.qcow2"] {
        c.check(i, false);
    }
}

#[test]
fn active_commit_with_writes_during_the_job_and_pivot() {
    let c = Chain::new();
    let mut vm =
        Vm::start(&c, &["-drive", "file={img}/top.qcow2,if=none,id=drive0,format=qcow2,node-name=top"]);
    vm.ok("block-commit", json!({"device": "drive0", "job-id": "ac", "speed": 16 * MIB}));
    // Before READY: through the drive and through the node.
    vm.hmp("qemu-io drive0 \"write -P 0x51 3M 2M\"");
    vm.hmp("qemu-io top \"write -P 0x52 33M 1M\"");
    vm.hmp("qemu-io drive0 \"discard 60M 1M\"");
    c.ref_io(&["write -P 0x51 3M 2M", "write -P 0x52 33M 1M", "write -z 60M 1M"]);
    vm.ok("block-job-set-speed", json!({"device": "ac", "speed": 0}));
    vm.wait_status("ac", "ready");
    // In READY the job mirrors new writes.
    vm.hmp("qemu-io drive0 \"write -P 0x53 20M 512k\"");
    vm.hmp("qemu-io drive0 \"write -z 6M 64k\"");
    c.ref_io(&["write -P 0x53 20M 512k", "write -z 6M 64k"]);
    vm.ok("block-job-complete", json!({"device": "ac"}));
    vm.wait_status("ac", "null");
    assert_eq!(
        vm.job_events("ac"),
        [
            "created",
            "running",
            "ready",
            "BLOCK_JOB_READY",
            "waiting",
            "pending",
            "BLOCK_JOB_COMPLETED",
            "concluded",
            "null"
        ]
    );
    // After the pivot the drive writes into the base.
    vm.hmp("qemu-io drive0 \"write -P 0x54 50M 1M\"");
    c.ref_io(&["write -P 0x54 50M 1M"]);
    let info = vm.hmp("info block");
    assert!(info.starts_with("drive0 (#") && info.contains(s(&c.p("base.qcow2"))), "{info}");
    vm.quit();
    assert_eq!(c.chain_of("base.qcow2"), ["base.qcow2"]);
    c.compare("base.qcow2");
    c.check("base.qcow2", false);
}

/// Offset of a job after `wait`.
fn offset_after(vm: &mut Vm, id: &str, wait: Duration) -> u64 {
    std::thread::sleep(wait);
    vm.job(id)["offset"].as_u64().unwrap_or(0)
}

#[test]
fn pause_resume_speed_and_cancel() {
    let c = Chain::new();
    let mut vm = Vm::start(&c, &blockdevs());
    // 4 MiB/s over ~35 MiB of data to copy: it takes ~9 s unless sped up.
    let speed = 4 * MIB;
    vm.ok("block-stream", json!({"device": "top", "job-id": "s", "base-node": "base", "speed": speed}));
    let a = offset_after(&mut vm, "s", Duration::from_millis(300));
    let b = offset_after(&mut vm, "s", Duration::from_secs(1));
    let copied_per_s = b - a;
    // Progress counts the whole address space, data or not; the limit is on copied data, so
    // check against the bytes copied: the layout has at most 2 MiB of holes per 4 MiB here.
    assert!(copied_per_s > 0, "the job progresses");
    assert!(b < 64 * MIB, "4 MiB/s cannot stream the chain in 1.3 s (offset {b})");
    vm.ok("block-job-pause", json!({"device": "s"}));
    let p1 = offset_after(&mut vm, "s", Duration::from_millis(100));
    let p2 = offset_after(&mut vm, "s", Duration::from_millis(500));
    assert_eq!(p1, p2, "a paused job does not progress");
    assert_eq!(vm.job("s")["status"], "paused");
    vm.ok("block-job-resume", json!({"device": "s"}));
    let r = offset_after(&mut vm, "s", Duration::from_millis(600));
    assert!(r > p2, "resumed job progresses ({p2} -> {r})");
    // cancel: the chain keeps its backing files and its contents.
    vm.ok("block-job-cancel", json!({"device": "s"}));
    vm.wait_status("s", "null");
    assert_eq!(
        vm.job_events("s"),
        ["created", "running", "paused", "running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null"]
    );
    // set-speed lifts the limit: a new stream finishes quickly.
    vm.ok("block-stream", json!({"device": "top", "job-id": "s2", "base-node": "base", "speed": 1}));
    vm.ok("block-job-set-speed", json!({"device": "s2", "speed": 0}));
    vm.wait_status("s2", "null");
    vm.quit();
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2", "base.qcow2"]);
    c.compare("top.qcow2");
    c.check("top.qcow2", false);
}

#[test]
fn speed_limits_copied_bytes() {
    // One layer of 24 MiB of data over an empty base: every byte streamed is copied.
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = (dir.path().join("b.qcow2"), dir.path().join("t.qcow2"));
    must("qemu-img", &["create", "-q", "-f", "qcow2", s(&base), "24M"]);
    must("qemu-io", &["-c", "write -P 0x66 0 24M", s(&base)]);
    must("qemu-img", &["create", "-q", "-f", "qcow2", "-b", s(&base), "-F", "qcow2", s(&top)]);
    let arg = format!("driver=qcow2,node-name=t,file.driver=file,file.filename={}", s(&top));
    let server = Server::vmm(&[
        "-machine",
        "none",
        "-nodefaults",
        "-qmp",
        "unix:{dir}/qmp.sock,server=on,wait=off",
        "-blockdev",
        &arg,
    ]);
    let mut vm = Vm::connect(server);
    let speed = 8 * MIB;
    let t0 = Instant::now();
    vm.ok("block-stream", json!({"device": "t", "job-id": "r", "speed": speed}));
    vm.wait_status("r", "null");
    let secs = t0.elapsed().as_secs_f64();
    // 24 MiB at 8 MiB/s: about 3 s (the first slice's quota goes at once).
    assert!(secs > 2.5 && secs < 6.0, "24 MiB at 8 MiB/s took {secs:.2} s");
    vm.quit();
    let out = must("qemu-io", &["-r", "-c", "read -P 0x66 0 24M", s(&top)]);
    assert!(!out.contains("failed"), "{out}");
}

#[test]
fn manual_finalize_and_cancel_in_pending() {
    let c = Chain::new();
    let mut vm = Vm::start(&c, &blockdevs());
    vm.ok(
        "block-stream",
        json!({"device": "top", "job-id": "m", "base-node": "base", "auto-finalize": false}),
    );
    vm.wait_event("BLOCK_JOB_PENDING", |v| v["event"] == "BLOCK_JOB_PENDING", Duration::from_secs(30));
    // Not finalised: the graph is unchanged, top still reads through mid.
    let nodes = vm.ok("query-named-block-nodes", json!({"flat": true}));
    let top = nodes.as_array().unwrap().iter().find(|n| n["node-name"] == "top").unwrap().clone();
    assert_eq!(top["image"]["backing-filename"], s(&c.p("mid.qcow2")));
    assert_eq!(
        vm.err("job-dismiss", json!({"id": "m"})),
        "Job 'm' in state 'pending' cannot accept command verb 'dismiss'"
    );
    vm.ok("job-cancel", json!({"id": "m"}));
    assert_eq!(
        vm.job_events("m"),
        [
            "created",
            "running",
            "waiting",
            "pending",
            "BLOCK_JOB_PENDING",
            "aborting",
            "BLOCK_JOB_CANCELLED",
            "concluded",
            "null"
        ]
    );
    vm.ok("block-stream", json!({"device": "top", "job-id": "m2", "base-node": "base", "auto-finalize": false, "auto-dismiss": false}));
    vm.wait_status("m2", "pending");
    vm.ok("job-finalize", json!({"id": "m2"}));
    assert_eq!(vm.ok("query-jobs", json!({}))[0]["status"], "concluded");
    vm.ok("job-dismiss", json!({"id": "m2"}));
    assert_eq!(vm.ok("query-jobs", json!({})), json!([]));
    vm.quit();
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2", "base.qcow2"]);
    c.compare("top.qcow2");
    c.check("top.qcow2", false);
}

/// A small file system for the top image: a tmpfs when we may mount one (root), else a file
/// size limit on the vmm process (writes past it fail with EFBIG instead of ENOSPC).
/// `BLOCK_TESTS_NO_MOUNT=1` forces the second way.
enum SmallDisk {
    Tmpfs(PathBuf),
    SizeLimit(u64),
}

impl SmallDisk {
    fn new(dir: &Path, bytes: u64) -> SmallDisk {
        let mnt = dir.join("small");
        std::fs::create_dir_all(&mnt).unwrap();
        let ok = std::env::var_os("BLOCK_TESTS_NO_MOUNT").is_none()
            && Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs", s(&mnt)])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|st| st.success());
        if ok { SmallDisk::Tmpfs(mnt) } else { SmallDisk::SizeLimit(bytes) }
    }

    fn enospc(&self) -> bool {
        matches!(self, SmallDisk::Tmpfs(_))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if let SmallDisk::Tmpfs(m) = self {
            let _ = Command::new("umount").arg(m).status();
        }
    }
}

/// The chain with its top on a small disk (12 MiB; the top holds 6 MiB, the stream needs ~30 more).
fn full_disk_vm(on_error: &str) -> (Chain, SmallDisk, Vm) {
    let c = Chain::new();
    let disk = SmallDisk::new(c.dir.path(), 12 * MIB);
    let top = match &disk {
        SmallDisk::Tmpfs(m) => {
            let t = m.join("top.qcow2");
            std::fs::copy(c.p("top.qcow2"), &t).unwrap();
            std::fs::remove_file(c.p("top.qcow2")).unwrap();
            std::os::unix::fs::symlink(&t, c.p("top.qcow2")).unwrap();
            t
        }
        SmallDisk::SizeLimit(_) => c.p("top.qcow2"),
    };
    let arg = format!("driver=qcow2,node-name=top,file.driver=file,file.filename={}", s(&top));
    let mut args: Vec<String> =
        vec!["-machine", "none", "-nodefaults", "-qmp", "unix:{dir}/qmp.sock,server=on,wait=off"]
            .into_iter()
            .map(String::from)
            .collect();
    args.extend(["-blockdev".to_string(), arg]);
    let server = match &disk {
        SmallDisk::Tmpfs(_) => Server::vmm(&args.iter().map(String::as_str).collect::<Vec<_>>()),
        SmallDisk::SizeLimit(bytes) => {
            // prlimit caps the file size; the vmm ignores SIGXFSZ, so writes fail with EFBIG.
            let mut full = vec![format!("--fsize={bytes}"), s(&binary("vmm")).to_string()];
            full.extend(args.iter().cloned());
            spawn_with("prlimit", &full)
        }
    };
    let mut vm = Vm::connect(server);
    vm.ok("block-stream", json!({"device": "top", "job-id": "f", "on-error": on_error}));
    (c, disk, vm)
}

/// A Server running `program args` (`{dir}` replaced), for wrappers like prlimit.
fn spawn_with(program: &str, args: &[String]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let args: Vec<String> = args.iter().map(|a| a.replace("{dir}", s(dir.path()))).collect();
    let child = Command::new(tool(program))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    Server { child, dir }
}

fn error_text(disk: &SmallDisk) -> &'static str {
    if disk.enospc() { "No space left on device" } else { "File too large" }
}

#[test]
fn full_disk_on_error_report() {
    let (c, disk, mut vm) = full_disk_vm("report");
    let err = vm.wait_event("BLOCK_JOB_ERROR", |v| v["event"] == "BLOCK_JOB_ERROR", Duration::from_secs(30));
    assert_eq!(err["data"], json!({"device": "f", "operation": "write", "action": "report"}));
    let done = vm.wait_event("COMPLETED", |v| v["event"] == "BLOCK_JOB_COMPLETED", Duration::from_secs(30));
    assert_eq!(done["data"]["error"], error_text(&disk));
    vm.wait_status("f", "null");
    assert_eq!(
        vm.job_events("f"),
        ["created", "running", "BLOCK_JOB_ERROR", "aborting", "BLOCK_JOB_COMPLETED", "concluded", "null"]
    );
    vm.quit();
    // The failed job left the chain as it was: top still reads through mid and base.
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2", "mid.qcow2", "base.qcow2"]);
    c.compare("top.qcow2");
    c.check("top.qcow2", true);
}

/// A job stopped by an error: paused with its io-status, resumed (fails again), force-cancelled.
fn stopped_then_cancelled(vm: &mut Vm, io_status: &str) {
    vm.wait_status("f", "paused");
    let j = vm.job("f");
    assert_eq!((j["status"].as_str(), j["io-status"].as_str()), (Some("paused"), Some(io_status)));
    // Resuming clears the io-status and retries, which fails and stops again.
    vm.ok("block-job-resume", json!({"device": "f"}));
    vm.wait_event("second error", |v| v["event"] == "BLOCK_JOB_ERROR", Duration::from_secs(30));
    vm.wait_status("f", "paused");
    assert_eq!(
        vm.err("block-job-cancel", json!({"device": "f"})),
        "The block job for device 'f' is currently paused"
    );
    vm.ok("block-job-cancel", json!({"device": "f", "force": true}));
    vm.wait_status("f", "null");
    let ev = vm.job_events("f");
    assert_eq!(&ev[ev.len() - 5..], ["running", "aborting", "BLOCK_JOB_CANCELLED", "concluded", "null"]);
}

#[test]
fn full_disk_on_error_stop() {
    let (c, disk, mut vm) = full_disk_vm("stop");
    let err = vm.wait_event("BLOCK_JOB_ERROR", |v| v["event"] == "BLOCK_JOB_ERROR", Duration::from_secs(30));
    assert_eq!(err["data"], json!({"device": "f", "operation": "write", "action": "stop"}));
    stopped_then_cancelled(&mut vm, if disk.enospc() { "nospace" } else { "failed" });
    vm.quit();
    c.compare("top.qcow2");
    c.check("top.qcow2", true);
}

#[test]
fn full_disk_on_error_enospc() {
    let (c, disk, mut vm) = full_disk_vm("enospc");
    let err = vm.wait_event("BLOCK_JOB_ERROR", |v| v["event"] == "BLOCK_JOB_ERROR", Duration::from_secs(30));
    if disk.enospc() {
        // enospc stops on ENOSPC: the job pauses, its io-status says why.
        assert_eq!(err["data"], json!({"device": "f", "operation": "write", "action": "stop"}));
        stopped_then_cancelled(&mut vm, "nospace");
    } else {
        // EFBIG is not ENOSPC: enospc reports it.
        assert_eq!(err["data"], json!({"device": "f", "operation": "write", "action": "report"}));
        vm.wait_status("f", "null");
    }
    vm.quit();
    c.compare("top.qcow2");
    c.check("top.qcow2", true);
}

#[test]
fn full_disk_on_error_ignore() {
    let (c, disk, mut vm) = full_disk_vm("ignore");
    let err = vm.wait_event("BLOCK_JOB_ERROR", |v| v["event"] == "BLOCK_JOB_ERROR", Duration::from_secs(30));
    assert_eq!(err["data"], json!({"device": "f", "operation": "write", "action": "ignore"}));
    // stream goes on past errors and fails at the end with the first one.
    let done = vm.wait_event("COMPLETED", |v| v["event"] == "BLOCK_JOB_COMPLETED", Duration::from_secs(60));
    assert_eq!(done["data"]["error"], error_text(&disk));
    assert_eq!(done["data"]["offset"], 64 * MIB);
    vm.wait_status("f", "null");
    vm.quit();
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2", "mid.qcow2", "base.qcow2"]);
    c.compare("top.qcow2");
    c.check("top.qcow2", true);
}

/// Kills vmm (SIGKILL) in the middle of a job; every image must pass `qemu-img check` (leaked
/// clusters allowed, as after a QEMU crash) and the chain must read as before.
fn killed_during(job: &str, args: Value) {
    let c = Chain::new();
    let mut vm = Vm::start(&c, &blockdevs());
    vm.ok(job, args);
    std::thread::sleep(Duration::from_millis(700));
    let j = vm.job("k");
    assert!(j["offset"].as_u64().unwrap_or(0) > 0, "the job started copying: {j}");
    vm.server.child.kill().expect("kill");
    let _ = vm.server.child.wait();
    for i in ["top.qcow2", "mid.qcow2", "base.qcow2"] {
        c.check(i, true);
    }
    assert_eq!(c.chain_of("top.qcow2"), ["top.qcow2", "mid.qcow2", "base.qcow2"]);
    c.expect_patterns(&c.p("top.qcow2"), "qcow2");
    c.compare("top.qcow2");
}

#[test]
fn killed_during_stream() {
    killed_during("block-stream", json!({"device": "top", "job-id": "k", "speed": 16 * MIB}));
}

#[test]
fn killed_during_intermediate_commit() {
    killed_during(
        "block-commit",
        json!({"device": "top", "job-id": "k", "top-node": "mid", "speed": 16 * MIB}),
    );
}

#[test]
fn killed_during_active_commit() {
    killed_during("block-commit", json!({"device": "top", "job-id": "k", "speed": 16 * MIB}));
}
