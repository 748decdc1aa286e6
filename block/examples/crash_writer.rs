//! Helper for the crash-consistency test: writes numbered regions into a qcow2 overlay,
//! flushing every few writes and announcing on stdout which writes are durable
//! (`F <n>`: writes 0..=n were followed by a completed flush). The test kills it with
//! SIGKILL at arbitrary moments.
//!
//! Usage: crash_writer IMAGE

use block::{BlockNode, OpenOptions};
use std::io::Write;

/// Each write i lands in its own 128 KiB region; lengths and offsets vary so that
/// copy-on-write of partial clusters from the backing file is exercised.
pub fn region(i: u64) -> (u64, usize, u8) {
    let off = i * (128 << 10) + (i % 7) * 512;
    let len = 4096 * (1 + (i % 16) as usize);
    let pat = (i % 250) as u8 + 1;
    (off, len, pat)
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: crash_writer IMAGE");
        std::process::exit(2);
    };
    let node = match BlockNode::open(&path, &OpenOptions::default()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("crash_writer: {e}");
            std::process::exit(1);
        }
    };
    // numbered regions fill the first 2/3 of the disk; the last third is scratch space
    // that is written, zeroed and discarded over and over (freeing and reusing clusters)
    let scratch = node.size() / 3 * 2;
    let regions = scratch / (128 << 10);
    let mut out = std::io::stdout();
    for i in 0..regions {
        let (off, len, pat) = region(i);
        if let Err(e) = node.write(&vec![pat; len], off) {
            eprintln!("crash_writer: write {i}: {e}");
            std::process::exit(1);
        }
        let s_off = scratch + (i * 7 % 64) * 65536;
        let churn = match i % 3 {
            0 => node.write(&vec![0x5c; 65536 + 4096], s_off),
            1 => node.discard(s_off, 3 * 65536),
            _ => node.write_zeroes(s_off + 512, 2 * 65536),
        };
        if let Err(e) = churn {
            eprintln!("crash_writer: scratch op {i}: {e}");
            std::process::exit(1);
        }
        if i % 8 == 7 {
            if let Err(e) = node.flush() {
                eprintln!("crash_writer: flush: {e}");
                std::process::exit(1);
            }
            let _ = writeln!(out, "F {i}");
            let _ = out.flush();
        }
    }
}
