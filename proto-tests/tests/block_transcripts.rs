//! Golden block transcripts (`transcripts/block/*.qmp`): snapshots, stream, commit, job verbs,
//! events in QEMU's order and every error text, against `vmm -machine none` with images made by
//! qemu-img/qemu-io. `{img}` in a transcript stands for the image directory.

use std::path::Path;
use std::process::Command;

use proto_tests::{Server, run_transcript, which};

fn tool(name: &str, args: &[&str]) {
    let path = which(name).unwrap_or_else(|| panic!("{name} is not installed (apt-get install qemu-utils)"));
    let out = Command::new(path).args(args).output().unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(out.status.success(), "{name} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// base (0x11 at 0, 0x22 at 1M) <- mid (0x33 at 2M..18M) <- top (0x44 at 20M), 64 MiB, as the
/// recording's chain; plus `d.qcow2` and `ov2.qcow2` (empty), `ov.qcow2` (an overlay of base) and `r.raw`.
fn images(dir: &Path) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    tool("qemu-img", &["create", "-q", "-f", "qcow2", &p("base.qcow2"), "64M"]);
    tool("qemu-io", &["-c", "write -P 0x11 0 1M", "-c", "write -P 0x22 1M 1M", &p("base.qcow2")]);
    tool(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-b", &p("base.qcow2"), "-F", "qcow2", &p("mid.qcow2")],
    );
    tool("qemu-io", &["-c", "write -P 0x33 2M 16M", &p("mid.qcow2")]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", "-b", &p("mid.qcow2"), "-F", "qcow2", &p("top.qcow2")]);
    tool("qemu-io", &["-c", "write -P 0x44 20M 1M", &p("top.qcow2")]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", &p("d.qcow2"), "64M"]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", "-b", &p("base.qcow2"), "-F", "qcow2", &p("ov.qcow2")]);
    tool("qemu-img", &["create", "-q", "-f", "raw", &p("r.raw"), "1M"]);
    tool("qemu-img", &["create", "-q", "-f", "qcow2", &p("ov2.qcow2"), "64M"]);
}

/// Runs `transcripts/block/NAME.qmp` against vmm started with `args` (`{img}` replaced).
fn run(name: &str, args: &[&str]) -> tempfile::TempDir {
    let imgs = tempfile::tempdir().expect("tempdir");
    images(imgs.path());
    let img = imgs.path().to_str().unwrap();
    let path = format!("{}/transcripts/block/{name}.qmp", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")).replace("{img}", img);
    let mut full = vec!["-machine", "none", "-nodefaults", "-qmp", "unix:{dir}/qmp.sock,server=on,wait=off"];
    let args: Vec<String> = args.iter().map(|a| a.replace("{img}", img)).collect();
    full.extend(args.iter().map(String::as_str));
    let mut vmm = Server::vmm(&full);
    let mut conn = vmm.connect_unix("qmp.sock");
    run_transcript(&mut conn, name, &text);
    assert_eq!(vmm.wait_exit(std::time::Duration::from_secs(10)), Some(0), "vmm exit status");
    imgs
}

fn qemu_io_reads(image: &Path, checks: &[&str]) {
    let mut args = vec!["-r".to_string()];
    for c in checks {
        args.push("-c".into());
        args.push(c.to_string());
    }
    args.push(image.to_str().unwrap().into());
    let out = Command::new(which("qemu-io").expect("qemu-io is not installed")).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("verification failed") && out.status.success(), "{}: {text}", image.display());
}

#[test]
fn flow() {
    let imgs = run("flow", &["-drive", "file={img}/d.qcow2,if=none,id=drive0,format=qcow2"]);
    tool("qemu-img", &["check", imgs.path().join("snap5.qcow2").to_str().unwrap()]);
    tool("qemu-img", &["check", imgs.path().join("snap2.qcow2").to_str().unwrap()]);
}

#[test]
fn errors() {
    let imgs = run(
        "errors",
        &[
            "-blockdev",
            "driver=file,node-name=base-file,filename={img}/base.qcow2",
            "-blockdev",
            "driver=qcow2,node-name=base,file=base-file",
            "-blockdev",
            "driver=qcow2,node-name=mid,file.driver=file,file.filename={img}/mid.qcow2,backing=base",
            "-blockdev",
            r#"{"driver": "qcow2", "node-name": "top", "backing": "mid", "file": {"driver": "file", "filename": "{img}/top.qcow2"}}"#,
        ],
    );
    // The cancelled stream left the chain readable as before.
    qemu_io_reads(
        &imgs.path().join("top.qcow2"),
        &[
            "read -P 0x11 0 1M",
            "read -P 0x22 1M 1M",
            "read -P 0x33 2M 16M",
            "read -P 0x44 20M 1M",
            "read -P 0 21M 1M",
        ],
    );
}

#[test]
fn jobs() {
    let imgs = run("jobs", &["-drive", "file={img}/top.qcow2,if=none,id=drive0,format=qcow2,node-name=top"]);
    // stream(top, base-node=base) then active commit + complete: base alone holds everything.
    qemu_io_reads(
        &imgs.path().join("base.qcow2"),
        &[
            "read -P 0x11 0 1M",
            "read -P 0x22 1M 1M",
            "read -P 0x33 2M 16M",
            "read -P 0x44 20M 1M",
            "read -P 0 21M 1M",
        ],
    );
    tool("qemu-img", &["check", imgs.path().join("base.qcow2").to_str().unwrap()]);
}

#[test]
fn hmp_flow() {
    let imgs = run("hmp", &["-drive", "file={img}/top.qcow2,if=none,id=drive0,format=qcow2,node-name=top"]);
    let h2 = imgs.path().join("h2.qcow2");
    qemu_io_reads(
        &h2,
        &[
            "read -P 0x11 0 1M",
            "read -P 0x22 1M 1M",
            "read -P 0x33 2M 16M",
            "read -P 0x44 20M 1M",
            "read -P 0 21M 1M",
            "read -P 0x55 30M 1M",
            "read -P 0 127M 1M",
        ],
    );
    tool("qemu-img", &["check", h2.to_str().unwrap()]);
    tool("qemu-img", &["check", imgs.path().join("hsnap.qcow2").to_str().unwrap()]);
}

#[test]
fn internal_snapshots() {
    let imgs = run(
        "internal",
        &[
            "-drive",
            "file={img}/top.qcow2,if=none,id=drive0,format=qcow2,node-name=top",
            "-blockdev",
            "driver=raw,node-name=r,file.driver=file,file.filename={img}/r.raw",
        ],
    );
    let (ok, out) = {
        let o = Command::new(which("qemu-img").expect("qemu-img"))
            .args(["snapshot", "-l"])
            .arg(imgs.path().join("top.qcow2"))
            .output()
            .unwrap();
        (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string())
    };
    assert!(ok && out.contains(" s2 ") && !out.contains(" s1 ") && !out.contains(" h1 "), "{out}");
    tool("qemu-img", &["check", imgs.path().join("top.qcow2").to_str().unwrap()]);
}

#[test]
fn transaction() {
    let imgs = run(
        "transaction",
        &[
            "-drive",
            "file={img}/d.qcow2,if=none,id=drive0,format=qcow2",
            "-drive",
            "file={img}/ov2.qcow2,if=none,id=drive1,format=qcow2",
        ],
    );
    for image in ["t0.qcow2", "t1.qcow2", "ov2.qcow2", "d.qcow2"] {
        tool("qemu-img", &["check", imgs.path().join(image).to_str().unwrap()]);
    }
}

#[test]
fn drives() {
    run("drives", &[]);
}
