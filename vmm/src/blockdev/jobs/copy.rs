//! The copy step of stream and commit: read ranges as a node sees them, write them into a
//! layer. A range that reads as zero becomes `write_zeroes` (nothing allocated for it, exact
//! result). Errors say whether the read or the write failed, for `on-error` and
//! `BLOCK_JOB_ERROR`'s `operation`.

use block::jobs::buffer_is_zero;
use block::{BlockError, BlockNode};

/// The largest single read/write of a copy.
pub const MAX_IO: u64 = 2 << 20;

/// Which side of a copy failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    Read,
    Write,
}

#[derive(Debug)]
pub struct CopyError {
    pub op: IoOp,
    pub err: BlockError,
}

/// How the target is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain writes (commit into a base nobody else writes).
    Overwrite,
    /// Only where the target allocates nothing yet (stream into a node a guest may be writing:
    /// newer guest data is never replaced by older backing data).
    IntoUnallocated,
}

/// Splits runs into pieces of at most [`MAX_IO`] bytes.
fn pieces(runs: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut v = Vec::new();
    for &(mut off, mut len) in runs {
        while len > 0 {
            let n = len.min(MAX_IO);
            v.push((off, n));
            off += n;
            len -= n;
        }
    }
    v
}

fn copy_one(
    src: &BlockNode,
    dst: &BlockNode,
    off: u64,
    len: u64,
    buf: &mut Vec<u8>,
    mode: Mode,
) -> Result<(), CopyError> {
    let n = len as usize;
    buf.resize(n, 0);
    src.read(&mut buf[..n], off).map_err(|err| CopyError { op: IoOp::Read, err })?;
    let r = match (mode, buffer_is_zero(&buf[..n])) {
        (Mode::Overwrite, true) => dst.write_zeroes(off, len),
        (Mode::Overwrite, false) => dst.write(&buf[..n], off),
        (Mode::IntoUnallocated, true) => dst.write_zeroes_unallocated(off, len),
        (Mode::IntoUnallocated, false) => dst.write_unallocated(&buf[..n], off),
    };
    r.map_err(|err| CopyError { op: IoOp::Write, err })
}

/// Copies `runs` from `src`'s view into `dst`, on up to `workers` threads; stops at the first
/// error. `bufs` keeps one scratch buffer per worker between calls.
pub fn copy_runs(
    src: &BlockNode,
    dst: &BlockNode,
    runs: &[(u64, u64)],
    mode: Mode,
    workers: usize,
    bufs: &mut Vec<Vec<u8>>,
) -> Result<(), CopyError> {
    let work = pieces(runs);
    let workers = workers.clamp(1, work.len().max(1));
    bufs.resize_with(workers, Vec::new);
    if workers == 1 {
        for &(off, len) in &work {
            copy_one(src, dst, off, len, &mut bufs[0], mode)?;
        }
        return Ok(());
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let handles: Vec<_> = bufs
            .iter_mut()
            .map(|buf| {
                let (next, failed, work) = (&next, &failed, &work);
                s.spawn(move || -> Result<(), CopyError> {
                    use std::sync::atomic::Ordering::Relaxed;
                    while !failed.load(Relaxed) {
                        let Some(&(off, len)) = work.get(next.fetch_add(1, Relaxed)) else { break };
                        if let Err(e) = copy_one(src, dst, off, len, buf, mode) {
                            failed.store(true, Relaxed);
                            return Err(e);
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        let mut res = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| {
                Err(CopyError { op: IoOp::Read, err: BlockError::Invalid("Copy worker failed".into()) })
            });
            if res.is_ok() {
                res = r;
            }
        }
        res
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_are_bounded() {
        assert_eq!(pieces(&[(0, 5 << 20)]), vec![(0, 2 << 20), (2 << 20, 2 << 20), (4 << 20, 1 << 20)]);
        assert!(pieces(&[]).is_empty());
    }
}
