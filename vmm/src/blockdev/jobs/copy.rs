//! The copy step of stream and commit: read ranges as a node sees them, write them into a
//! layer. A range that reads as zero becomes `write_zeroes` (nothing allocated for it, exact
//! result). Errors say whether the read or the write failed, for `on-error` and
//! `BLOCK_JOB_ERROR`'s `operation`.

use block::jobs::buffer_is_zero;
use block::{BlockError, BlockNode};

/// The largest single read/write of a copy.
pub const MAX_IO: u64 = 2 << 20;

/// How much a job writes before it asks the kernel to start writing the target back.
const WRITEBACK_EVERY: u64 = 64 << 20;

/// Starts write-back of the target as a job goes, so the flush at its end (before the new
/// backing link or the pivot is made durable) has little left to write: copying and disk writes
/// overlap instead of following each other.
#[derive(Debug, Default)]
pub struct Writeback {
    pending: u64,
}

impl Writeback {
    /// Accounts `n` bytes written into `dst`.
    pub fn wrote(&mut self, dst: &BlockNode, n: u64) {
        self.pending += n;
        if self.pending >= WRITEBACK_EVERY {
            self.pending = 0;
            dst.file().start_writeback();
        }
    }
}

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

/// Writes guest bytes at `off` into `dst`.
fn put(dst: &BlockNode, data: &[u8], off: u64, mode: Mode) -> Result<(), CopyError> {
    let r = match mode {
        Mode::Overwrite => dst.write(data, off),
        Mode::IntoUnallocated => dst.write_unallocated(data, off),
    };
    r.map_err(|err| CopyError { op: IoOp::Write, err })
}

fn put_zeroes(dst: &BlockNode, off: u64, len: u64, mode: Mode) -> Result<(), CopyError> {
    let r = match mode {
        Mode::Overwrite => dst.write_zeroes(off, len),
        Mode::IntoUnallocated => dst.write_zeroes_unallocated(off, len),
    };
    r.map_err(|err| CopyError { op: IoOp::Write, err })
}

/// Copies one piece. Runs that read as zero become `write_zeroes`; data a layer stores
/// uncompressed is written straight from a mapping of that layer's file (one copy instead of
/// two, no zero scan: data is copied as data, as QEMU does); the rest goes through `buf`.
fn copy_one(
    src: &BlockNode,
    dst: &BlockNode,
    off: u64,
    len: u64,
    buf: &mut Vec<u8>,
    mode: Mode,
) -> Result<(), CopyError> {
    let end = off + len;
    let mut o = off;
    while o < end {
        let st = src.block_status(o, end - o).map_err(|err| CopyError { op: IoOp::Read, err })?;
        let l = st.len.clamp(1, end - o);
        if st.zero && !st.data {
            put_zeroes(dst, o, l, mode)?;
        } else {
            let mapped = match (st.offset, st.compressed) {
                (Some(host), false) => map_layer(src, st.depth, host, l),
                _ => None,
            };
            match mapped {
                Some(m) => put(dst, &m, o, mode)?,
                None => copy_buffered(src, dst, o, l, buf, mode)?,
            }
        }
        o += l;
    }
    Ok(())
}

/// Maps `len` bytes at `host` of the file of the layer `depth` levels below `src`.
fn map_layer(src: &BlockNode, depth: u32, host: u64, len: u64) -> Option<block::file::Mapping> {
    if depth == 0 {
        return src.file().map(host, len as usize);
    }
    let mut n = src.backing()?;
    for _ in 1..depth {
        n = n.backing()?;
    }
    n.file().map(host, len as usize)
}

/// Reads through `src` into `buf` and writes that (zero buffers as `write_zeroes`).
fn copy_buffered(
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
    if buffer_is_zero(&buf[..n]) { put_zeroes(dst, off, len, mode) } else { put(dst, &buf[..n], off, mode) }
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
