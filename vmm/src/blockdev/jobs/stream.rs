//! `block-stream`: copies into `top` what the layers between it and `base` provide (only where
//! `top` allocates nothing, so guest writes to `top` during the job are never overwritten), then
//! makes `base` (or nothing) its backing file.

use std::sync::Arc;

use block::BlockNode;

use super::copy::{CopyError, IoOp, Mode, Writeback, copy_runs};
use super::{ErrorAction, JobCtx, JobDriver, JobError, error_text};
use crate::blockdev::graph::BlockGraph;

/// Address space covered per step (progress and cancellation granularity).
pub const CHUNK: u64 = 16 << 20;

pub struct StreamJob {
    top: Arc<BlockNode>,
    base: Option<Arc<BlockNode>>,
    /// The backing file name written into `top` (`backing-file`; default: base's file name).
    backing_file: Option<String>,
    workers: usize,
    bufs: Vec<Vec<u8>>,
    writeback: Writeback,
}

impl StreamJob {
    pub fn new(
        top: Arc<BlockNode>,
        base: Option<Arc<BlockNode>>,
        backing_file: Option<String>,
        workers: usize,
    ) -> Self {
        StreamJob { top, base, backing_file, workers, bufs: Vec::new(), writeback: Writeback::default() }
    }

    /// Runs in `[pos, pos+len)` that `top` lacks and a layer above `base` has.
    fn runs(&self, pos: u64, len: u64) -> Result<Vec<(u64, u64)>, CopyError> {
        let end = pos + len;
        let mut off = pos;
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let read_err = |err| CopyError { op: IoOp::Read, err };
        while off < end {
            let (in_top, l) = self.top.is_allocated(off, end - off).map_err(read_err)?;
            let l = l.clamp(1, end - off);
            if in_top {
                off += l;
                continue;
            }
            let Some(below) = self.top.backing() else {
                off += l;
                continue;
            };
            let (above, l2) = below.is_allocated_above(self.base.as_ref(), off, l).map_err(read_err)?;
            let l2 = l2.clamp(1, l);
            if above {
                match runs.last_mut() {
                    Some(r) if r.0 + r.1 == off => r.1 += l2,
                    _ => runs.push((off, l2)),
                }
            }
            off += l2;
        }
        Ok(runs)
    }
}

impl JobDriver for StreamJob {
    fn run(&mut self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
        let len = self.top.size();
        ctx.set_progress(0, len);
        let mut pos = 0;
        let mut ignored: Option<String> = None;
        while pos < len {
            ctx.checkpoint()?;
            ctx.set_busy(true);
            let n = ctx.chunk_limit(CHUNK, self.top.cluster_size()).min(len - pos);
            let copied = match self.runs(pos, n) {
                Ok(runs) => {
                    let bytes: u64 = runs.iter().map(|r| r.1).sum();
                    copy_runs(
                        &self.top,
                        &self.top,
                        &runs,
                        Mode::IntoUnallocated,
                        self.workers,
                        &mut self.bufs,
                    )
                    .map(|()| bytes)
                }
                Err(e) => Err(e),
            };
            let copied = match copied {
                Ok(b) => b,
                Err(e) => match ctx.error_action(&e) {
                    ErrorAction::Report => return Err(JobError::Failed(error_text(&e.err))),
                    // QEMU's stream goes on and fails at the end with the first error.
                    ErrorAction::Ignore => {
                        ignored.get_or_insert_with(|| error_text(&e.err));
                        0
                    }
                    ErrorAction::Stop => continue,
                },
            };
            pos += n;
            ctx.set_progress(pos, len);
            self.writeback.wrote(&self.top, copied);
            ctx.rate_limit(copied)?;
        }
        match ignored {
            Some(e) => Err(JobError::Failed(e)),
            None => Ok(()),
        }
    }

    fn prepare(&mut self, _graph: &BlockGraph) -> Result<(), String> {
        if self.top.qcow2().is_none() {
            return Ok(());
        }
        self.top.flush().map_err(|e| e.to_string())?;
        match &self.base {
            Some(b) => {
                let name = self.backing_file.clone().unwrap_or_else(|| b.filename().to_string());
                self.top.set_backing(Some(b.clone()), Some(&name), Some(b.format().name()))
            }
            None => self.top.set_backing(None, None, None),
        }
        .map_err(|e| e.to_string())
    }
}
