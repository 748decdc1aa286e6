//! Images made or changed by vmm-img pass `qemu-img check` and hold the expected content
//! as qemu-io / qemu-img read it.

mod common;
use common::*;

fn assert_clean(img: &str) {
    let o = qemu_img(&["check", img]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "qemu-img check {img}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn create_variants_match_qemu() {
    let d = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["-f", "qcow2"],
        &["-f", "qcow2", "-o", "compat=0.10"],
        &["-f", "qcow2", "-o", "cluster_size=4k,lazy_refcounts=on,refcount_bits=8"],
        &["-f", "qcow2", "-o", "cluster_size=512,refcount_bits=64"],
        &["-f", "qcow2", "-o", "cluster_size=2M,refcount_bits=1"],
        &["-f", "qcow2", "-o", "preallocation=metadata"],
        &["-f", "raw"],
        &["-f", "raw", "-o", "preallocation=full"],
    ];
    for (i, opts) in cases.iter().enumerate() {
        let ours = d.path().join(format!("v{i}.img"));
        let theirs = d.path().join(format!("q{i}.img"));
        let mut a: Vec<&str> = vec!["create"];
        a.extend_from_slice(opts);
        let mut va = a.clone();
        va.extend_from_slice(&[s(&ours), "3M"]);
        let mut qa = a.clone();
        qa.extend_from_slice(&[s(&theirs), "3M"]);
        let out_v = vmm_img_ok(&va);
        let out_q = qemu_img_ok(&qa);
        assert_eq!(out_v.replace(s(&ours), "X"), out_q.replace(s(&theirs), "X"), "{opts:?}");
        let fmt = opts[1];
        if fmt == "qcow2" {
            assert_clean(s(&ours));
            let iv: serde_json::Value =
                serde_json::from_str(&vmm_img_ok(&["info", "--output=json", s(&ours)])).unwrap();
            let iq: serde_json::Value =
                serde_json::from_str(&qemu_img_ok(&["info", "--output=json", s(&theirs)])).unwrap();
            for k in ["virtual-size", "cluster-size", "format-specific", "dirty-flag"] {
                assert_eq!(iv[k], iq[k], "{opts:?} {k}");
            }
        }
        qemu_io_fmt_ok(s(&ours), fmt, "write -P 0x5a 1000k 300k");
        qemu_io_fmt_ok(s(&ours), fmt, "read -P 0x5a 1000k 300k");
        qemu_io_fmt_ok(s(&ours), fmt, "read -P 0 0 1000k");
        if fmt == "qcow2" {
            assert_clean(s(&ours));
        }
    }
}

#[test]
fn create_errors_match_qemu() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("x.qcow2");
    let base = d.path().join("b.qcow2");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&base), "1M"]);
    let cases: Vec<Vec<&str>> = vec![
        vec!["create", "-f", "qcow2", s(&p), "1Q"],
        vec!["create", "-f", "qcow2", "-o", "foo=bar", s(&p), "1M"],
        vec!["create", "-f", "qcow2", "-b", s(&base), s(&p)],
        vec!["create", "-f", "qcow2", "-b", "/nonexistent/m.qcow2", "-F", "qcow2", s(&p)],
        vec!["create", "-f", "qcow2", s(&p)],
        vec!["info", "/nonexistent/x.img"],
        vec!["info", "-f", "bogus", s(&base)],
        vec!["snapshot", "-d", "nope", s(&base)],
        vec!["snapshot", "-a", "nope", s(&base)],
        vec!["commit", s(&base)],
        vec!["rebase", "-u", "-b", "x.qcow2", s(&base)],
        vec!["resize", s(&base), "512k"],
    ];
    for c in cases {
        let v = vmm_img(&c);
        let q = qemu_img(&c);
        let ve = String::from_utf8_lossy(&v.stderr).replace("vmm-img: ", "");
        let qe = String::from_utf8_lossy(&q.stderr).replace("qemu-img: ", "");
        assert_eq!(ve.lines().next(), qe.lines().next(), "{c:?}");
        assert_eq!(v.status.code(), q.status.code(), "{c:?}");
    }
}

#[test]
fn overlay_resize_snapshot_roundtrip() {
    let d = tempfile::tempdir().unwrap();
    let base = d.path().join("base.qcow2");
    let top = d.path().join("top.qcow2");
    let (b, t) = (s(&base), s(&top));
    vmm_img_ok(&["create", "-q", "-f", "qcow2", b, "4M"]);
    qemu_io_ok(b, "write -P 0x11 0 4M");
    vmm_img_ok(&["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", t]);
    assert!(vmm_img_ok(&["info", t]).contains("virtual size: 4 MiB"));
    qemu_io_ok(t, "write -P 0x22 100k 8k");
    qemu_io_ok(t, "read -P 0x11 0 100k");
    qemu_io_ok(t, "read -P 0x22 100k 8k");
    // snapshots made by vmm-img, read by qemu
    vmm_img_ok(&["snapshot", "-c", "one", t]);
    assert_clean(t);
    assert_eq!(vmm_img_ok(&["snapshot", "-l", t]), qemu_img_ok(&["snapshot", "-l", t]));
    qemu_io_ok(t, "write -P 0x33 100k 8k");
    vmm_img_ok(&["snapshot", "-c", "two", t]);
    qemu_io_ok(t, "write -P 0x44 100k 8k");
    vmm_img_ok(&["snapshot", "-a", "one", t]);
    assert_clean(t);
    qemu_io_ok(t, "read -P 0x22 100k 8k");
    qemu_img_ok(&["snapshot", "-a", "two", t]);
    qemu_io_ok(t, "read -P 0x33 100k 8k");
    vmm_img_ok(&["snapshot", "-d", "one", t]);
    vmm_img_ok(&["snapshot", "-d", "2", t]);
    assert_clean(t);
    assert_eq!(qemu_img_ok(&["snapshot", "-l", t]), "");
    // resize
    vmm_img_ok(&["resize", t, "+4M"]);
    assert_clean(t);
    qemu_io_ok(t, "read -P 0 4M 4M");
    qemu_io_ok(t, "write -P 0x66 7M 1M");
    vmm_img_ok(&["resize", "--shrink", t, "6M"]);
    assert_clean(t);
    assert!(qemu_img_ok(&["info", t]).contains("(6291456 bytes)"));
    vmm_img_ok(&["resize", t, "8M"]);
    qemu_io_ok(t, "read -P 0 6M 2M");
    qemu_io_ok(t, "read -P 0x33 100k 8k");
    assert_clean(t);
    // raw resize
    let r = d.path().join("r.raw");
    vmm_img_ok(&["create", "-q", "-f", "raw", s(&r), "1M"]);
    vmm_img_ok(&["resize", "-f", "raw", s(&r), "2M"]);
    assert_eq!(std::fs::metadata(&r).unwrap().len(), 2 << 20);
}

#[test]
fn check_reports_and_repairs_like_qemu() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.qcow2");
    let a = s(&p);
    qemu_img_ok(&["create", "-q", "-f", "qcow2", a, "8M"]);
    qemu_io_ok(a, "write -P 1 0 256k");
    let json_v: serde_json::Value =
        serde_json::from_str(&vmm_img_ok(&["check", "--output=json", a])).unwrap();
    let json_q: serde_json::Value =
        serde_json::from_str(&qemu_img_ok(&["check", "--output=json", a])).unwrap();
    assert_eq!(json_v, json_q);
    // leak: refcount 1 for cluster 12 (beyond everything in use) in refblock 0 at 0x20000
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.resize(13 * 65536, 0);
    bytes[0x20000 + 24..0x20000 + 26].copy_from_slice(&1u16.to_be_bytes());
    std::fs::write(&p, &bytes).unwrap();
    for args in [vec!["check", a], vec!["check", "--output=json", a]] {
        let v = vmm_img(&args);
        let q = qemu_img(&args);
        assert_eq!(v.status.code(), Some(3));
        assert_eq!(v.status.code(), q.status.code());
        assert_eq!(v.stdout, q.stdout, "{args:?}");
        assert_eq!(v.stderr, q.stderr, "{args:?}");
    }
    let v = vmm_img(&["check", "-r", "leaks", a]);
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
    assert_clean(a);
    // corruption: refcount 0 for a data cluster (cluster 4, the first data cluster)
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[0x20000 + 8..0x20000 + 10].copy_from_slice(&0u16.to_be_bytes());
    std::fs::write(&p, &bytes).unwrap();
    let v = vmm_img(&["check", a]);
    let q = qemu_img(&["check", a]);
    assert_eq!(v.status.code(), Some(2));
    assert_eq!(v.status.code(), q.status.code());
    assert_eq!(v.stdout, q.stdout);
    let v = vmm_img(&["check", "-r", "all", a]);
    assert_eq!(v.status.code(), Some(0), "{}", String::from_utf8_lossy(&v.stdout));
    assert_clean(a);
    qemu_io_ok(a, "read -P 1 0 256k");
    // raw has no checks
    let r = d.path().join("r.raw");
    vmm_img_ok(&["create", "-q", "-f", "raw", s(&r), "1M"]);
    assert_eq!(vmm_img(&["check", "-f", "raw", s(&r)]).status.code(), Some(63));
}

#[test]
fn dirty_lazy_refcount_image_is_repaired_on_open() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("lazy.qcow2");
    let a = s(&p);
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-o", "lazy_refcounts=on", a, "4M"]);
    qemu_io_ok(a, "write -P 7 0 256k");
    // simulate a crash with lazy refcounts: dirty bit set, refcount of a data cluster lost
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[79] |= 1;
    bytes[0x20000 + 8..0x20000 + 10].copy_from_slice(&0u16.to_be_bytes());
    std::fs::write(&p, &bytes).unwrap();
    assert!(vmm_img_ok(&["info", "--output=json", a]).contains("\"dirty-flag\": true"));
    vmm_img_ok(&["resize", a, "8M"]);
    assert_clean(a);
    assert!(qemu_img_ok(&["info", "--output=json", a]).contains("\"dirty-flag\": false"));
    qemu_io_ok(a, "read -P 7 0 256k");
}
