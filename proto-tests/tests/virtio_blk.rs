//! Disks through the real `vmm` binary: `-drive if=none` + `-device virtio-blk-pci`,
//! `-drive if=virtio` on a qcow2 overlay with a backing file, and `-hda`, each driven by the test
//! guest (guests/, action=blk) and verified afterwards with qemu-io; `query-pci` and `info pci`
//! over QMP; and the command-line errors, in QEMU's words.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use proto_tests::{Server, binary, wait_for_file_text};
use serde_json::{Value, json};

/// Builds guests/ once (make + gcc); panics with the build log.
fn guest() -> PathBuf {
    static G: OnceLock<PathBuf> = OnceLock::new();
    G.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("guests");
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../guests");
        let r = Command::new("make")
            .args(["-s", "-C"])
            .arg(&src)
            .arg(format!("OUT={}", out.display()))
            .output()
            .unwrap_or_else(|e| panic!("cannot run make for the test guests (install make and gcc): {e}"));
        assert!(
            r.status.success(),
            "building the test guests failed:\n{}",
            String::from_utf8_lossy(&r.stderr)
        );
        out.join("testguest-pvh.elf")
    })
    .clone()
}

fn tool(name: &str, args: &[&str]) -> String {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} is needed (apt-get install qemu-utils): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    assert!(!text.contains("Pattern verification failed"), "{name} {args:?}:\n{text}");
    text
}

fn require_kvm() {
    assert!(Path::new("/dev/kvm").exists(), "these tests need /dev/kvm");
}

/// Runs the guest with `disk_args` until it powers off; returns COM1's output.
fn run_vmm(dir: &Path, ops: &str, disk_args: &[&str]) -> String {
    let com1 = dir.join("com1.txt");
    let kernel = guest();
    let append = format!("action=blk quiet ops={ops}");
    let serial = format!("file:{}", com1.display());
    let mut args = vec!["-kernel", kernel.to_str().unwrap(), "-append", &append, "-serial", &serial];
    args.extend(["-display", "none", "-m", "128"]);
    args.extend(disk_args);
    let mut s = Server::vmm(&args);
    let code = s.wait_exit(Duration::from_secs(60));
    let out = std::fs::read_to_string(&com1).unwrap_or_default();
    assert_eq!(code, Some(0), "vmm did not power off cleanly:\n{}\nCOM1:\n{out}", s.stderr());
    out
}

/// A new empty image in `dir`, its format from the name's extension (`.raw` or `.qcow2`).
fn new_image(dir: &Path, name: &str, size: &str) -> PathBuf {
    let img = dir.join(name);
    let format = if name.ends_with(".qcow2") { "qcow2" } else { "raw" };
    tool("qemu-img", &["create", "-q", "-f", format, img.to_str().unwrap(), size]);
    img
}

/// A paused vmm (`-S`) running the test guest, with QMP on `{dir}/qmp.sock`, plus `extra`.
fn paused_vmm_with_qmp(extra: &[&str]) -> Server {
    let kernel = guest();
    let mut args = vec!["-S", "-kernel", kernel.to_str().unwrap(), "-display", "none"];
    args.extend(["-m", "128", "-qmp", "unix:{dir}/qmp.sock,server=on,wait=off"]);
    args.extend(extra);
    Server::vmm(&args)
}

#[test]
fn drive_none_plus_device_with_serial() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let img = new_image(dir.path(), "a.raw", "1M");
    let i = img.to_str().unwrap();
    tool("qemu-io", &["-f", "raw", "-c", "write -P 0x3c 102400 4096", i]);
    let drive = format!("file={i},format=raw,if=none,id=disk0");
    let out = run_vmm(
        dir.path(),
        "w:8:8:a1,f,r:200:8:3c,id",
        &["-drive", &drive, "-device", "virtio-blk-pci,drive=disk0,id=vd0,serial=E2E-SERIAL"],
    );
    for line in [
        "blk: w 8+8 status 0 used 1 irq 1",
        "blk: f status 0 used 1 irq 2",
        "blk: r 200+8 status 0 used 4097 irq 3 data ok",
        "blk: id status 0 used 21 irq 4 serial \"E2E-SERIAL\"",
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line:?} in:\n{out}");
    }
    tool("qemu-io", &["-f", "raw", "-c", "read -P 0xa1 4096 4096", "-c", "read -P 0 0 4096", i]);
}

#[test]
fn drive_if_virtio_on_a_qcow2_overlay_and_hda() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.qcow2");
    let top = dir.path().join("top.qcow2");
    let (b, t) = (base.to_str().unwrap(), top.to_str().unwrap());
    tool("qemu-img", &["create", "-q", "-f", "qcow2", b, "1M"]);
    tool("qemu-io", &["-f", "qcow2", "-c", "write -P 0x3c 102400 4096", b]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", t]);
    let hd = dir.path().join("hd.raw");
    let h = hd.to_str().unwrap();
    tool("qemu-img", &["create", "-q", "-f", "raw", h, "1M"]);
    let drive = format!("file={t},format=qcow2,if=virtio");
    // -hda is the second virtio-blk function (if=virtio devices come in drive order).
    let out = run_vmm(dir.path(), "r:200:8:3c,w:16:8:b2,f", &["-drive", &drive, "-hda", h]);
    assert!(out.contains("blk: r 200+8 status 0 used 4097 irq 1 data ok"), "{out}");
    assert!(out.contains("blk: w 16+8 status 0 used 1 irq 2"), "{out}");
    tool("qemu-io", &["-f", "qcow2", "-c", "read -P 0xb2 8192 4096", "-c", "read -P 0x3c 102400 4096", t]);
    tool("qemu-io", &["-f", "qcow2", "-c", "read -P 0 8192 4096", b]);
    let check = tool("qemu-img", &["check", t]);
    assert!(check.contains("No errors were found"), "{check}");
    let hd_drive = format!("file={h},format=raw,if=ide");
    let out = run_vmm(dir.path(), "w:0:1:c3", &["-drive", &hd_drive, "-drive", &drive]);
    assert!(out.contains("blk: w 0+1 status 0 used 1 irq 1"), "{out}");
    tool("qemu-io", &["-f", "raw", "-c", "read -P 0xc3 0 512", h]);
}

#[test]
fn blockdev_node_as_the_device_drive() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let img = new_image(dir.path(), "n.qcow2", "1M");
    let i = img.to_str().unwrap();
    tool("qemu-io", &["-f", "qcow2", "-c", "write -P 0x3c 102400 4096", i]);
    let blockdev = format!("driver=qcow2,node-name=n0,file.driver=file,file.filename={i}");
    let out = run_vmm(
        dir.path(),
        "r:200:8:3c,w:24:8:d4,f",
        &["-blockdev", &blockdev, "-device", "virtio-blk-pci,drive=n0,id=vd0"],
    );
    assert!(out.contains("blk: r 200+8 status 0 used 4097 irq 1 data ok"), "{out}");
    assert!(out.contains("blk: w 24+8 status 0 used 1 irq 2"), "{out}");
    tool("qemu-io", &["-f", "qcow2", "-c", "read -P 0xd4 12288 4096", i]);
    let check = tool("qemu-img", &["check", i]);
    assert!(check.contains("No errors were found"), "{check}");
}

/// Reads messages until the event `name` arrives; returns it.
fn wait_event(c: &mut proto_tests::Conn, name: &str) -> Value {
    loop {
        let v = c.recv();
        if v["event"] == name {
            return v;
        }
    }
}

/// A vmm running `ops` against a fresh 1 MiB raw image whose file the host cannot write
/// beyond 64 KiB (prlimit on the running process: writes there fail with EFBIG), with
/// `drive_opts` added to the drive. Returns the server, its QMP connection (negotiated, VM
/// running), the image and the guest's serial log.
fn vmm_with_a_write_limit(
    dir: &Path,
    ops: &str,
    drive_opts: &str,
) -> (Server, proto_tests::Conn, PathBuf, PathBuf) {
    let img = new_image(dir, "a.raw", "1M");
    let i = img.to_str().unwrap();
    let drive = format!("file={i},format=raw,if=none,id=d0{drive_opts}");
    let (s, mut c, com1) = guest_on_one_disk(dir, &drive, ops);
    tool("prlimit", &["--pid", &s.child.id().to_string(), "--fsize=65536:unlimited"]);
    let r = c.execute("query-block", None);
    assert_eq!(r["return"][0]["io-status"], "ok", "{r}");
    c.execute("cont", None);
    (s, c, img, com1)
}

/// `werror=enospc` (the default) reports a write error that is not ENOSPC to the guest
/// (VIRTIO_BLK_S_IOERR) with a BLOCK_IO_ERROR event; the VM keeps running, the drive's
/// io-status stays `ok` (QEMU sets it only when it stops), and the bytes before the limit are
/// written.
#[test]
fn host_write_error_is_reported_to_the_guest() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let (s, mut c, img, com1) = vmm_with_a_write_limit(dir.path(), "w:8:8:a1,w:1024:8:b2", "");
    let ev = wait_event(&mut c, "BLOCK_IO_ERROR");
    let node = ev["data"]["node-name"].as_str().unwrap_or_default().to_string();
    assert!(node.starts_with("#block"), "{ev}");
    assert_eq!(
        ev["data"],
        json!({"device": "d0", "node-name": node, "operation": "write", "action": "report",
               "nospace": false, "reason": "File too large"})
    );
    let out = wait_for_file_text(&com1, "blk: done", Duration::from_secs(60));
    assert!(out.contains("blk: w 8+8 status 0 used 1 irq 1"), "{out}");
    assert!(out.contains("blk: w 1024+8 status 1 used 1 irq 2"), "{out}");
    let r = c.execute("query-block", None);
    assert_eq!(r["return"][0]["io-status"], "ok", "{r}");
    drop(c);
    drop(s);
    let i = img.to_str().unwrap();
    tool("qemu-io", &["-f", "raw", "-c", "read -P 0xa1 4096 4096", "-c", "read -P 0 524288 4096", i]);
}

/// `werror=stop`: the failed write stops the VM in `io-error` (BLOCK_IO_ERROR, then STOP), the
/// drive shows `io-status: failed`, the guest sees nothing; once the host can write again,
/// `cont` resets the io-status and the held request is served: the guest gets OK and the data
/// is on disk. Nothing is lost.
#[test]
fn werror_stop_holds_the_request_until_cont() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let (s, mut c, img, com1) = vmm_with_a_write_limit(dir.path(), "w:8:8:a1,w:1024:8:b2", ",werror=stop");
    let ev = wait_event(&mut c, "BLOCK_IO_ERROR");
    assert_eq!(ev["data"]["action"], "stop", "{ev}");
    assert_eq!(ev["data"]["operation"], "write", "{ev}");
    wait_event(&mut c, "STOP");
    let r = c.execute("query-status", None);
    assert_eq!(r["return"], json!({"running": false, "singlestep": false, "status": "io-error"}));
    let r = c.execute("query-block", None);
    assert_eq!(r["return"][0]["io-status"], "failed", "{r}");
    let r = c.execute("human-monitor-command", Some(json!({"command-line": "info status"})));
    assert_eq!(r["return"], "VM status: paused (io-error)\r\n");
    let out = std::fs::read_to_string(&com1).unwrap_or_default();
    assert!(!out.contains("blk: w 1024+8"), "the guest must not see the held request:\n{out}");
    tool("prlimit", &["--pid", &s.child.id().to_string(), "--fsize=unlimited:unlimited"]);
    c.send(&json!({"execute": "cont"}));
    assert_eq!(wait_event(&mut c, "RESUME")["event"], "RESUME");
    assert_eq!(c.recv_reply(), json!({"return": {}}));
    let out = wait_for_file_text(&com1, "blk: done", Duration::from_secs(60));
    assert!(out.contains("blk: w 8+8 status 0 used 1 irq 1"), "{out}");
    assert!(out.contains("blk: w 1024+8 status 0 used 1 irq 2"), "{out}");
    let r = c.execute("query-block", None);
    assert_eq!(r["return"][0]["io-status"], "ok", "{r}");
    drop(c);
    drop(s);
    let i = img.to_str().unwrap();
    tool("qemu-io", &["-f", "raw", "-c", "read -P 0xa1 4096 4096", "-c", "read -P 0xb2 524288 4096", i]);
}

/// `qemu-io -r` finds every `read -P` pattern in the qcow2 `image`, and `qemu-img check` is clean.
fn qcow2_holds(image: &str, reads: &[&str]) {
    let mut args = vec!["-f", "qcow2", "-r"];
    for r in reads {
        args.extend(["-c", r]);
    }
    args.push(image);
    tool("qemu-io", &args);
    let check = tool("qemu-img", &["check", image]);
    assert!(check.contains("No errors were found"), "{check}");
}

/// The test guest running `ops` on one virtio-blk disk (`-drive DRIVE` as `d0`, device `vd0`),
/// paused (`-S`) and kept after power-off, its QMP negotiated; COM1 goes to `dir/com1.txt`.
fn guest_on_one_disk(dir: &Path, drive: &str, ops: &str) -> (Server, proto_tests::Conn, PathBuf) {
    let com1 = dir.join("com1.txt");
    let serial = format!("file:{}", com1.display());
    let append = format!("action=blk quiet ops={ops}");
    let mut s = paused_vmm_with_qmp(&[
        "-no-shutdown",
        "-append",
        &append,
        "-serial",
        &serial,
        "-drive",
        drive,
        "-device",
        "virtio-blk-pci,drive=d0,id=vd0",
    ]);
    let mut c = s.connect_unix("qmp.sock");
    c.negotiate();
    (s, c, com1)
}

/// A paused vmm whose virtio-blk disk is the qcow2 `top`; the guest runs `ops` once `cont`ed.
fn guest_on_a_chain(dir: &Path, top: &Path, ops: &str) -> (Server, proto_tests::Conn, PathBuf) {
    guest_on_one_disk(dir, &format!("file={},format=qcow2,if=none,id=d0", top.display()), ops)
}

/// Guest writes while an active commit mirrors (READY), then the pivot: every write the guest
/// saw complete is in the base, beside the base's own data.
#[test]
fn guest_writes_during_an_active_commit_land_in_the_base() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = (dir.path().join("base.qcow2"), dir.path().join("top.qcow2"));
    let (b, t) = (base.to_str().unwrap(), top.to_str().unwrap());
    tool("qemu-img", &["create", "-q", "-f", "qcow2", b, "1M"]);
    tool("qemu-io", &["-f", "qcow2", "-c", "write -P 0x11 0 64k", b]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", t]);
    tool("qemu-io", &["-f", "qcow2", "-c", "write -P 0x22 64k 64k", t]);
    let (s, mut c, com1) = guest_on_a_chain(dir.path(), &top, "w:0:8:a1,w:512:8:b2,f");
    let r = c.execute("block-commit", Some(json!({"device": "d0", "job-id": "cm0"})));
    assert_eq!(r, json!({"return": {}}));
    wait_event(&mut c, "BLOCK_JOB_READY");
    assert_eq!(c.execute("cont", None), json!({"return": {}}));
    let out = wait_for_file_text(&com1, "blk: done", Duration::from_secs(60));
    for line in ["blk: w 0+8 status 0", "blk: w 512+8 status 0", "blk: f status 0"] {
        assert!(out.contains(line), "missing {line:?}:\n{out}");
    }
    assert_eq!(c.execute("block-job-complete", Some(json!({"device": "cm0"}))), json!({"return": {}}));
    let done = wait_event(&mut c, "BLOCK_JOB_COMPLETED");
    assert!(done["data"].get("error").is_none(), "{done}");
    let r = c.execute("query-block", None);
    assert_eq!(r["return"][0]["inserted"]["file"], b, "the drive pivoted to the base: {r}");
    c.execute("quit", None);
    drop(c);
    drop(s);
    qcow2_holds(
        b,
        &[
            "read -P 0xa1 0 4k",
            "read -P 0x11 4k 60k",
            "read -P 0x22 64k 64k",
            "read -P 0xb2 256k 4k",
            "read -P 0 260k 764k",
        ],
    );
}

/// Guest writes while a (rate-limited) stream copies the backing chain into the top: the top
/// ends with no backing file and holds the guest's writes over the chain's data.
#[test]
fn guest_writes_during_a_stream_land_in_the_top() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.qcow2");
    let mid = dir.path().join("mid.qcow2");
    let top = dir.path().join("top.qcow2");
    let (b, m, t) = (base.to_str().unwrap(), mid.to_str().unwrap(), top.to_str().unwrap());
    tool("qemu-img", &["create", "-q", "-f", "qcow2", b, "1M"]);
    tool("qemu-io", &["-f", "qcow2", "-c", "write -P 0x11 0 512k", b]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", "-b", b, "-F", "qcow2", m]);
    tool("qemu-io", &["-f", "qcow2", "-c", "write -P 0x22 256k 256k", m]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", "-b", m, "-F", "qcow2", t]);
    let (s, mut c, com1) = guest_on_a_chain(dir.path(), &top, "w:0:8:a1,w:1024:8:b2,w:1536:8:c3,f");
    // 1 MiB at 512 KiB/s: the job is still copying while the guest writes.
    let r = c.execute("block-stream", Some(json!({"device": "d0", "job-id": "st0", "speed": 524288})));
    assert_eq!(r, json!({"return": {}}));
    assert_eq!(c.execute("cont", None), json!({"return": {}}));
    let out = wait_for_file_text(&com1, "blk: done", Duration::from_secs(60));
    for line in ["blk: w 0+8 status 0", "blk: w 1024+8 status 0", "blk: w 1536+8 status 0", "blk: f status 0"]
    {
        assert!(out.contains(line), "missing {line:?}:\n{out}");
    }
    let r = c.execute("query-block-jobs", None);
    assert_eq!(r["return"][0]["device"], "st0", "the guest wrote while the job ran: {r}");
    let done = wait_event(&mut c, "BLOCK_JOB_COMPLETED");
    assert!(done["data"].get("error").is_none(), "{done}");
    c.execute("quit", None);
    drop(c);
    drop(s);
    let info = tool("qemu-img", &["info", t]);
    assert!(!info.contains("backing file:"), "{info}");
    qcow2_holds(
        t,
        &[
            "read -P 0xa1 0 4k",
            "read -P 0x11 4k 252k",
            "read -P 0x22 256k 256k",
            "read -P 0xb2 512k 4k",
            "read -P 0 516k 252k",
            "read -P 0xc3 768k 4k",
            "read -P 0 772k 252k",
        ],
    );
}

/// The guest's requests are counted per drive as QEMU's `query-blockstats` shows them: bytes,
/// operations, an invalid one (beyond the end), a discard; the image file's own node has the
/// highest write offset and its discard counters; `info blockstats` prints the drive's line.
#[test]
fn blockstats_count_the_guests_requests() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let img = new_image(dir.path(), "a.raw", "1M");
    let i = img.to_str().unwrap();
    let drive = format!("file={i},format=raw,if=none,id=d0,discard=unmap");
    let ops = "w:8:8:a1,r:8:8:a1,r:0:1:00,f,d:64:8,r:4096:8:00";
    let (_s, mut c, com1) = guest_on_one_disk(dir.path(), &drive, ops);
    let r = c.execute("query-blockstats", None);
    assert_eq!(r["return"][0]["stats"]["rd_operations"], 0, "{r}");
    assert!(r["return"][0]["stats"].get("idle_time_ns").is_none(), "{r}");
    c.execute("cont", None);
    wait_for_file_text(&com1, "blk: done", Duration::from_secs(60));
    let r = c.execute("query-blockstats", None);
    let d = &r["return"][0];
    assert_eq!(
        (d["device"].as_str(), d["qdev"].as_str()),
        (Some("d0"), Some("/machine/peripheral/vd0/virtio-backend"))
    );
    let st = &d["stats"];
    let n = |k: &str| st[k].as_i64().unwrap_or(-1);
    assert_eq!((n("wr_bytes"), n("wr_operations")), (4096, 1), "{st}");
    assert_eq!((n("rd_bytes"), n("rd_operations")), (4096 + 512, 2), "{st}");
    assert_eq!((n("flush_operations"), n("unmap_operations"), n("unmap_bytes")), (1, 1, 4096), "{st}");
    assert_eq!(n("invalid_rd_operations"), 1, "{st}");
    assert_eq!(n("failed_wr_operations"), 0, "{st}");
    assert_eq!(n("wr_highest_offset"), 64 * 512 + 4096, "{st}");
    assert!(n("idle_time_ns") >= 0 && n("rd_total_time_ns") > 0, "{st}");
    assert_eq!((st["account_invalid"].as_bool(), st["account_failed"].as_bool()), (Some(true), Some(true)));
    let parent = &d["parent"];
    assert_eq!(parent["driver-specific"]["driver"], "file", "{parent}");
    assert_eq!(parent["driver-specific"]["discard-nb-ok"], 1, "{parent}");
    assert_eq!(parent["stats"]["wr_highest_offset"], 64 * 512 + 4096, "{parent}");
    assert_eq!(parent["stats"]["account_invalid"], false, "{parent}");
    let r = c.execute("query-blockstats", Some(json!({"query-nodes": true})));
    let nodes = r["return"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{r}");
    assert!(nodes.iter().all(|n| n.get("device").is_none() && n["stats"]["rd_operations"] == 0), "{r}");
    let r = c.execute("human-monitor-command", Some(json!({"command-line": "info blockstats"})));
    let line = r["return"].as_str().unwrap_or_default();
    assert!(
        line.starts_with(
            "d0: rd_bytes=4608 wr_bytes=4096 rd_operations=2 wr_operations=1 flush_operations=1 "
        ),
        "{line}"
    );
}

/// `block_set_io_throttle` holds the guest's reads to the limit; `stop` does not wait for the
/// held requests (they go through while the VM pauses, as in QEMU's drain); lifting the limit
/// lets the rest run at full speed.
#[test]
fn io_limits_slow_the_guest_and_never_block_stop() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let img = new_image(dir.path(), "a.raw", "4M");
    let i = img.to_str().unwrap();
    let drive = format!("file={i},format=raw,if=none,id=d0");
    // 16 reads of 64 KiB: 1 MiB, which takes about 15 s at 64 KiB/s.
    let ops: Vec<String> = (0..16).map(|k| format!("r:{}:128:00", k * 128)).collect();
    let (_s, mut c, com1) = guest_on_one_disk(dir.path(), &drive, &ops.join(","));
    let limit = |bps: i64| json!({"id": "vd0", "bps": bps, "bps_rd": 0, "bps_wr": 0, "iops": 0, "iops_rd": 0, "iops_wr": 0});
    assert_eq!(c.execute("block_set_io_throttle", Some(limit(64 << 10))), json!({"return": {}}));
    let r = c.execute("query-block", None);
    assert_eq!(
        (r["return"][0]["inserted"]["bps"].as_i64(), r["return"][0]["inserted"]["group"].as_str()),
        (Some(64 << 10), Some("vd0"))
    );
    c.execute("cont", None);
    std::thread::sleep(Duration::from_secs(2));
    let out = std::fs::read_to_string(&com1).unwrap_or_default();
    let done = out.lines().filter(|l| l.starts_with("blk: r ")).count();
    assert!(done < 16, "the limit did not hold the guest back:\n{out}");
    let t = std::time::Instant::now();
    assert_eq!(c.execute("stop", None), json!({"return": {}}));
    assert!(t.elapsed() < Duration::from_secs(5), "stop waited {:?} on the I/O limit", t.elapsed());
    assert_eq!(c.execute("block_set_io_throttle", Some(limit(0))), json!({"return": {}}));
    c.execute("cont", None);
    let out = wait_for_file_text(&com1, "blk: done", Duration::from_secs(30));
    assert_eq!(
        out.lines().filter(|l| l.starts_with("blk: r ") && l.contains("status 0")).count(),
        16,
        "{out}"
    );
    let r = c.execute("query-block", None);
    assert_eq!(r["return"][0]["inserted"]["bps"], 0, "{r}");
    assert!(r["return"][0]["inserted"].get("group").is_none(), "{r}");
}

#[test]
fn query_pci_and_info_pci() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let img = new_image(dir.path(), "a.raw", "1M");
    let drive = format!("file={},format=raw,if=none,id=d0", img.display());
    let mut s =
        paused_vmm_with_qmp(&["-drive", &drive, "-device", "virtio-blk-pci,drive=d0,id=vd0,addr=0x5"]);
    let mut c = s.connect_unix("qmp.sock");
    c.negotiate();
    // The device in QOM, where QEMU has it: its properties, and the backend `query-block` names.
    let qdev = c.execute("query-block", None)["return"][0]["qdev"].clone();
    assert_eq!(qdev, "/machine/peripheral/vd0/virtio-backend");
    let get = |c: &mut proto_tests::Conn, path: &Value, property: &str| {
        c.execute("qom-get", Some(json!({"path": path, "property": property})))["return"].clone()
    };
    assert_eq!(get(&mut c, &qdev, "type"), "virtio-blk-device");
    assert_eq!(get(&mut c, &qdev, "drive"), "d0");
    assert_eq!(get(&mut c, &json!("vd0"), "type"), "virtio-blk-pci");
    assert_eq!(get(&mut c, &json!("vd0"), "addr"), 5 * 8);
    let r = c.execute("qom-list", Some(json!({"path": "/machine/peripheral"})));
    assert_eq!(r["return"][1], json!({"name": "vd0", "type": "child<virtio-blk-pci>"}));
    let tree = c
        .execute("human-monitor-command", Some(json!({"command-line": "info qom-tree /machine/peripheral"})));
    assert_eq!(
        tree["return"],
        "/peripheral (container)\r\n  /vd0 (virtio-blk-pci)\r\n    /virtio-backend (virtio-blk-device)\r\n"
    );
    let r = c.execute("query-pci", None);
    let devices = &r["return"][0]["devices"];
    assert_eq!(r["return"][0]["bus"], 0);
    assert_eq!(devices[0]["class_info"], json!({"desc": "Host bridge", "class": 1536}));
    let vd0 = &devices[1];
    assert_eq!(vd0["slot"], 5);
    assert_eq!(vd0["qdev_id"], "vd0");
    assert_eq!(
        vd0["id"],
        json!({"device": 0x1042, "vendor": 0x1af4, "subsystem": 0x1100, "subsystem-vendor": 0x1af4})
    );
    assert_eq!(vd0["class_info"], json!({"desc": "SCSI controller", "class": 256}));
    assert_eq!(vd0["irq_pin"], 0);
    assert!(vd0.get("irq").is_none());
    let regions = vd0["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2);
    assert_eq!(regions[0]["bar"], 1);
    assert_eq!(regions[0]["size"], 4096);
    assert_eq!(regions[1]["bar"], 4);
    assert_eq!(
        (regions[1]["mem_type_64"].clone(), regions[1]["prefetch"].clone()),
        (json!(true), json!(true))
    );
    let addr = |r: &Value| r["address"].as_i64().unwrap();
    let hmp = c.execute("human-monitor-command", Some(json!({"command-line": "info pci"})));
    let text = hmp["return"].as_str().unwrap();
    let expected = format!(
        "  Bus  0, device   5, function 0:\r\n    SCSI controller: PCI device 1af4:1042\r\n      PCI subsystem 1af4:1100\r\n      BAR1: 32 bit memory at 0x{:08x} [0x{:08x}].\r\n      BAR4: 64 bit prefetchable memory at 0x{:08x} [0x{:08x}].\r\n      id \"vd0\"\r\n",
        addr(&regions[0]),
        addr(&regions[0]) + 4095,
        addr(&regions[1]),
        addr(&regions[1]) + 16383
    );
    assert!(
        text.starts_with("  Bus  0, device   0, function 0:\r\n    Host bridge: PCI device 1b36:0008\r\n"),
        "{text}"
    );
    assert!(text.ends_with(&expected), "{text}");
    c.execute("quit", None);
    assert_eq!(s.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn command_line_errors_are_qemus() {
    let dir = tempfile::tempdir().unwrap();
    let img = new_image(dir.path(), "a.raw", "1M");
    let drive = format!("file={},format=raw,if=none,id=d0", img.display());
    let virtio = format!("file={},format=raw,if=virtio", img.display());
    let werror_bogus = format!("{drive},werror=bogus");
    let rerror_enospc = format!("{drive},rerror=enospc");
    let cases: &[(&[&str], &str)] = &[
        (&["-device", "virtio-blk-pci"], "-device virtio-blk-pci: drive property not set"),
        (
            &["-device", "virtio-blk-pci,drive=nope"],
            "-device virtio-blk-pci,drive=nope: Property 'virtio-blk-device.drive' can't find value 'nope'",
        ),
        (
            &["-drive", &drive, "-device", "virtio-blk-pci,drive=d0,bogus=1"],
            "Property 'virtio-blk-pci.bogus' not found",
        ),
        (
            &["-drive", &drive, "-device", "virtio-blk-pci,drive=d0", "-device", "virtio-blk-pci,drive=d0"],
            "Drive 'd0' is already in use by another device",
        ),
        (&["-device", "foo"], "-device foo: 'foo' is not a valid device model name"),
        (
            &[
                "-drive",
                &drive,
                "-device",
                "virtio-blk-pci,drive=d0,id=a",
                "-device",
                "virtio-blk-pci,drive=d0,id=a",
            ],
            "Duplicate ID 'a' for device",
        ),
        (&["-M", "none", "-drive", &virtio], "No 'PCI' bus found for device 'virtio-blk-pci'"),
        (&["-drive", &werror_bogus], "'bogus' invalid write error action"),
        (&["-drive", &rerror_enospc], "'enospc' invalid read error action"),
        (
            &["-drive", &drive, "-device", "virtio-blk-pci,drive=d0,werror=bogus"],
            "Parameter 'werror' does not accept value 'bogus'",
        ),
    ];
    for (args, want) in cases {
        let out = Command::new(binary("vmm")).args(*args).args(["-display", "none"]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in:\n{err}");
    }
}

/// QEMU's own schema types (the `qapi` crate, QEMU 9.1) parse our `query-pci` reply.
#[tokio::test]
async fn typed_client_parses_query_pci() {
    require_kvm();
    let dir = tempfile::tempdir().unwrap();
    let img = new_image(dir.path(), "a.raw", "1M");
    let drive = format!("file={},format=raw,if=virtio", img.display());
    let mut vmm = paused_vmm_with_qmp(&["-drive", &drive]);
    drop(vmm.connect_unix("qmp.sock"));
    let negotiation = qapi::futures::QmpStreamTokio::open_uds(vmm.path("qmp.sock")).await.expect("connect");
    let stream = negotiation.negotiate().await.expect("negotiate");
    let (service, mut events) = stream.into_parts();
    // The event half drives the socket reads: keep it polled.
    tokio::spawn(async move { while let Some(Ok(_)) = futures::StreamExt::next(&mut events).await {} });
    let buses = service.execute(qapi::qmp::query_pci {}).await.expect("query-pci");
    assert_eq!(buses.len(), 1);
    let devices = &buses[0].devices;
    assert_eq!(devices.len(), 2);
    let blk = &devices[1];
    assert_eq!((blk.id.vendor, blk.id.device, blk.class_info.class), (0x1af4, 0x1042, 0x0100));
    assert_eq!(blk.qdev_id, "");
    assert_eq!(blk.regions.len(), 2);
}
