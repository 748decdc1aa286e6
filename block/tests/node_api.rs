//! The node API the machine and block jobs use: chains, block status, concurrent I/O,
//! stream/commit copiers, overlays, backing changes, snapshots, async entry points.

mod common;
use block::jobs::{CommitCopier, StreamCopier, create_overlay};
use block::{Backing, BlockNode, Format, OpenOptions};
use common::*;
use std::sync::Arc;

fn rw() -> OpenOptions {
    OpenOptions::default()
}

/// base(0x11 @0, 0x22 @1M) <- mid(0x33 @2M, zero @0..64k) <- top(0x44 @3M), 8 MiB.
fn chain(d: &std::path::Path) -> (String, String, String) {
    let b = d.join("base.qcow2");
    let m = d.join("mid.qcow2");
    let t = d.join("top.qcow2");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&b), "8M"]);
    qemu_io_ok(s(&b), "write -P 0x11 0 1M");
    qemu_io_ok(s(&b), "write -P 0x22 1M 1M");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", s(&m)]);
    qemu_io_ok(s(&m), "write -P 0x33 2M 1M");
    qemu_io_ok(s(&m), "write -z 0 64k");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2", s(&t)]);
    qemu_io_ok(s(&t), "write -P 0x44 3M 1M");
    (s(&b).into(), s(&m).into(), s(&t).into())
}

fn check_patterns(img: &str) {
    qemu_io_ok(img, "read -P 0 0 64k");
    qemu_io_ok(img, "read -P 0x11 64k 960k");
    qemu_io_ok(img, "read -P 0x22 1M 1M");
    qemu_io_ok(img, "read -P 0x33 2M 1M");
    qemu_io_ok(img, "read -P 0x44 3M 1M");
    qemu_io_ok(img, "read -P 0 4M 4M");
}

fn clean(img: &str) {
    let o = qemu_img(&["check", img]);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn chain_status_and_reads() {
    let d = tempfile::tempdir().unwrap();
    let (_b, _m, t) = chain(d.path());
    let top = BlockNode::open(&t, &OpenOptions::read_only()).unwrap();
    assert_eq!(top.chain().len(), 3);
    let st = top.block_status(1 << 20, 1 << 20).unwrap();
    assert_eq!((st.depth, st.data, st.present), (2, true, true));
    let st = top.block_status(0, 1 << 20).unwrap();
    assert_eq!((st.depth, st.zero, st.data), (1, true, false));
    let st = top.block_status(3 << 20, 1 << 20).unwrap();
    assert_eq!(st.depth, 0);
    let st = top.block_status(5 << 20, 1 << 20).unwrap();
    assert!(!st.present && st.zero);
    let mut b = vec![0u8; 4096];
    top.read(&mut b, (2 << 20) + 100).unwrap();
    assert!(b.iter().all(|&x| x == 0x33));
    assert!(top.write(&b, 0).is_err(), "read-only node accepted a write");
    assert!(top.read(&mut b, 8 << 20).is_err(), "read past the end accepted");
    let info = top.info_recursive().unwrap();
    let v = serde_json::to_value(&info).unwrap();
    assert_eq!(
        v["backing-image"]["backing-image"]["filename"],
        serde_json::json!(format!("{}/base.qcow2", d.path().display()))
    );
}

#[test]
fn concurrent_writers() {
    let d = tempfile::tempdir().unwrap();
    let (_b, _m, t) = chain(d.path());
    let top = BlockNode::open(&t, &rw()).unwrap();
    std::thread::scope(|s| {
        for th in 0..4u64 {
            let top = top.clone();
            s.spawn(move || {
                for i in 0..32u64 {
                    // each thread owns every 4th 16 KiB slot of [4M, 6M): four threads write
                    // into each new cluster at the same time
                    let slot = i * 4 + th;
                    let off = (4 << 20) + slot * 16384 + 512;
                    top.write(&vec![0x60 + th as u8; 4096], off).unwrap();
                    if i % 8 == 0 {
                        top.flush().unwrap();
                    }
                }
            });
        }
    });
    top.flush().unwrap();
    drop(top);
    clean(&t);
    let raw = d.path().join("top.raw");
    qemu_img_ok(&["convert", "-O", "raw", &t, s(&raw)]);
    let content = std::fs::read(&raw).unwrap();
    for slot in 0..128usize {
        let off = (4 << 20) + slot * 16384 + 512;
        let want = 0x60 + (slot % 4) as u8;
        assert!(content[off..off + 4096].iter().all(|&b| b == want), "slot {slot} lost");
        assert!(content[off - 512..off].iter().all(|&b| b == 0), "slot {slot} head");
    }
    qemu_io_ok(&t, "read -P 0x44 3M 1M");
}

#[test]
fn stream_then_drop_link() {
    let d = tempfile::tempdir().unwrap();
    let (b, _m, t) = chain(d.path());
    let top = BlockNode::open(&t, &rw()).unwrap();
    let base = top.chain()[2].clone();
    let mut job = StreamCopier::new(top.clone(), Some(base.clone()), 1 << 20).unwrap().with_workers(2);
    let mut steps = 0;
    while job.step().unwrap() > 0 {
        steps += 1;
        assert!(job.offset() <= job.len());
    }
    assert_eq!(steps, 8);
    job.finish(None).unwrap();
    assert_eq!(top.chain().len(), 2);
    drop(top);
    clean(&t);
    let info = qemu_img_ok(&["info", &t]);
    assert!(info.contains(&format!("backing file: {b}")), "{info}");
    check_patterns(&t);
    // stream the rest: standalone image
    let top = BlockNode::open(&t, &rw()).unwrap();
    let mut job = StreamCopier::new(top.clone(), None, 4 << 20).unwrap();
    while job.step().unwrap() > 0 {}
    job.finish(None).unwrap();
    drop(top);
    clean(&t);
    assert!(!qemu_img_ok(&["info", &t]).contains("backing file"));
    check_patterns(&t);
}

#[test]
fn intermediate_commit_and_relink() {
    let d = tempfile::tempdir().unwrap();
    let (b, m, t) = chain(d.path());
    // reopen with mid and base writable, top on top of them
    let base = BlockNode::open(&b, &rw()).unwrap();
    let mid = BlockNode::open(&m, &OpenOptions { backing: Backing::Node(base.clone()), ..rw() }).unwrap();
    let top = BlockNode::open(&t, &OpenOptions { backing: Backing::Node(mid.clone()), ..rw() }).unwrap();
    let mut job = CommitCopier::new(mid.clone(), base.clone(), 2 << 20).unwrap();
    while job.step().unwrap() > 0 {}
    let base = job.finish().unwrap();
    top.set_backing(Some(base.clone()), Some("base.qcow2"), Some("qcow2")).unwrap();
    top.flush().unwrap();
    drop((top, mid, base));
    clean(&t);
    clean(&b);
    check_patterns(&t);
    assert!(qemu_img_ok(&["info", &t]).contains("backing file: base.qcow2"));
    // the commit errors QEMU gives
    let x = BlockNode::open(&b, &rw()).unwrap();
    assert_eq!(
        CommitCopier::new(x.clone(), x, 1 << 20).err().unwrap().to_string(),
        "cannot commit an image into itself"
    );
}

#[test]
fn external_snapshot_overlay_and_internal_snapshots() {
    let d = tempfile::tempdir().unwrap();
    let (_b, _m, t) = chain(d.path());
    let top = BlockNode::open(&t, &OpenOptions::read_only()).unwrap();
    let snap = d.path().join("snap.qcow2");
    create_overlay(&snap, &top, &t, Format::Qcow2).unwrap();
    let ov = BlockNode::open(s(&snap), &OpenOptions { backing: Backing::Node(top.clone()), ..rw() }).unwrap();
    ov.write(&[0x77; 512], 0).unwrap();
    ov.flush().unwrap();
    let q = ov.qcow2().unwrap();
    q.snapshot_create("s1", 1_500_000_000).unwrap();
    ov.write(&[0x78; 512], 0).unwrap();
    q.snapshot_apply("s1").unwrap();
    let mut b = [0u8; 512];
    ov.read(&mut b, 0).unwrap();
    assert_eq!(b, [0x77; 512]);
    let list = q.snapshots().unwrap();
    assert_eq!((list.len(), list[0].name.as_str(), list[0].vm_clock_nsec), (1, "s1", 1_500_000_000));
    q.snapshot_delete("s1").unwrap();
    drop(ov);
    clean(s(&snap));
    qemu_io_ok(s(&snap), "read -P 0x77 0 512");
    qemu_io_ok(s(&snap), "read -P 0x44 3M 1M");
}

#[test]
fn async_entry_points() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.qcow2");
    block::qcow2::create::create(
        &p,
        &block::qcow2::create::CreateOptions { size: 1 << 20, ..Default::default() },
    )
    .unwrap();
    let node: Arc<BlockNode> = BlockNode::open(s(&p), &rw()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        block::asyncio::write(node.clone(), 4096, vec![9u8; 8192]).await.unwrap();
        block::asyncio::write_zeroes(node.clone(), 65536, 65536).await.unwrap();
        block::asyncio::flush(node.clone()).await.unwrap();
        let b = block::asyncio::read(node.clone(), 4096, 8192).await.unwrap();
        assert!(b.iter().all(|&x| x == 9));
        block::asyncio::resize(node.clone(), 2 << 20).await.unwrap();
    });
    assert_eq!(node.size(), 2 << 20);
    drop(node);
    clean(s(&p));
    qemu_io_ok(s(&p), "read -P 9 4096 8192");
}

#[test]
fn stream_under_concurrent_guest_writes() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("base.qcow2");
    let t = d.path().join("top.qcow2");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&b), "8M"]);
    qemu_io_ok(s(&b), "write -P 0x11 0 8M");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", s(&t)]);
    let top = BlockNode::open(s(&t), &rw()).unwrap();
    let guest = top.clone();
    let writer = std::thread::spawn(move || {
        for i in 0..64u64 {
            // 4 KiB writes spread over the disk, sub-cluster, while the stream runs
            let off = (i * 131072 + (i % 13) * 4096) % (8 << 20);
            guest.write(&[0x99; 4096], off).unwrap();
            std::thread::yield_now();
        }
    });
    let mut job = StreamCopier::new(top.clone(), None, 256 << 10).unwrap();
    while job.step().unwrap() > 0 {}
    writer.join().unwrap();
    job.finish(None).unwrap();
    drop(top);
    clean(s(&t));
    let raw = d.path().join("t.raw");
    qemu_img_ok(&["convert", "-O", "raw", s(&t), s(&raw)]);
    let c = std::fs::read(&raw).unwrap();
    let mut expect = vec![0x11u8; 8 << 20];
    for i in 0..64u64 {
        let off = ((i * 131072 + (i % 13) * 4096) % (8 << 20)) as usize;
        expect[off..off + 4096].fill(0x99);
    }
    assert!(c == expect, "guest writes or backing data lost during stream");
}

#[test]
fn dirty_bitmap_drives_active_commit() {
    let d = tempfile::tempdir().unwrap();
    let (b, m, t) = chain(d.path());
    let base = BlockNode::open(&b, &rw()).unwrap();
    let mid = BlockNode::open(&m, &OpenOptions { backing: Backing::Node(base.clone()), ..rw() }).unwrap();
    let top = BlockNode::open(&t, &OpenOptions { backing: Backing::Node(mid.clone()), ..rw() }).unwrap();
    let bitmap = top.add_dirty_bitmap(65536);
    let mut job = CommitCopier::new(top.clone(), base.clone(), 1 << 20).unwrap();
    let mut n = 0;
    while job.step().unwrap() > 0 {
        // the guest keeps writing while the first pass runs
        top.write(&[0x5a; 4096], (5 << 20) + n * 65536).unwrap();
        top.write_zeroes((3 << 20) + n * 65536, 65536).unwrap();
        n += 1;
    }
    job.finish().unwrap();
    let mut buf = Vec::new();
    while let Some((off, len)) = bitmap.take_next(0, 1 << 20) {
        block::jobs::copy_range(&top, &base, off, len, &mut buf, block::jobs::CopyMode::Overwrite).unwrap();
    }
    top.remove_dirty_bitmap(&bitmap);
    assert_eq!(bitmap.dirty_bytes(), 0);
    base.flush().unwrap();
    top.flush().unwrap();
    drop((top, mid, base));
    clean(&b);
    // base alone now reads what the whole chain reads
    let o = qemu_img(&["compare", "-f", "qcow2", "-F", "qcow2", &t, &b]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn write_unallocated_never_replaces_newer_data() {
    let d = tempfile::tempdir().unwrap();
    let b = d.path().join("base.qcow2");
    let t = d.path().join("top.qcow2");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&b), "1M"]);
    qemu_io_ok(s(&b), "write -P 0x11 0 1M");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", s(&t)]);
    let top = BlockNode::open(s(&t), &rw()).unwrap();
    // the guest wrote after the copier read the old data
    top.write(&[0x99; 4096], 65536 + 8192).unwrap();
    top.write_zeroes(196608, 65536).unwrap();
    // the copier's write of the old data (and of zeroes) must skip those clusters
    top.write_unallocated(&vec![0x11; 1 << 20], 0).unwrap();
    top.write_zeroes_unallocated(65536, 65536).unwrap();
    let mut c = vec![0u8; 1 << 20];
    top.read(&mut c, 0).unwrap();
    let mut expect = vec![0x11u8; 1 << 20];
    expect[65536 + 8192..65536 + 12288].fill(0x99);
    expect[196608..262144].fill(0);
    assert!(c == expect);
    // and the result does not depend on the backing file any more
    for off in (0..1u64 << 20).step_by(65536) {
        assert!(top.is_allocated(off, 65536).unwrap().0, "cluster {off} left unallocated");
    }
    top.flush().unwrap();
    drop(top);
    clean(s(&t));
}

#[test]
fn snapshot_with_vm_state() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("vm.qcow2");
    qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&p), "4M"]);
    qemu_io_ok(s(&p), "write -P 0x21 0 1M");
    let node = BlockNode::open(s(&p), &rw()).unwrap();
    let q = node.qcow2().unwrap();
    let state: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    q.write_vmstate(&state[..100_000], 0).unwrap();
    q.write_vmstate(&state[100_000..], 100_000).unwrap();
    q.snapshot_create_vmstate("vm1", 2_500_000_000, state.len() as u64).unwrap();
    node.write(&[0x22; 65536], 0).unwrap();
    node.flush().unwrap();
    drop(node);
    clean(s(&p));
    let list = qemu_img_ok(&["snapshot", "-l", s(&p)]);
    assert!(list.contains("vm1") && list.contains("293 KiB") && list.contains("00:00:02.500"), "{list}");
    let node = BlockNode::open(s(&p), &rw()).unwrap();
    let q = node.qcow2().unwrap();
    q.snapshot_apply("vm1").unwrap();
    let mut back = vec![0u8; state.len()];
    q.read_vmstate(&mut back, 0).unwrap();
    assert!(back == state, "VM state differs after loadvm");
    let mut b = [0u8; 512];
    node.read(&mut b, 0).unwrap();
    assert_eq!(b, [0x21; 512]);
    drop(node);
    clean(s(&p));
}
