//! Images made by qemu-img / qemu-io (3-layer chain with distinct patterns, zero writes,
//! discards, compressed clusters, internal snapshots) are read, converted, committed and
//! rebased by vmm-img with the guest-visible content exactly preserved.

mod common;
use common::*;
use std::path::Path;

/// base <- mid <- top, 8 MiB, as in QEMU's iotests idiom.
fn build_chain(d: &Path) -> (String, String, String) {
    let base = d.join("base.qcow2");
    let mid = d.join("mid.qcow2");
    let top = d.join("top.qcow2");
    let (b, m, t) = (s(&base).to_string(), s(&mid).to_string(), s(&top).to_string());
    qemu_img_ok(&["create", "-q", "-f", "qcow2", &b, "8M"]);
    qemu_io_ok(&b, "write -P 0x11 0 1M");
    qemu_io_ok(&b, "write -P 0x22 1M 1M");
    qemu_io_ok(&b, "write -c -P 0x55 6M 64k");
    qemu_io_ok(&b, "write -c -P 0x56 6400k 64k");
    qemu_img_ok(&["snapshot", "-c", "base-snap", &b]);
    qemu_io_ok(&b, "write -P 0x23 7M 64k");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", &m]);
    qemu_io_ok(&m, "write -P 0x33 2M 1M");
    qemu_io_ok(&m, "write -z 0 64k");
    qemu_io_ok(&m, "discard 1M 64k");
    qemu_io_ok(&m, "write -P 0x34 4000k 3k");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", &t]);
    qemu_io_ok(&t, "write -P 0x44 3M 1M");
    qemu_io_ok(&t, "write -P 0x45 1536k 4k");
    qemu_io_ok(&t, "write -z 2560k 128k");
    qemu_img_ok(&["snapshot", "-c", "top-snap", &t]);
    qemu_io_ok(&t, "write -P 0x46 5M 64k");
    (b, m, t)
}

/// Guest-visible content of `img` as a raw file made by qemu-img (the reference).
fn reference_raw(img: &str, out: &Path) -> String {
    qemu_img_ok(&["convert", "-O", "raw", img, s(out)]);
    s(out).to_string()
}

fn assert_same(a: &str, afmt: &str, b: &str, bfmt: &str) {
    let o = qemu_img(&["compare", "-f", afmt, "-F", bfmt, a, b]);
    assert!(
        o.status.success(),
        "qemu-img compare {a} {b}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

fn assert_clean(img: &str) {
    let o = qemu_img(&["check", img]);
    assert!(
        o.status.code() == Some(0),
        "qemu-img check {img}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn info_map_measure_match_qemu() {
    let d = tempfile::tempdir().unwrap();
    let (_b, _m, t) = build_chain(d.path());
    let ours: serde_json::Value =
        serde_json::from_str(&vmm_img_ok(&["info", "--output=json", "--backing-chain", &t])).unwrap();
    let theirs: serde_json::Value =
        serde_json::from_str(&qemu_img_ok(&["info", "--output=json", "--backing-chain", &t])).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(vmm_img_ok(&["info", "--backing-chain", &t]), qemu_img_ok(&["info", "--backing-chain", &t]));
    assert_eq!(vmm_img_ok(&["map", "--output=json", &t]), qemu_img_ok(&["map", "--output=json", &t]));
    for args in [
        vec!["measure", "-O", "qcow2", t.as_str()],
        vec!["measure", "--output=json", "-O", "qcow2", "-o", "cluster_size=4k", t.as_str()],
        vec!["measure", "-O", "raw", t.as_str()],
        vec!["measure", "--size", "1G", "-O", "qcow2"],
    ] {
        assert_eq!(vmm_img_ok(&args), qemu_img_ok(&args), "{args:?}");
    }
    assert_eq!(vmm_img_ok(&["snapshot", "-l", &t]), qemu_img_ok(&["snapshot", "-l", &t]));
    for img in [&_b, &_m, &t] {
        for args in [vec!["check", img.as_str()], vec!["check", "--output=json", img.as_str()]] {
            let v = vmm_img(&args);
            let q = qemu_img(&args);
            assert_eq!(v.stdout, q.stdout, "{args:?}");
            assert_eq!(v.status.code(), q.status.code(), "{args:?}");
        }
    }
}

#[test]
fn convert_preserves_content() {
    let d = tempfile::tempdir().unwrap();
    let (_b, _m, t) = build_chain(d.path());
    let reference = reference_raw(&t, &d.path().join("ref.raw"));
    let raw = d.path().join("out.raw");
    vmm_img_ok(&["convert", "-O", "raw", &t, s(&raw)]);
    assert_same(&reference, "raw", s(&raw), "raw");
    let q = d.path().join("out.qcow2");
    vmm_img_ok(&["convert", "-p", "-O", "qcow2", &t, s(&q)]);
    assert_clean(s(&q));
    assert_same(&reference, "raw", s(&q), "qcow2");
    let c = d.path().join("out-c.qcow2");
    vmm_img_ok(&["convert", "-c", "-O", "qcow2", "-o", "compat=0.10", &t, s(&c)]);
    assert_clean(s(&c));
    assert_same(&reference, "raw", s(&c), "qcow2");
    // and back: raw -> qcow2 with small clusters and 1-bit refcounts
    let small = d.path().join("small.qcow2");
    vmm_img_ok(&[
        "convert",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "-o",
        "cluster_size=512,refcount_bits=1",
        s(&raw),
        s(&small),
    ]);
    assert_clean(s(&small));
    assert_same(&reference, "raw", s(&small), "qcow2");
    // our own compare agrees
    assert_eq!(
        vmm_img_ok(&["compare", "-f", "raw", "-F", "qcow2", &reference, s(&small)]),
        "Images are identical.\n"
    );
}

#[test]
fn commit_preserves_content() {
    let d = tempfile::tempdir().unwrap();
    let (b, m, t) = build_chain(d.path());
    let reference = reference_raw(&t, &d.path().join("ref.raw"));
    vmm_img_ok(&["commit", &t]);
    assert_clean(&m);
    assert_clean(&t);
    assert_same(&reference, "raw", &t, "qcow2");
    assert_same(&reference, "raw", &m, "qcow2");
    // top is empty now
    let map = qemu_img_ok(&["map", "--output=json", &t]);
    assert!(!map.contains("\"depth\": 0, \"present\": true"), "{map}");
    // commit everything above base into base, keeping top
    vmm_img_ok(&["commit", "-b", &b, &t]);
    assert_clean(&b);
    assert_same(&reference, "raw", &b, "qcow2");
}

#[test]
fn rebase_preserves_content() {
    let d = tempfile::tempdir().unwrap();
    let (b, _m, t) = build_chain(d.path());
    let reference = reference_raw(&t, &d.path().join("ref.raw"));
    vmm_img_ok(&["rebase", "-p", "-b", "base.qcow2", "-F", "qcow2", &t]);
    assert_clean(&t);
    assert_same(&reference, "raw", &t, "qcow2");
    let info = qemu_img_ok(&["info", &t]);
    assert!(info.contains("backing file: base.qcow2"), "{info}");
    vmm_img_ok(&["rebase", "-b", "", &t]);
    assert_clean(&t);
    assert_same(&reference, "raw", &t, "qcow2");
    assert!(!qemu_img_ok(&["info", &t]).contains("backing file"));
    // unsafe rebase only rewrites the header
    vmm_img_ok(&["rebase", "-u", "-b", "base.qcow2", "-F", "qcow2", &t]);
    let info = qemu_img_ok(&["info", "--output=json", &t]);
    assert!(info.contains("\"backing-filename\": \"base.qcow2\""), "{info}");
    assert_clean(&t);
    let _ = b;
}

#[test]
fn compare_reports_like_qemu() {
    let d = tempfile::tempdir().unwrap();
    let (_b, m, t) = build_chain(d.path());
    for (x, y) in [(&t, &m), (&m, &t)] {
        let ours = vmm_img(&["compare", x, y]);
        let theirs = qemu_img(&["compare", x, y]);
        assert_eq!(ours.stdout, theirs.stdout);
        assert_eq!(ours.status.code(), theirs.status.code());
    }
    let o = vmm_img(&["compare", &t, "/nonexistent.qcow2"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn snapshot_apply_of_qemu_snapshot() {
    let d = tempfile::tempdir().unwrap();
    let (b, _m, _t) = build_chain(d.path());
    vmm_img_ok(&["snapshot", "-a", "base-snap", &b]);
    assert_clean(&b);
    qemu_io_ok(&b, "read -P 0 7M 64k");
    qemu_io_ok(&b, "read -P 0x55 6M 64k");
    qemu_io_ok(&b, "read -P 0x11 0 1M");
    vmm_img_ok(&["snapshot", "-d", "base-snap", &b]);
    assert_clean(&b);
    assert_eq!(vmm_img_ok(&["snapshot", "-l", &b]), "");
}
