//! Opens arbitrary bytes as a qcow2 image and exercises every read-side path: header and
//! table validation, reads (normal, zero, compressed clusters), block status, snapshot
//! listing, image info and the full consistency check. None of it may panic or allocate
//! without bound.
#![no_main]

use block::qcow2::check::Repair;
use block::{Backing, BlockNode, Format, OpenOptions};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fn scratch_path() -> std::path::PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    dir.join(format!("block-fuzz-{}.qcow2", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let path = scratch_path();
    {
        let Ok(mut f) = std::fs::File::create(&path) else {
            return;
        };
        if f.write_all(data).is_err() {
            return;
        }
    }
    let Some(p) = path.to_str() else {
        return;
    };
    let opts = OpenOptions {
        format: Some(Format::Qcow2),
        read_only: true,
        backing: Backing::None,
    };
    let Ok(node) = BlockNode::open(p, &opts) else {
        return;
    };
    let size = node.size();
    let mut buf = vec![0u8; 16 << 10];
    for off in [0u64, size / 2, size.saturating_sub(4096)] {
        let off = off / 512 * 512;
        let len = (buf.len() as u64).min(size.saturating_sub(off)) as usize;
        if len > 0 {
            let _ = node.read(&mut buf[..len], off);
            let _ = node.block_status(off, len as u64);
        }
    }
    let _ = node.info();
    if let Some(q) = node.qcow2() {
        let _ = q.check(Repair::None);
    }
});
