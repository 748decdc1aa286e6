//! The block service: one thread that carries out the monitor's [`BlockRequest`]s in arrival
//! order, so the control loop never waits on file I/O (it only forwards them). Structural
//! requests hold the graph's ops lock while they run; queries do not. Jobs run on threads of
//! their own ([`super::jobs`]).

use std::sync::Arc;
use std::sync::mpsc;

use monitor::block::{BlockRequest, Kick};
use monitor::control::ControlError;
use monitor::events::EventBus;

use super::graph::BlockGraph;
use super::jobs::JobManager;
use super::{manage, open, qemu_io, query, snapshot, start};

/// Copy threads per job (1 leaves the other core to the monitor and the guest; override with
/// `VMM_JOB_WORKERS`).
const DEFAULT_WORKERS: usize = 1;

enum Work {
    Request(Box<BlockRequest>),
    /// Quit: cancel every job (with their events) and answer when they are gone.
    CancelAll(mpsc::Sender<()>),
}

/// The handle the control loop holds.
pub struct BlockService {
    tx: mpsc::Sender<Work>,
    graph: Arc<BlockGraph>,
    jobs: Arc<JobManager>,
}

struct Worker {
    graph: Arc<BlockGraph>,
    jobs: Arc<JobManager>,
    workers: usize,
}

fn failed(e: String) -> ControlError {
    ControlError::Failed(e)
}

impl BlockService {
    /// Starts the service thread.
    pub fn start(graph: Arc<BlockGraph>, events: EventBus) -> Result<Self, String> {
        let jobs = JobManager::new(events, graph.clone());
        let workers = std::env::var("VMM_JOB_WORKERS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| (1..=16).contains(n))
            .unwrap_or(DEFAULT_WORKERS);
        let (tx, rx) = mpsc::channel::<Work>();
        let w = Worker { graph: graph.clone(), jobs: jobs.clone(), workers };
        std::thread::Builder::new()
            .name("block".into())
            .spawn(move || {
                while let Ok(work) = rx.recv() {
                    match work {
                        Work::Request(r) => w.handle(*r),
                        Work::CancelAll(done) => {
                            w.jobs.cancel_all_sync();
                            let _ = done.send(());
                        }
                    }
                }
            })
            .map_err(|e| format!("cannot start the block service thread: {e}"))?;
        Ok(BlockService { tx, graph, jobs })
    }

    pub fn graph(&self) -> &Arc<BlockGraph> {
        &self.graph
    }

    pub fn jobs(&self) -> &Arc<JobManager> {
        &self.jobs
    }

    /// Queues a request; its reply comes from the service thread.
    pub fn submit(&self, req: BlockRequest) {
        // If the thread is gone the request (and its reply channel) is dropped, which the
        // monitor reports as "The machine is shutting down".
        let _ = self.tx.send(Work::Request(Box::new(req)));
    }

    /// Cancels every job and waits until they are gone (quit).
    pub fn cancel_all_jobs(&self) {
        let (done, wait) = mpsc::channel();
        if self.tx.send(Work::CancelAll(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

impl Worker {
    fn handle(&self, req: BlockRequest) {
        let g = &*self.graph;
        let jobs = &self.jobs;
        match req {
            BlockRequest::Add { options, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(open::blockdev_add(g, &options).map_err(failed));
            }
            BlockRequest::Del { node_name, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(manage::blockdev_del(g, jobs, &node_name).map_err(failed));
            }
            BlockRequest::QueryBlock { reply } => {
                let _ = reply.send(query::query_block(g).map_err(failed));
            }
            BlockRequest::QueryNamedNodes { flat, reply } => {
                let _ = reply.send(query::named_nodes(g, flat).map_err(failed));
            }
            BlockRequest::QueryBlockstats { query_nodes, reply } => {
                let _ = reply.send(Ok(super::stats::query_blockstats(g, query_nodes)));
            }
            BlockRequest::SnapshotSync { args, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(snapshot::snapshot_sync(g, jobs, &args).map(|_| ()).map_err(failed));
            }
            BlockRequest::Transaction { actions, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(super::transaction::run(g, jobs, &actions).map_err(failed));
            }
            BlockRequest::Snapshot { args, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(snapshot::snapshot(g, jobs, &args).map(|_| ()).map_err(failed));
            }
            BlockRequest::SnapshotInternal { args, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(snapshot::snapshot_internal(g, jobs, &args).map(|_| ()).map_err(failed));
            }
            BlockRequest::SnapshotDeleteInternal { args, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(snapshot::snapshot_delete_internal(g, jobs, &args).map_err(failed));
            }
            BlockRequest::DriveAdd { opts, reply } => {
                // open_drive takes the ops lock itself.
                let _ = reply.send(manage::drive_add(g, &opts).map_err(failed));
            }
            BlockRequest::DriveDel { id, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(manage::drive_del(g, jobs, &id).map_err(failed));
            }
            BlockRequest::SetIoThrottle { args, reply } => {
                let _ = reply.send(manage::set_io_throttle(g, &args));
            }
            BlockRequest::Resize { args, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(manage::block_resize(g, jobs, &args).map_err(failed));
            }
            BlockRequest::Stream { args, reply } => {
                let r = {
                    let _ops = g.lock_ops();
                    start::start_stream(g, jobs, args, self.workers).map_err(failed)
                };
                send_kick(reply, r);
            }
            BlockRequest::Commit { args, reply } => {
                let r = {
                    let _ops = g.lock_ops();
                    start::start_commit(g, jobs, args, self.workers)
                };
                send_kick(reply, r);
            }
            BlockRequest::Job { id, api, verb, reply } => {
                let r = {
                    let _ops = g.lock_ops();
                    jobs.verb(&id, api, verb)
                };
                send_kick(reply, r);
            }
            BlockRequest::QueryBlockJobs { reply } => {
                let _ = reply.send(Ok(jobs.query_block_jobs()));
            }
            BlockRequest::QueryJobs { reply } => {
                let _ = reply.send(Ok(jobs.query_jobs()));
            }
            BlockRequest::HmpCommit { device, reply } => {
                let _ops = g.lock_ops();
                let _ = reply.send(manage::hmp_commit(g, jobs, &device).map_err(failed));
            }
            BlockRequest::QemuIo { device, qdev, command, reply } => {
                let _ops = g.lock_ops();
                let r = qemu_io::target(g, &device, qdev).map(|t| {
                    let out = qemu_io::run(&t, &command);
                    print!("{out}");
                    out
                });
                let _ = reply.send(r.map_err(failed));
            }
        }
    }
}

/// Replies with a kick; if the monitor is gone the kick runs here (dropped with the reply).
fn send_kick(reply: monitor::control::Reply<Kick>, r: Result<Kick, ControlError>) {
    let _ = reply.send(r);
}
