//! `block-commit`.
//!
//! - [`CommitJob`] (intermediate commit: `top` is below the active layer): copies what `top` and
//!   the layers between it and `base` hold into `base`, then makes `base` the backing file of
//!   `top`'s overlay. Guest writes go to the active layer above and are not involved.
//! - [`ActiveCommitJob`] (`top` is the active layer, as QEMU's mirror-based commit): a dirty
//!   bitmap on `top` records every write from before the first pass; the job copies what is
//!   allocated above `base`, then keeps copying what the bitmap reports. Once clean it is READY
//!   and mirrors new writes until `block-job-complete`, which drains the drives over `top`
//!   (requests in flight finish, new ones wait), copies what is still dirty and points the
//!   drives at `base`: no acknowledged write is left behind in `top`.

use std::sync::Arc;
use std::time::Duration;

use block::BlockNode;
use block::dirty::DirtyBitmap;

use super::copy::{CopyError, IoOp, MAX_IO, Mode, Writeback, copy_runs};
use super::{ErrorAction, JobCtx, JobDriver, JobError, error_text};
use crate::blockdev::graph::BlockGraph;

/// Address space covered per step of an intermediate commit.
pub const CHUNK: u64 = 16 << 20;
/// The most dirty data one step of an active commit copies.
pub const MIRROR_CHUNK: u64 = 8 << 20;
/// How often a job in sync looks for new writes.
const IDLE_POLL: Duration = Duration::from_millis(20);
/// Pause between retries of a chunk whose error `on-error=ignore` skipped (QEMU retries at once).
const RETRY_PAUSE: Duration = Duration::from_millis(100);

fn grow_base(top: &BlockNode, base: &BlockNode) -> Result<(), JobError> {
    if base.size() < top.size() {
        base.resize(top.size()).map_err(|e| JobError::Failed(e.to_string()))?;
    }
    Ok(())
}

/// Runs in `[pos, pos+len)` that a layer from `top` down to (not including) `base` holds.
fn runs_above(
    top: &Arc<BlockNode>,
    base: &Arc<BlockNode>,
    pos: u64,
    len: u64,
) -> Result<Vec<(u64, u64)>, CopyError> {
    let end = pos + len;
    let mut off = pos;
    let mut runs: Vec<(u64, u64)> = Vec::new();
    while off < end {
        let (above, l) = top
            .is_allocated_above(Some(base), off, end - off)
            .map_err(|err| CopyError { op: IoOp::Read, err })?;
        let l = l.clamp(1, end - off);
        if above {
            match runs.last_mut() {
                Some(r) if r.0 + r.1 == off => r.1 += l,
                _ => runs.push((off, l)),
            }
        }
        off += l;
    }
    Ok(runs)
}

pub struct CommitJob {
    top: Arc<BlockNode>,
    base: Arc<BlockNode>,
    /// The node whose backing file is `top`; it gets `base` instead.
    overlay: Arc<BlockNode>,
    backing_file: Option<String>,
    workers: usize,
    bufs: Vec<Vec<u8>>,
    writeback: Writeback,
}

impl CommitJob {
    pub fn new(
        top: Arc<BlockNode>,
        base: Arc<BlockNode>,
        overlay: Arc<BlockNode>,
        backing_file: Option<String>,
        workers: usize,
    ) -> Self {
        CommitJob {
            top,
            base,
            overlay,
            backing_file,
            workers,
            bufs: Vec::new(),
            writeback: Writeback::default(),
        }
    }
}

impl JobDriver for CommitJob {
    fn run(&mut self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let len = self.top.size();
        ctx.set_progress(0, len);
        grow_base(&self.top, &self.base)?;
        let mut pos = 0;
        while pos < len {
            ctx.checkpoint()?;
            ctx.set_busy(true);
            let n = ctx.chunk_limit(CHUNK, self.base.cluster_size()).min(len - pos);
            let r = runs_above(&self.top, &self.base, pos, n).and_then(|runs| {
                let bytes: u64 = runs.iter().map(|r| r.1).sum();
                copy_runs(&self.top, &self.base, &runs, Mode::Overwrite, self.workers, &mut self.bufs)
                    .map(|()| bytes)
            });
            let copied = match r {
                Ok(b) => b,
                Err(e) => match ctx.error_action(&e) {
                    ErrorAction::Report => return Err(JobError::Failed(error_text(&e.err))),
                    ErrorAction::Ignore => {
                        ctx.idle(RETRY_PAUSE)?;
                        continue;
                    }
                    ErrorAction::Stop => continue,
                },
            };
            pos += n;
            ctx.set_progress(pos, len);
            self.writeback.wrote(&self.base, copied);
            ctx.rate_limit(copied)?;
        }
        Ok(())
    }

    fn prepare(&mut self, _graph: &BlockGraph) -> Result<(), String> {
        self.base.flush().map_err(|e| e.to_string())?;
        let name = self.backing_file.clone().unwrap_or_else(|| self.base.filename().to_string());
        self.overlay
            .set_backing(Some(self.base.clone()), Some(&name), Some(self.base.format().name()))
            .map_err(|e| e.to_string())
    }
}

pub struct ActiveCommitJob {
    top: Arc<BlockNode>,
    base: Arc<BlockNode>,
    bitmap: Arc<DirtyBitmap>,
    /// Set when the job ends because `block-job-complete` was given: pivot at finalisation.
    pivot: bool,
    workers: usize,
    bufs: Vec<Vec<u8>>,
    writeback: Writeback,
}

impl ActiveCommitJob {
    /// `bitmap` must be attached to `top` before the job starts (it records every write from then
    /// on; what was written before is found allocated in `top` by the first pass).
    pub fn new(top: Arc<BlockNode>, base: Arc<BlockNode>, bitmap: Arc<DirtyBitmap>, workers: usize) -> Self {
        ActiveCommitJob {
            top,
            base,
            bitmap,
            pivot: false,
            workers,
            bufs: Vec::new(),
            writeback: Writeback::default(),
        }
    }

    fn copy(&mut self, off: u64, n: u64) -> Result<(), CopyError> {
        copy_runs(&self.top, &self.base, &[(off, n)], Mode::Overwrite, self.workers, &mut self.bufs)
    }
}

impl JobDriver for ActiveCommitJob {
    fn run(&mut self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        grow_base(&self.top, &self.base)?;
        let len = self.top.size();
        let mut off = 0;
        while off < len {
            let step = (64u64 << 30).min(len - off);
            let runs = runs_above(&self.top, &self.base, off, step)
                .map_err(|e| JobError::Failed(error_text(&e.err)))?;
            for (o, l) in runs {
                self.bitmap.mark(o, l);
            }
            off += step;
        }
        let mut done = 0u64;
        ctx.set_progress(0, self.bitmap.dirty_bytes());
        let mut cursor = 0;
        let mut ready = false;
        loop {
            ctx.checkpoint()?;
            if ready && ctx.soft_cancelled() {
                break;
            }
            let chunk = ctx.chunk_limit(MIRROR_CHUNK, self.bitmap.granularity());
            match self.bitmap.take_next(cursor, chunk) {
                Some((o, n)) => {
                    ctx.set_busy(true);
                    if let Err(e) = self.copy(o, n) {
                        self.bitmap.mark(o, n);
                        match ctx.error_action(&e) {
                            ErrorAction::Report => return Err(JobError::Failed(error_text(&e.err))),
                            ErrorAction::Ignore => ctx.idle(RETRY_PAUSE)?,
                            ErrorAction::Stop => {}
                        }
                        continue;
                    }
                    done += n;
                    cursor = o + n;
                    self.writeback.wrote(&self.base, n);
                    ctx.set_progress(done, done + self.bitmap.dirty_bytes());
                    ctx.rate_limit(n)?;
                }
                None if cursor > 0 => cursor = 0,
                None => {
                    if !ready {
                        ready = ctx.set_ready();
                    }
                    if ready && ctx.should_complete() {
                        self.pivot = true;
                        break;
                    }
                    if ready && ctx.soft_cancelled() {
                        break;
                    }
                    ctx.idle(IDLE_POLL)?;
                }
            }
        }
        Ok(())
    }

    /// On `block-job-complete`: drain the drives over `top`, copy the rest, point them at `base`.
    fn prepare(&mut self, graph: &BlockGraph) -> Result<(), String> {
        if !self.pivot {
            return Ok(());
        }
        let backends = graph.backends_of(&self.top);
        let mut guards = graph.drain(&backends);
        while let Some((o, n)) = self.bitmap.take_next(0, MAX_IO) {
            if let Err(e) = self.copy(o, n) {
                self.bitmap.mark(o, n);
                return Err(error_text(&e.err));
            }
        }
        self.base.flush().map_err(|e| e.to_string())?;
        for g in guards.iter_mut() {
            *g.root = self.base.clone();
        }
        graph.set_read_only(&self.base, false);
        Ok(())
    }

    fn clean(&mut self, _graph: &BlockGraph) {
        self.top.remove_dirty_bitmap(&self.bitmap);
    }
}
