//! A writer killed with SIGKILL at arbitrary moments leaves an image that `qemu-img check`
//! finds clean or with leaked clusters only, and every write acknowledged before a
//! completed flush reads back (with the copied-on-write rest of its clusters intact).

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

fn region(i: u64) -> (u64, usize, u8) {
    let off = i * (128 << 10) + (i % 7) * 512;
    let len = 4096 * (1 + (i % 16) as usize);
    let pat = (i % 250) as u8 + 1;
    (off, len, pat)
}

fn writer_path() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let st = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "block", "--example", "crash_writer"])
        .status()
        .expect("cargo build crash_writer");
    assert!(st.success());
    target.join("debug/examples/crash_writer")
}

#[test]
fn killed_writer_leaves_consistent_image() {
    let writer = writer_path();
    // kill after the writer announced `after` durable writes, plus a small delay, so the
    // kill lands in the middle of the run at a different point each round
    for (round, (after, delay_us)) in
        [(7u64, 0u64), (23, 300), (47, 900), (71, 1500), (95, 2500)].into_iter().enumerate()
    {
        let d = tempfile::tempdir().unwrap();
        let base = d.path().join("base.qcow2");
        let top = d.path().join("top.qcow2");
        qemu_img_ok(&["create", "-q", "-f", "qcow2", s(&base), "24M"]);
        qemu_io_ok(s(&base), "write -P 0xaa 0 24M");
        qemu_img_ok(&["create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", s(&top)]);
        let mut child =
            Command::new(&writer).arg(s(&top)).stdout(Stdio::piped()).spawn().expect("spawn crash_writer");
        let mut durable: Option<u64> = None;
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        for line in lines.by_ref().map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("F ") {
                durable = n.parse().ok();
                if durable.is_some_and(|n| n >= after) {
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_micros(delay_us));
        let _ = child.kill();
        let _ = child.wait();
        for line in lines.map_while(Result::ok) {
            if let Some(n) = line.strip_prefix("F ") {
                durable = n.parse().ok();
            }
        }
        eprintln!(
            "round {round}: killed after write {after} + {delay_us} us, durable up to write {durable:?}"
        );
        let o = qemu_img(&["check", s(&top)]);
        assert!(
            matches!(o.status.code(), Some(0) | Some(3)),
            "round {round}: qemu-img check: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        let raw = d.path().join("top.raw");
        qemu_img_ok(&["convert", "-O", "raw", s(&top), s(&raw)]);
        let content = std::fs::read(&raw).unwrap();
        if let Some(n) = durable {
            for i in 0..=n {
                let (off, len, pat) = region(i);
                let (o, l) = (off as usize, len);
                assert!(content[o..o + l].iter().all(|&b| b == pat), "round {round}: flushed write {i} lost");
                let cluster = o / 65536 * 65536;
                assert!(
                    content[cluster..o].iter().all(|&b| b == 0xaa),
                    "round {round}: copy-on-write head of write {i} wrong"
                );
            }
        }
    }
}
