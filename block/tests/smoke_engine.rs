//! Engine smoke test against qemu-img / qemu-io.
mod common;
use block::qcow2::create::{CreateOptions, create};
use block::{BlockNode, OpenOptions};
use common::*;

#[test]
fn write_read_check_against_qemu() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("a.qcow2");
    create(&p, &CreateOptions { size: 64 << 20, ..Default::default() }).unwrap();
    let ps = p.to_str().unwrap();
    let n = BlockNode::open(ps, &OpenOptions::default()).unwrap();
    n.write(&vec![0x11; 1 << 20], 0).unwrap();
    n.write(&vec![0x22; 4096], (3 << 20) + 512).unwrap();
    n.write_zeroes(0, 65536).unwrap();
    n.flush().unwrap();
    drop(n);
    qemu_img_ok(&["check", ps]);
    qemu_io_ok(ps, "read -P 0 0 64k");
    qemu_io_ok(ps, "read -P 0x11 64k 960k");
    qemu_io_ok(ps, "read -P 0x22 3146240 4096");
}
