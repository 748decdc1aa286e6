//! Building blocks of block jobs: chunked stream and commit copies, overlay creation.
//!
//! Each copier does one bounded chunk per `step()` call and reports the bytes it covered,
//! so the job that drives it (a `vmm-img` command now, QMP block jobs later) can pause,
//! rate-limit, cancel and report progress between chunks. Copying reads guest-visible
//! data and writes it into the target layer; ranges that read as zero become zero
//! clusters (`write_zeroes`), so nothing is allocated for them and the result is exact.
//! `finish()` changes the backing link, the step that makes the result visible.

use crate::error::{BlockError, Result};
use crate::node::{BlockNode, Format};
use crate::qcow2::create::{CreateOptions, create};
use std::path::Path;
use std::sync::Arc;

/// Default chunk of one step (QEMU's stream/commit use similar sizes).
pub const DEFAULT_CHUNK: u64 = 4 << 20;

fn is_zero(buf: &[u8]) -> bool {
    let (pre, mid, post) = {
        // SAFETY: u8 -> u64 reinterpretation is valid for any bit pattern; align_to keeps
        // the middle slice aligned and in bounds.
        unsafe { buf.align_to::<u64>() }
    };
    pre.iter().all(|&b| b == 0) && mid.iter().all(|&w| w == 0) && post.iter().all(|&b| b == 0)
}

/// Whether a buffer is all zero bytes (fast path for zero detection).
pub fn buffer_is_zero(buf: &[u8]) -> bool {
    is_zero(buf)
}

/// How `copy_range` writes into its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyMode {
    /// Plain writes (commit: nobody else writes the target).
    Overwrite,
    /// Only where the target allocates nothing yet (stream into a node the guest may be
    /// writing: newer guest data is never overwritten with older backing data).
    IntoUnallocated,
}

/// Copies `[off, off+len)` as read through `src` into `dst`: zero runs become
/// `write_zeroes`, the rest is written. `buf` is reused scratch space.
pub fn copy_range(
    src: &BlockNode,
    dst: &BlockNode,
    off: u64,
    len: u64,
    buf: &mut Vec<u8>,
    mode: CopyMode,
) -> Result<()> {
    buf.resize(len as usize, 0);
    src.read(&mut buf[..len as usize], off)?;
    let zero = is_zero(&buf[..len as usize]);
    match (mode, zero) {
        (CopyMode::Overwrite, true) => dst.write_zeroes(off, len),
        (CopyMode::Overwrite, false) => dst.write(&buf[..len as usize], off),
        (CopyMode::IntoUnallocated, true) => dst.write_zeroes_unallocated(off, len),
        (CopyMode::IntoUnallocated, false) => dst.write_unallocated(&buf[..len as usize], off),
    }
}

/// Copies every run with `copy_range`, on up to `workers` threads (each with its own
/// buffer); stops at the first error.
pub fn copy_runs(
    src: &BlockNode,
    dst: &BlockNode,
    runs: &[(u64, u64)],
    workers: usize,
    buf: &mut Vec<u8>,
    mode: CopyMode,
) -> Result<()> {
    if workers <= 1 || runs.len() <= 1 {
        for &(off, len) in runs {
            copy_range(src, dst, off, len, buf, mode)?;
        }
        return Ok(());
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.min(runs.len()))
            .map(|_| {
                let next = &next;
                s.spawn(move || -> Result<()> {
                    let mut b = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(&(off, len)) = runs.get(i) else {
                            return Ok(());
                        };
                        copy_range(src, dst, off, len, &mut b, mode)?;
                    }
                })
            })
            .collect();
        let mut res = Ok(());
        for h in handles {
            let r = h.join().unwrap_or_else(|_| Err(BlockError::Invalid("Copy worker failed".into())));
            if res.is_ok() {
                res = r;
            }
        }
        res
    })
}

/// Stream: pull into `top` what the layers between it and `base` provide.
pub struct StreamCopier {
    top: Arc<BlockNode>,
    base: Option<Arc<BlockNode>>,
    pos: u64,
    end: u64,
    chunk: u64,
    workers: usize,
    buf: Vec<u8>,
}

impl StreamCopier {
    /// `base` = `None` streams the whole chain (the result needs no backing file).
    pub fn new(top: Arc<BlockNode>, base: Option<Arc<BlockNode>>, chunk: u64) -> Result<Self> {
        if top.read_only() {
            return Err(BlockError::ReadOnly);
        }
        if let Some(b) = &base
            && !top.chain().iter().skip(1).any(|n| Arc::ptr_eq(n, b))
        {
            return Err(BlockError::Argument(format!(
                "'{}' is not in the backing chain of '{}'",
                b.filename(),
                top.filename()
            )));
        }
        let end = top.size();
        Ok(StreamCopier { top, base, pos: 0, end, chunk: chunk.max(65536), workers: 1, buf: Vec::new() })
    }

    /// Copies the runs of one chunk on up to `n` threads.
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Total bytes the job goes over (QEMU's `len` for stream: the device size).
    pub fn len(&self) -> u64 {
        self.end
    }

    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Bytes covered so far.
    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Does one chunk; returns the bytes covered, 0 when done.
    pub fn step(&mut self) -> Result<u64> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let len = self.chunk.min(self.end - self.pos);
        let start = self.pos;
        let mut off = start;
        let mut runs = Vec::new();
        while off < start + len {
            let run = start + len - off;
            let (in_top, l) = self.top.is_allocated(off, run)?;
            let l = l.min(run);
            if !in_top && let Some(below) = self.top.backing() {
                let (above, l2) = below.is_allocated_above(self.base.as_ref(), off, l)?;
                let l2 = l2.min(l).max(1);
                if above {
                    runs.push((off, l2));
                }
                off += l2;
                continue;
            }
            off += l.max(1);
        }
        copy_runs(&self.top, &self.top, &runs, self.workers, &mut self.buf, CopyMode::IntoUnallocated)?;
        self.pos = start + len;
        Ok(len)
    }

    /// Points `top` at `base` (header and in memory). `backing_name` overrides the name
    /// written into the header (QEMU's `backing-file`).
    pub fn finish(self, backing_name: Option<&str>) -> Result<()> {
        self.top.flush()?;
        match &self.base {
            Some(b) => {
                let name = backing_name.unwrap_or(b.filename()).to_string();
                self.top.set_backing(Some(b.clone()), Some(&name), Some(b.format().name()))
            }
            None => self.top.set_backing(None, None, None),
        }
    }
}

/// Commit: push what `top` and the layers between it and `base` hold into `base`.
pub struct CommitCopier {
    top: Arc<BlockNode>,
    base: Arc<BlockNode>,
    pos: u64,
    end: u64,
    chunk: u64,
    workers: usize,
    buf: Vec<u8>,
}

impl CommitCopier {
    pub fn new(top: Arc<BlockNode>, base: Arc<BlockNode>, chunk: u64) -> Result<Self> {
        if Arc::ptr_eq(&top, &base) {
            return Err(BlockError::Argument("cannot commit an image into itself".into()));
        }
        if !top.chain().iter().skip(1).any(|n| Arc::ptr_eq(n, &base)) {
            return Err(BlockError::Argument(format!(
                "'{}' is not in the backing chain of '{}'",
                base.filename(),
                top.filename()
            )));
        }
        if base.read_only() {
            return Err(BlockError::ReadOnly);
        }
        if base.size() < top.size() {
            base.resize(top.size())?;
        }
        let end = top.size();
        Ok(CommitCopier { top, base, pos: 0, end, chunk: chunk.max(65536), workers: 1, buf: Vec::new() })
    }

    /// Copies the runs of one chunk on up to `n` threads.
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    pub fn len(&self) -> u64 {
        self.end
    }

    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    pub fn offset(&self) -> u64 {
        self.pos
    }

    /// Does one chunk; returns the bytes covered, 0 when done.
    pub fn step(&mut self) -> Result<u64> {
        if self.pos >= self.end {
            return Ok(0);
        }
        let len = self.chunk.min(self.end - self.pos);
        let start = self.pos;
        let mut off = start;
        let mut runs = Vec::new();
        while off < start + len {
            let run = start + len - off;
            let (above, l) = self.top.is_allocated_above(Some(&self.base), off, run)?;
            let l = l.min(run).max(1);
            if above {
                runs.push((off, l));
            }
            off += l;
        }
        copy_runs(&self.top, &self.base, &runs, self.workers, &mut self.buf, CopyMode::Overwrite)?;
        self.pos = start + len;
        Ok(len)
    }

    /// Flushes the base. The caller then re-links the overlay above `top` (intermediate
    /// commit) or pivots users to `base` (active commit).
    pub fn finish(self) -> Result<Arc<BlockNode>> {
        self.base.flush()?;
        Ok(self.base)
    }
}

/// Creates a qcow2 overlay (external snapshot) at `path` whose backing file is
/// `backing_name` (stored as given) of format `backing_format`, sized like `backing`.
pub fn create_overlay(
    path: &Path,
    backing: &BlockNode,
    backing_name: &str,
    backing_format: Format,
) -> Result<()> {
    let opts = CreateOptions {
        size: backing.size(),
        backing_file: Some(backing_name.to_string()),
        backing_format: Some(backing_format.name().to_string()),
        ..Default::default()
    };
    create(path, &opts)
}
