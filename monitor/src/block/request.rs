//! What the monitor asks of the block layer: [`BlockRequest`], carried to the VMM inside
//! [`ControlRequest::Block`](crate::control::ControlRequest::Block), each with its typed reply.
//!
//! Block jobs run on their own threads. A job must not act on a command before the client has
//! seen the command's reply (QEMU's job coroutines only run once the monitor is done with a
//! command, so a job's `waiting`/`aborting`/... events always follow the reply that caused
//! them). Requests that start a job or hand it an asynchronous verb (cancel, complete,
//! set-speed, resume) therefore reply with a [`Kick`]: the handler calls
//! [`Kick::after_reply`], which releases the job once the session has queued the reply.

use std::fmt;

use super::types::*;
use crate::control::Reply;

/// The job verbs of `job-*` and `block-job-*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobVerb {
    Pause,
    Resume,
    /// `force`: `job-cancel` always forces; `block-job-cancel` only with `force: true`.
    Cancel {
        force: bool,
    },
    Complete,
    Finalize,
    Dismiss,
    SetSpeed(i64),
}

impl JobVerb {
    /// QEMU's verb name (as in `cannot accept command verb 'complete'`).
    pub fn as_str(self) -> &'static str {
        match self {
            JobVerb::Pause => "pause",
            JobVerb::Resume => "resume",
            JobVerb::Cancel { .. } => "cancel",
            JobVerb::Complete => "complete",
            JobVerb::Finalize => "finalize",
            JobVerb::Dismiss => "dismiss",
            JobVerb::SetSpeed(_) => "set-speed",
        }
    }
}

/// Which command family named the job: they differ in their not-found errors
/// (`Block job 'x' not found`, class DeviceNotActive, vs `Job not found`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobApi {
    Block,
    Generic,
}

/// Everything the monitor asks of the block layer.
#[derive(Debug)]
pub enum BlockRequest {
    Add {
        options: Box<BlockdevOptions>,
        reply: Reply<()>,
    },
    Del {
        node_name: String,
        reply: Reply<()>,
    },
    QueryBlock {
        reply: Reply<Vec<BlockInfo>>,
    },
    QueryNamedNodes {
        flat: bool,
        reply: Reply<Vec<BlockDeviceInfo>>,
    },
    /// `query-blockstats`: drives (with their chains), or every node with `query-nodes`.
    QueryBlockstats {
        query_nodes: bool,
        reply: Reply<Vec<crate::block::stats::BlockStats>>,
    },
    SnapshotSync {
        args: BlockdevSnapshotSyncArgs,
        reply: Reply<()>,
    },
    /// HMP `drive_add`: `-drive` options at run time.
    DriveAdd {
        opts: String,
        reply: Reply<()>,
    },
    /// HMP `drive_del`.
    DriveDel {
        id: String,
        reply: Reply<()>,
    },
    /// `block_set_io_throttle`.
    SetIoThrottle {
        args: Box<BlockIoThrottleArgs>,
        reply: Reply<()>,
    },
    /// `transaction`: every action or none.
    Transaction {
        actions: Vec<TransactionAction>,
        reply: Reply<()>,
    },
    Snapshot {
        args: BlockdevSnapshotArgs,
        reply: Reply<()>,
    },
    Resize {
        args: BlockResizeArgs,
        reply: Reply<()>,
    },
    SnapshotInternal {
        args: BlockdevSnapshotInternalArgs,
        reply: Reply<()>,
    },
    SnapshotDeleteInternal {
        args: BlockdevSnapshotDeleteInternalArgs,
        reply: Reply<block::SnapshotInfo>,
    },
    Stream {
        args: BlockStreamArgs,
        reply: Reply<Kick>,
    },
    Commit {
        args: BlockCommitArgs,
        reply: Reply<Kick>,
    },
    Job {
        id: String,
        api: JobApi,
        verb: JobVerb,
        reply: Reply<Kick>,
    },
    QueryBlockJobs {
        reply: Reply<Vec<BlockJobInfo>>,
    },
    QueryJobs {
        reply: Reply<Vec<JobInfo>>,
    },
    /// HMP `commit DEVICE|all`: a synchronous commit of the top image into its backing file
    /// (guest I/O on the drive waits meanwhile, as in QEMU). Errors are QEMU's HMP texts,
    /// printed without an `Error:` prefix.
    HmpCommit {
        device: String,
        reply: Reply<()>,
    },
    /// HMP `qemu-io [-d] DEVICE "COMMAND"`: a subset of qemu-io's commands on a drive or node
    /// (`read`, `write`, `write -z`, `discard`, `flush`, with `-P` patterns). Returns the
    /// text qemu-io prints (QEMU prints it on its stdout, not on the monitor).
    QemuIo {
        device: String,
        qdev: bool,
        command: String,
        reply: Reply<String>,
    },
}

/// Deferred work that must run only after the reply to the current command has been queued
/// (see the module doc). Dropping a `Kick` runs it too, so an abandoned reply never leaves a
/// job waiting forever.
pub struct Kick(Option<Box<dyn FnOnce() + Send>>);

impl Kick {
    /// Nothing to do.
    pub fn none() -> Self {
        Kick(None)
    }

    pub fn new(f: impl FnOnce() + Send + 'static) -> Self {
        Kick(Some(Box::new(f)))
    }

    /// Runs the work once the current task yields: on the monitor's current-thread runtime that
    /// is after the session has queued the reply it is producing. Without a runtime it runs now.
    pub fn after_reply(mut self) {
        let Some(f) = self.0.take() else { return };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(async move { f() });
            }
            Err(_) => f(),
        }
    }

    /// Runs the work now.
    pub fn run(mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl Drop for Kick {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

impl fmt::Debug for Kick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() { "Kick(pending)" } else { "Kick(done)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn kick_runs_once_even_when_dropped() {
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        let k = Kick::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        });
        drop(k);
        assert_eq!(n.load(Ordering::SeqCst), 1);
        let c = n.clone();
        Kick::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .after_reply();
        assert_eq!(n.load(Ordering::SeqCst), 2, "without a runtime it runs at once");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn after_reply_waits_for_the_task_to_yield() {
        let n = Arc::new(AtomicUsize::new(0));
        let c = n.clone();
        Kick::new(move || {
            c.fetch_add(1, Ordering::SeqCst);
        })
        .after_reply();
        assert_eq!(n.load(Ordering::SeqCst), 0, "not before the current task yields");
        tokio::task::yield_now().await;
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }
}
