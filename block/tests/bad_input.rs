//! Corrupt and hostile images: vmm-img gives qemu-img's message and exit code, never
//! panics, and finishes each command in under 2 seconds.

mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// A small valid image with data, made by qemu-img (cluster 0 header, 1 reftable,
/// 2 refblock, 3 L1, 4 L2, 5.. data).
fn base_image(d: &Path) -> Vec<u8> {
    let p = d.join("base.qcow2");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&p), "4M"]);
    qemu_io_ok(s(&p), "write -P 0x11 0 128k");
    std::fs::read(&p).unwrap()
}

fn patch(b: &[u8], off: usize, val: &[u8]) -> Vec<u8> {
    let mut v = b.to_vec();
    if v.len() < off + val.len() {
        v.resize(off + val.len(), 0);
    }
    v[off..off + val.len()].copy_from_slice(val);
    v
}

fn timed(args: &[&str]) -> std::process::Output {
    // Locate (or build) the binary before the clock starts.
    let _ = vmm_img_path();
    let t = Instant::now();
    let o = vmm_img(args);
    assert!(t.elapsed() < Duration::from_secs(2), "vmm-img {args:?} took {:?}", t.elapsed());
    assert!(o.status.code().is_some(), "vmm-img {args:?} died from a signal");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("panicked"), "vmm-img {args:?} panicked: {err}");
    o
}

fn first_err(o: &std::process::Output, prefix: &str) -> String {
    String::from_utf8_lossy(&o.stderr).lines().next().unwrap_or("").replace(prefix, "")
}

#[test]
fn header_errors_match_qemu() {
    let d = tempfile::tempdir().unwrap();
    let b = base_image(d.path());
    let be32 = |v: u32| v.to_be_bytes().to_vec();
    let be64 = |v: u64| v.to_be_bytes().to_vec();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("version4", patch(&b, 4, &be32(4))),
        ("cluster_bits8", patch(&b, 20, &be32(8))),
        ("cluster_bits31", patch(&b, 20, &be32(31))),
        ("l1_too_large", patch(&b, 36, &be32(0x7fff_ffff))),
        ("l1_unaligned", patch(&b, 40, &be64(0x12345))),
        ("reftable_unaligned", patch(&b, 48, &be64(0x12345))),
        ("reftable_too_large", patch(&b, 56, &be32(0x7fff_ffff))),
        ("snapshots_too_many", patch(&b, 60, &be32(0x7fff_ffff))),
        ("snapshots_unaligned", patch(&b, 64, &be64(0x12345))),
        ("unknown_incompat", patch(&b, 72, &be64(1 << 20))),
        ("refcount_order7", patch(&b, 96, &be32(7))),
        ("header_short", patch(&b, 100, &be32(50))),
        ("header_long", patch(&b, 100, &be32(0x20000))),
        ("backing_offset", patch(&b, 8, &be64(0x20000))),
        ("too_big", patch(&b, 24, &be64(1 << 62))),
        ("compression_bit", patch(&b, 104, &[1])),
        ("compression_type", patch(&patch(&b, 104, &[5]), 72, &be64(8))),
        ("encryption3", patch(&b, 32, &be32(3))),
        ("truncated", b[..50].to_vec()),
    ];
    for (name, bytes) in cases {
        let p = d.path().join(format!("{name}.qcow2"));
        std::fs::write(&p, &bytes).unwrap();
        for cmd in [&["info", "-f", "qcow2"][..], &["check", "-f", "qcow2"][..]] {
            let mut args = cmd.to_vec();
            args.push(s(&p));
            let v = timed(&args);
            let q = qemu_img(&args);
            assert_eq!(v.status.code(), q.status.code(), "{name} {cmd:?}");
            assert_eq!(first_err(&v, "vmm-img: "), first_err(&q, "qemu-img: "), "{name} {cmd:?}");
        }
    }
    // not qcow2 at all
    let p = d.path().join("magic.img");
    std::fs::write(&p, patch(&b, 0, &[0, 0, 0, 0])).unwrap();
    let v = timed(&["info", "-f", "qcow2", s(&p)]);
    assert_eq!(
        first_err(&v, "vmm-img: "),
        first_err(&qemu_img(&["info", "-f", "qcow2", s(&p)]), "qemu-img: ")
    );
}

#[test]
fn hostile_tables_fail_cleanly() {
    let d = tempfile::tempdir().unwrap();
    let b = base_image(d.path());
    let l1 = 0x30000usize;
    let l2 = 0x40000usize;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // L2 entry far past EOF
        ("l2_past_eof", patch(&b, l2, &(0x8000_00ff_0000_0000u64).to_be_bytes())),
        // L1 entry pointing past EOF
        ("l1_past_eof", patch(&b, l1, &(0x8000_00ff_0000_0000u64).to_be_bytes())),
        // unaligned L2 table
        ("l1_unaligned_entry", patch(&b, l1, &(0x8000_0000_0004_0200u64).to_be_bytes())),
        // unaligned data cluster
        ("l2_unaligned_entry", patch(&b, l2, &(0x8000_0000_0005_0200u64).to_be_bytes())),
        // data cluster pointing at the header
        ("l2_points_at_header", patch(&b, l2, &(0x8000_0000_0000_0000u64 | 0x10000).to_be_bytes())),
        // compressed cluster with garbage
        ("bad_compressed", patch(&b, l2, &(0x4000_0000_0005_0000u64).to_be_bytes())),
        // refcount at its maximum
        ("refcount_max", patch(&b, 0x20000 + 10, &0xffffu16.to_be_bytes())),
        // refcount table entry past EOF
        ("refblock_past_eof", patch(&b, 0x10000, &(0x00ff_0000_0000u64).to_be_bytes())),
        // L1 covering every entry with the same L2 table
        ("l1_all_same", {
            let mut v = b.clone();
            for i in 0..16 {
                v[l1 + i * 8..l1 + i * 8 + 8].copy_from_slice(&(0x8000_0000_0004_0000u64).to_be_bytes());
            }
            v
        }),
    ];
    for (name, bytes) in cases {
        let p = d.path().join(format!("{name}.qcow2"));
        let out = d.path().join(format!("{name}.raw"));
        std::fs::write(&p, &bytes).unwrap();
        let v = timed(&["check", s(&p)]);
        let q = qemu_img(&["check", s(&p)]);
        assert!(matches!(v.status.code(), Some(0..=3)), "{name}: check exit {:?}", v.status.code());
        if name != "bad_compressed" {
            assert_eq!(v.status.code(), q.status.code(), "{name}: check exit code");
        }
        let v = timed(&["convert", "-O", "raw", s(&p), s(&out)]);
        let q = qemu_img(&["convert", "-O", "raw", s(&p), s(&d.path().join("q.raw"))]);
        assert_eq!(
            v.status.success(),
            q.status.success(),
            "{name}: convert: {} / {}",
            String::from_utf8_lossy(&v.stderr),
            String::from_utf8_lossy(&q.stderr)
        );
        timed(&["info", s(&p)]);
        timed(&["map", "--output=json", s(&p)]);
        timed(&["snapshot", "-c", "x", s(&p)]);
    }
}

#[test]
fn backing_chain_errors() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.qcow2");
    let b = d.path().join("b.qcow2");
    let m = d.path().join("m.qcow2");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&a), "1M"]);
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", s(&b)]);
    qemu_img_ok(&["rebase", "-u", "-b", "b.qcow2", "-F", "qcow2", s(&a)]);
    let v = timed(&["info", "--backing-chain", s(&b)]);
    let q = qemu_img(&["info", "--backing-chain", s(&b)]);
    assert_eq!(v.status.code(), q.status.code());
    assert_eq!(first_err(&v, "vmm-img: "), first_err(&q, "qemu-img: "));
    let v = timed(&["convert", "-O", "raw", s(&b), s(&d.path().join("o.raw"))]);
    assert_eq!(v.status.code(), Some(1));
    assert!(first_err(&v, "").contains("infinite loop"), "{}", first_err(&v, ""));
    // the same file as its own backing
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&m), "1M"]);
    qemu_img_ok(&["rebase", "-u", "-b", "m.qcow2", "-F", "qcow2", s(&m)]);
    let v = timed(&["convert", "-O", "raw", s(&m), s(&d.path().join("o.raw"))]);
    assert_eq!(v.status.code(), Some(1));
    // missing backing file
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-u", "-b", "missing.qcow2", "-F", "qcow2", s(&m), "1M"]);
    for args in [vec!["convert", "-O", "raw", s(&m), "/dev/null"], vec!["info", "--backing-chain", s(&m)]] {
        let v = timed(&args);
        let q = qemu_img(&args);
        assert_eq!(v.status.code(), q.status.code(), "{args:?}");
        assert_eq!(first_err(&v, "vmm-img: "), first_err(&q, "qemu-img: "), "{args:?}");
    }
    // info without the chain still works
    assert!(vmm_img_ok(&["info", s(&m)]).contains("backing file: missing.qcow2"));
}
