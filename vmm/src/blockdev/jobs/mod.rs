//! Block jobs: QEMU's job state machine, verbs, events and progress, with the copy work of each
//! job type ([`stream`], [`commit`]) on a thread of its own.
//!
//! Threading. A job's thread runs its [`JobDriver::run`] and checks in between chunks
//! ([`JobCtx::checkpoint`]) for pauses, cancellation and rate limits. Verbs arrive from the block
//! service's thread (with the graph's ops lock held) and change the job's state under its mutex:
//! transitions QEMU makes synchronously (pause, resume, finalize, dismiss) emit their events
//! before the command's reply; those QEMU's job makes asynchronously (start, cancel, complete,
//! set-speed, resume) are held back by `hold` until the monitor has queued the reply (a
//! [`Kick`]), so `waiting`, `aborting`, `BLOCK_JOB_COMPLETED`... always follow the reply that
//! caused them, as with QEMU. Finalisation (the graph change: new backing link, pivot) runs with
//! the graph's ops lock held, on the job's thread (`auto-finalize`) or on the service's
//! (`job-finalize`).
//!
//! Lock order: graph ops lock, then a job's state, then the manager's list, then the graph's
//! tables. Events are emitted with the job's state locked, so a job's events are in order.

pub mod commit;
pub mod copy;
pub mod ratelimit;
pub mod status;
pub mod stream;

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use block::{BlockError, BlockNode};
use monitor::block::types::{
    BlockDeviceIoStatus, BlockJobInfo, BlockdevOnError, JobInfo, JobStatus, JobType,
};
use monitor::block::{JobApi, JobVerb, Kick};
use monitor::control::ControlError;
use monitor::events::EventBus;
use monitor::events::catalog::{
    BlockErrorAction, BlockJobCancelled, BlockJobCompleted, BlockJobError, BlockJobPending, BlockJobProgress,
    BlockJobReady, IoOperationType, JobStatusChange,
};

use self::copy::{CopyError, IoOp};
use self::ratelimit::RateLimit;
use self::status::{transition_allowed, verb_allowed, verb_error};
use super::graph::{BlockGraph, id_wellformed};

/// How a job's run ended without success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    Cancelled,
    Failed(String),
}

impl JobError {
    fn text(&self) -> String {
        match self {
            JobError::Cancelled => "Operation canceled".into(),
            JobError::Failed(m) => m.clone(),
        }
    }
}

/// The work of one job type.
pub trait JobDriver: Send {
    /// Copies; returns when done, failed or cancelled. Called on the job's thread.
    fn run(&mut self, ctx: &JobCtx<'_>) -> Result<(), JobError>;
    /// The graph change that makes the result visible (ops lock held).
    fn prepare(&mut self, graph: &BlockGraph) -> Result<(), String>;
    /// Undoes what `run` set up when the job fails or is cancelled (ops lock held).
    fn abort(&mut self, _graph: &BlockGraph) {}
    /// Releases what the job held, after `prepare` or `abort` (ops lock held).
    fn clean(&mut self, _graph: &BlockGraph) {}
}

/// What a new job is.
pub struct JobSpec {
    pub id: String,
    pub kind: JobType,
    pub speed: u64,
    pub on_error: BlockdevOnError,
    pub auto_finalize: bool,
    pub auto_dismiss: bool,
    /// Nodes the job blocks (`Node 'x' is busy: block device is in use by block job: stream`).
    pub covered: Vec<Arc<BlockNode>>,
    /// Active commit: reaches READY, completes on request, a soft cancel after READY completes
    /// without pivot.
    pub mirror_like: bool,
    /// The progress total known at start (`len` of query-block-jobs).
    pub len: u64,
}

struct JobState {
    status: JobStatus,
    user_paused: bool,
    /// Reasons to stay paused (the user's pause, an error stop, quit's drain).
    pause_count: u32,
    /// Deferred verbs whose effect must wait for their reply (see the module doc).
    hold: u32,
    rate: RateLimit,
    speed_changed: bool,
    len: u64,
    offset: u64,
    busy: bool,
    cancel_requested: bool,
    force_cancel: bool,
    should_complete: bool,
    auto_finalize: bool,
    auto_dismiss: bool,
    error: Option<String>,
    io_status: BlockDeviceIoStatus,
    /// Paused by quit's drain.
    drained: bool,
}

/// One job.
pub struct Job {
    pub id: String,
    pub kind: JobType,
    mirror_like: bool,
    on_error: BlockdevOnError,
    covered: Vec<Arc<BlockNode>>,
    st: Mutex<JobState>,
    cv: Condvar,
    driver: Mutex<Option<Box<dyn JobDriver>>>,
    events: EventBus,
}

impl Job {
    fn lock(&self) -> MutexGuard<'_, JobState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, JobState>) -> MutexGuard<'a, JobState> {
        self.cv.wait(g).unwrap_or_else(|p| p.into_inner())
    }

    fn wait_timeout<'a>(&self, g: MutexGuard<'a, JobState>, d: Duration) -> MutexGuard<'a, JobState> {
        match self.cv.wait_timeout(g, d) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }

    /// Changes status and emits JOB_STATUS_CHANGE.
    fn transition(&self, st: &mut JobState, to: JobStatus) {
        if !transition_allowed(st.status, to) {
            tracing::error!("job {}: transition {:?} -> {:?} is not in QEMU's table", self.id, st.status, to);
        }
        st.status = to;
        self.events.emit(&JobStatusChange { id: self.id.clone(), status: to });
        self.cv.notify_all();
    }

    fn progress(&self, st: &JobState) -> BlockJobProgress {
        BlockJobProgress {
            kind: self.kind,
            device: self.id.clone(),
            len: st.len as i64,
            offset: st.offset as i64,
            speed: st.rate.speed() as i64,
        }
    }

    fn take_driver(&self) -> Option<Box<dyn JobDriver>> {
        self.driver.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put_driver(&self, d: Box<dyn JobDriver>) {
        *self.driver.lock().unwrap_or_else(|p| p.into_inner()) = Some(d);
    }

    /// A deferred effect: the job waits until the kick runs.
    fn hold_kick(self: &Arc<Self>, st: &mut JobState) -> Kick {
        st.hold += 1;
        let job = self.clone();
        Kick::new(move || {
            let mut st = job.lock();
            st.hold = st.hold.saturating_sub(1);
            job.cv.notify_all();
        })
    }

    /// Whether the job still blocks its nodes (not concluded).
    fn active(&self) -> bool {
        !matches!(self.lock().status, JobStatus::Concluded | JobStatus::Null)
    }

    pub fn status(&self) -> JobStatus {
        self.lock().status
    }

    /// `BlockJobInfo` (query-block-jobs).
    pub fn block_info(&self) -> BlockJobInfo {
        let st = self.lock();
        let drained_pending =
            self.mirror_like && matches!(st.status, JobStatus::Waiting | JobStatus::Pending);
        BlockJobInfo {
            kind: self.kind.as_str().into(),
            device: self.id.clone(),
            len: st.len as i64,
            offset: st.offset as i64,
            busy: st.busy,
            paused: st.pause_count > 0 || drained_pending,
            speed: st.rate.speed() as i64,
            io_status: st.io_status,
            ready: matches!(st.status, JobStatus::Ready | JobStatus::Standby),
            status: st.status,
            auto_finalize: st.auto_finalize,
            auto_dismiss: st.auto_dismiss,
            error: st.error.clone(),
        }
    }

    /// `JobInfo` (query-jobs).
    pub fn job_info(&self) -> JobInfo {
        let st = self.lock();
        JobInfo {
            id: self.id.clone(),
            kind: self.kind,
            status: st.status,
            current_progress: st.offset as i64,
            total_progress: st.len as i64,
            error: st.error.clone(),
        }
    }
}

/// What an I/O error does to a job (`on-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    Report,
    Ignore,
    Stop,
}

/// The driver's view of its job.
pub struct JobCtx<'a> {
    job: &'a Job,
}

impl JobCtx<'_> {
    /// Between chunks: waits while the job is paused or a verb's reply is pending; fails with
    /// [`JobError::Cancelled`] once the job is force-cancelled.
    pub fn checkpoint(&self) -> Result<(), JobError> {
        let mut st = self.job.lock();
        loop {
            // A verb's effect (cancel, complete, new speed) waits for its reply.
            if st.hold > 0 {
                st.busy = false;
                st = self.job.wait(st);
                continue;
            }
            if st.force_cancel {
                st.busy = false;
                return Err(JobError::Cancelled);
            }
            if st.pause_count > 0 {
                st.busy = false;
                st = self.job.wait(st);
                continue;
            }
            return Ok(());
        }
    }

    /// Whether the job is doing I/O right now (`busy` of query-block-jobs).
    pub fn set_busy(&self, busy: bool) {
        self.job.lock().busy = busy;
    }

    /// Accounts `n` copied bytes against the speed limit and sleeps as long as it says (waking
    /// for a cancel or a speed change).
    pub fn rate_limit(&self, n: u64) -> Result<(), JobError> {
        let mut st = self.job.lock();
        let now = Instant::now();
        let delay = st.rate.delay(n, now);
        if delay.is_zero() {
            return Ok(());
        }
        let deadline = now + delay;
        st.busy = false;
        loop {
            if st.hold > 0 {
                st = self.job.wait(st);
                continue;
            }
            if st.force_cancel {
                return Err(JobError::Cancelled);
            }
            if st.speed_changed {
                st.speed_changed = false;
                break;
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self.job.wait_timeout(st, deadline - now);
        }
        Ok(())
    }

    /// The largest chunk to copy at once so that the speed limit is kept smoothly.
    pub fn chunk_limit(&self, max: u64, granule: u64) -> u64 {
        let st = self.job.lock();
        match st.rate.speed() {
            0 => max,
            _ => st.rate.slice_quota().next_multiple_of(granule.max(1)).clamp(granule.max(1), max),
        }
    }

    pub fn set_len(&self, len: u64) {
        self.job.lock().len = len;
    }

    pub fn set_progress(&self, offset: u64, len: u64) {
        let mut st = self.job.lock();
        st.offset = offset;
        st.len = len;
    }

    pub fn add_offset(&self, n: u64) {
        let mut st = self.job.lock();
        st.offset = st.offset.saturating_add(n);
    }

    pub fn offset(&self) -> u64 {
        self.job.lock().offset
    }

    /// Applies `on-error` to a failed copy: emits BLOCK_JOB_ERROR and, for `stop` (or `enospc`
    /// with ENOSPC), pauses the job until `block-job-resume`.
    pub fn error_action(&self, e: &CopyError) -> ErrorAction {
        let errno = e.err.errno();
        let enospc = errno == Some(libc::ENOSPC);
        let action = match self.job.on_error {
            BlockdevOnError::Report => ErrorAction::Report,
            BlockdevOnError::Ignore => ErrorAction::Ignore,
            BlockdevOnError::Stop => ErrorAction::Stop,
            BlockdevOnError::Enospc | BlockdevOnError::Auto => {
                if enospc {
                    ErrorAction::Stop
                } else {
                    ErrorAction::Report
                }
            }
        };
        let mut st = self.job.lock();
        self.job.events.emit(&BlockJobError {
            device: self.job.id.clone(),
            operation: match e.op {
                IoOp::Read => IoOperationType::Read,
                IoOp::Write => IoOperationType::Write,
            },
            action: match action {
                ErrorAction::Report => BlockErrorAction::Report,
                ErrorAction::Ignore => BlockErrorAction::Ignore,
                ErrorAction::Stop => BlockErrorAction::Stop,
            },
        });
        if action == ErrorAction::Stop {
            if !st.user_paused {
                st.user_paused = true;
                st.pause_count += 1;
                match st.status {
                    JobStatus::Running => self.job.transition(&mut st, JobStatus::Paused),
                    JobStatus::Ready => self.job.transition(&mut st, JobStatus::Standby),
                    _ => {}
                }
            }
            st.io_status = if enospc { BlockDeviceIoStatus::Nospace } else { BlockDeviceIoStatus::Failed };
        }
        action
    }

    /// READY (active commit in sync): status and BLOCK_JOB_READY, once, from `running`.
    /// Returns false if the job is paused just now (the caller tries again later).
    pub fn set_ready(&self) -> bool {
        let mut st = self.job.lock();
        match st.status {
            JobStatus::Ready | JobStatus::Standby => true,
            JobStatus::Running => {
                // In sync: nothing in flight until new writes come.
                st.busy = false;
                self.job.transition(&mut st, JobStatus::Ready);
                self.job.events.emit(&BlockJobReady(self.job.progress(&st)));
                true
            }
            _ => false,
        }
    }

    /// `block-job-complete` was given (and its reply is out).
    pub fn should_complete(&self) -> bool {
        let st = self.job.lock();
        st.hold == 0 && st.should_complete
    }

    /// A non-forced cancel after READY (with its reply out): finish without pivot.
    pub fn soft_cancelled(&self) -> bool {
        let st = self.job.lock();
        st.hold == 0 && st.cancel_requested && !st.force_cancel
    }

    /// Idles (a job in sync waiting for new writes or a verb) for at most `d`.
    pub fn idle(&self, d: Duration) -> Result<(), JobError> {
        let mut st = self.job.lock();
        while st.hold > 0 {
            st = self.job.wait(st);
        }
        if st.force_cancel {
            return Err(JobError::Cancelled);
        }
        if st.should_complete || st.cancel_requested {
            return Ok(());
        }
        st.busy = false;
        let _st = self.job.wait_timeout(st, d);
        Ok(())
    }
}

/// The text a failed copy leaves in the job (QEMU: `strerror`).
pub fn error_text(e: &BlockError) -> String {
    match e.errno() {
        Some(n) => block::error::os_text(&std::io::Error::from_raw_os_error(n)),
        None => e.to_string(),
    }
}

/// Every job, newest first.
pub struct JobManager {
    jobs: Mutex<Vec<Arc<Job>>>,
    events: EventBus,
    graph: Arc<BlockGraph>,
}

impl JobManager {
    pub fn new(events: EventBus, graph: Arc<BlockGraph>) -> Arc<Self> {
        Arc::new(JobManager { jobs: Mutex::new(Vec::new()), events, graph })
    }

    fn list(&self) -> MutexGuard<'_, Vec<Arc<Job>>> {
        self.jobs.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn jobs(&self) -> Vec<Arc<Job>> {
        self.list().clone()
    }

    pub fn find(&self, id: &str) -> Option<Arc<Job>> {
        self.list().iter().find(|j| j.id == id).cloned()
    }

    fn remove(&self, job: &Arc<Job>) {
        self.list().retain(|j| !Arc::ptr_eq(j, job));
    }

    /// The running job that blocks `node`, if any.
    pub fn covering(&self, node: &Arc<BlockNode>) -> Option<Arc<Job>> {
        self.jobs().into_iter().find(|j| j.covered.iter().any(|n| Arc::ptr_eq(n, node)) && j.active())
    }

    /// Every node a running job blocks (kept by the graph's garbage collection).
    pub fn covered_nodes(&self) -> Vec<Arc<BlockNode>> {
        self.jobs().iter().filter(|j| j.active()).flat_map(|j| j.covered.clone()).collect()
    }

    fn gc(&self) {
        let keep = self.covered_nodes();
        self.graph.collect_garbage(&keep);
    }

    /// Creates and starts a job (`created`, `running`); the returned kick lets its thread go.
    /// The caller holds the graph's ops lock.
    pub fn start(self: &Arc<Self>, spec: JobSpec, driver: Box<dyn JobDriver>) -> Result<Kick, String> {
        if !id_wellformed(&spec.id) {
            return Err(format!("Invalid job ID '{}'", spec.id));
        }
        if self.find(&spec.id).is_some() {
            return Err(format!("Job ID '{}' already in use", spec.id));
        }
        let job = Arc::new(Job {
            id: spec.id,
            kind: spec.kind,
            mirror_like: spec.mirror_like,
            on_error: spec.on_error,
            covered: spec.covered,
            st: Mutex::new(JobState {
                status: JobStatus::Undefined,
                user_paused: false,
                pause_count: 0,
                hold: 0,
                rate: RateLimit::new(spec.speed),
                speed_changed: false,
                len: spec.len,
                offset: 0,
                busy: false,
                cancel_requested: false,
                force_cancel: false,
                should_complete: false,
                auto_finalize: spec.auto_finalize,
                auto_dismiss: spec.auto_dismiss,
                error: None,
                io_status: BlockDeviceIoStatus::Ok,
                drained: false,
            }),
            cv: Condvar::new(),
            driver: Mutex::new(Some(driver)),
            events: self.events.clone(),
        });
        self.list().insert(0, job.clone());
        let kick = {
            let mut st = job.lock();
            job.transition(&mut st, JobStatus::Created);
            job.transition(&mut st, JobStatus::Running);
            job.hold_kick(&mut st)
        };
        let (mgr, j) = (self.clone(), job.clone());
        let name: String = format!("job-{}", job.id).chars().take(15).collect();
        if let Err(e) = std::thread::Builder::new().name(name).spawn(move || mgr.run_job(j)) {
            drop(kick);
            self.abort(&job, JobError::Failed(format!("Cannot start the job thread: {e}")));
            return Err(format!("Cannot start the job thread: {e}"));
        }
        Ok(kick)
    }

    fn run_job(&self, job: Arc<Job>) {
        lower_priority();
        {
            let mut st = job.lock();
            while st.hold > 0 && !st.force_cancel {
                st = job.wait(st);
            }
        }
        let Some(mut driver) = job.take_driver() else { return };
        let r = driver.run(&JobCtx { job: &job });
        job.put_driver(driver);
        self.run_finished(&job, r);
    }

    /// After `run`: success goes to waiting → pending (→ finalize), failure to aborting.
    fn run_finished(&self, job: &Arc<Job>, r: Result<(), JobError>) {
        let r = {
            let mut st = job.lock();
            // A verb's effect waits for its reply, and a paused job does not complete.
            while st.hold > 0 || (st.pause_count > 0 && !st.force_cancel) {
                st.busy = false;
                st = job.wait(st);
            }
            st.busy = false;
            match r {
                Ok(()) if st.force_cancel => Err(JobError::Cancelled),
                other => other,
            }
        };
        match r {
            Ok(()) => {
                let auto = {
                    let mut st = job.lock();
                    job.transition(&mut st, JobStatus::Waiting);
                    job.transition(&mut st, JobStatus::Pending);
                    if !st.auto_finalize {
                        self.events.emit(&BlockJobPending { kind: job.kind, id: job.id.clone() });
                    }
                    st.auto_finalize
                };
                if auto {
                    let _ops = self.graph.lock_ops();
                    self.finalize(job);
                }
            }
            Err(e) => {
                let _ops = self.graph.lock_ops();
                self.abort(job, e);
            }
        }
    }

    /// Finalises a pending job: the graph change, BLOCK_JOB_COMPLETED, concluded (and null with
    /// auto-dismiss). The caller holds the graph's ops lock.
    fn finalize(&self, job: &Arc<Job>) {
        if job.status() != JobStatus::Pending {
            return;
        }
        let Some(mut driver) = job.take_driver() else { return };
        match driver.prepare(&self.graph) {
            Ok(()) => {
                driver.clean(&self.graph);
                {
                    let mut st = job.lock();
                    let p = job.progress(&st);
                    self.events.emit(&BlockJobCompleted {
                        kind: p.kind,
                        device: p.device,
                        len: p.len,
                        offset: p.offset,
                        speed: p.speed,
                        error: None,
                    });
                    job.transition(&mut st, JobStatus::Concluded);
                    if st.auto_dismiss {
                        self.dismiss(job, &mut st);
                    }
                };
                self.gc();
            }
            Err(msg) => {
                job.put_driver(driver);
                self.abort(job, JobError::Failed(msg));
            }
        }
    }

    /// Ends a failed or cancelled job: aborting, the driver's abort, BLOCK_JOB_CANCELLED or
    /// BLOCK_JOB_COMPLETED with the error, concluded (and null with auto-dismiss). The caller
    /// holds the graph's ops lock.
    fn abort(&self, job: &Arc<Job>, e: JobError) {
        {
            let mut st = job.lock();
            match st.status {
                JobStatus::Paused => job.transition(&mut st, JobStatus::Running),
                JobStatus::Standby => job.transition(&mut st, JobStatus::Ready),
                JobStatus::Concluded | JobStatus::Null => return,
                _ => {}
            }
            st.error = Some(e.text());
            job.transition(&mut st, JobStatus::Aborting);
        }
        if let Some(mut d) = job.take_driver() {
            d.abort(&self.graph);
            d.clean(&self.graph);
        }
        {
            let mut st = job.lock();
            let p = job.progress(&st);
            match &e {
                JobError::Cancelled => self.events.emit(&BlockJobCancelled(p)),
                JobError::Failed(m) => self.events.emit(&BlockJobCompleted {
                    kind: p.kind,
                    device: p.device,
                    len: p.len,
                    offset: p.offset,
                    speed: p.speed,
                    error: Some(m.clone()),
                }),
            }
            job.transition(&mut st, JobStatus::Concluded);
            if st.auto_dismiss {
                self.dismiss(job, &mut st);
            }
        }
        self.gc();
    }

    /// Concluded → null: the job leaves the list, then the event goes out (so a query after
    /// the event never sees it).
    fn dismiss(&self, job: &Arc<Job>, st: &mut JobState) {
        self.remove(job);
        job.transition(st, JobStatus::Null);
    }

    /// A job verb (`job-*`, `block-job-*`). The caller holds the graph's ops lock.
    pub fn verb(&self, id: &str, api: JobApi, verb: JobVerb) -> Result<Kick, ControlError> {
        let Some(job) = self.find(id) else {
            return Err(match api {
                JobApi::Block => ControlError::BlockJobNotFound(id.to_string()),
                JobApi::Generic => ControlError::Failed("Job not found".into()),
            });
        };
        let failed = |m: String| Err(ControlError::Failed(m));
        let mut st = job.lock();
        match verb {
            JobVerb::Cancel { force: false } if api == JobApi::Block && st.user_paused => {
                return failed(format!("The block job for device '{id}' is currently paused"));
            }
            JobVerb::Resume if !st.user_paused || st.pause_count == 0 => {
                return failed("Can't resume a job that was not paused".into());
            }
            _ => {}
        }
        if !verb_allowed(verb, st.status) {
            return failed(verb_error(id, st.status, verb));
        }
        match verb {
            JobVerb::Pause => {
                if st.user_paused {
                    return failed("Job is already paused".into());
                }
                st.user_paused = true;
                st.pause_count += 1;
                match st.status {
                    JobStatus::Running => job.transition(&mut st, JobStatus::Paused),
                    JobStatus::Ready => job.transition(&mut st, JobStatus::Standby),
                    _ => {}
                }
                Ok(Kick::none())
            }
            JobVerb::Resume => {
                st.user_paused = false;
                st.pause_count -= 1;
                st.io_status = BlockDeviceIoStatus::Ok;
                if st.pause_count == 0 {
                    unpause(&job, &mut st);
                }
                Ok(job.hold_kick(&mut st))
            }
            JobVerb::SetSpeed(s) => {
                if s < 0 {
                    return failed("Invalid parameter 'speed'".into());
                }
                st.rate.set_speed(s as u64);
                st.speed_changed = true;
                Ok(job.hold_kick(&mut st))
            }
            JobVerb::Complete => {
                if st.cancel_requested || !job.mirror_like {
                    return failed(format!("The active block job '{id}' cannot be completed"));
                }
                st.should_complete = true;
                Ok(job.hold_kick(&mut st))
            }
            JobVerb::Cancel { force } => {
                let ready = matches!(st.status, JobStatus::Ready | JobStatus::Standby);
                let force = force || !job.mirror_like || !ready;
                if st.user_paused {
                    st.user_paused = false;
                    st.pause_count -= 1;
                    st.io_status = BlockDeviceIoStatus::Ok;
                    if st.pause_count == 0 {
                        unpause(&job, &mut st);
                    }
                }
                let deferred = matches!(st.status, JobStatus::Waiting | JobStatus::Pending);
                if deferred && !force {
                    // QEMU ignores a soft cancel of a job that has finished its work.
                    return Ok(Kick::none());
                }
                st.cancel_requested = true;
                st.force_cancel |= force;
                if deferred {
                    drop(st);
                    self.abort(&job, JobError::Cancelled);
                    return Ok(Kick::none());
                }
                Ok(job.hold_kick(&mut st))
            }
            JobVerb::Finalize => {
                drop(st);
                self.finalize(&job);
                Ok(Kick::none())
            }
            JobVerb::Dismiss => {
                self.dismiss(&job, &mut st);
                Ok(Kick::none())
            }
        }
    }

    pub fn query_block_jobs(&self) -> Vec<BlockJobInfo> {
        self.jobs().iter().map(|j| j.block_info()).collect()
    }

    pub fn query_jobs(&self) -> Vec<JobInfo> {
        self.jobs().iter().map(|j| j.job_info()).collect()
    }

    /// `quit` with jobs: as QEMU's `bdrv_drain_all_begin` + `job_cancel_sync_all`: running jobs
    /// pause (`paused`/`standby`), then each, newest first, is force-cancelled (it leaves the
    /// pause: `running`/`ready`, then `aborting`, BLOCK_JOB_CANCELLED, `concluded`) and
    /// dismissed (`null`). Returns when every job is gone. Must not be called with the graph's
    /// ops lock held (the jobs take it to finish).
    pub fn cancel_all_sync(&self) {
        for job in self.jobs() {
            let mut st = job.lock();
            match st.status {
                JobStatus::Running => job.transition(&mut st, JobStatus::Paused),
                JobStatus::Ready => job.transition(&mut st, JobStatus::Standby),
                _ => continue,
            }
            st.drained = true;
            st.pause_count += 1;
        }
        while let Some(job) = self.jobs().into_iter().next() {
            let mut st = job.lock();
            match st.status {
                JobStatus::Concluded => {
                    self.dismiss(&job, &mut st);
                    continue;
                }
                JobStatus::Null => {
                    drop(st);
                    self.remove(&job);
                    continue;
                }
                _ => {}
            }
            if st.user_paused {
                st.user_paused = false;
                st.pause_count -= 1;
            }
            if st.drained {
                st.drained = false;
                st.pause_count -= 1;
            }
            st.cancel_requested = true;
            st.force_cancel = true;
            st.hold = 0;
            unpause(&job, &mut st);
            if matches!(st.status, JobStatus::Waiting | JobStatus::Pending) {
                drop(st);
                let _ops = self.graph.lock_ops();
                self.abort(&job, JobError::Cancelled);
                continue;
            }
            job.cv.notify_all();
            while !matches!(st.status, JobStatus::Concluded | JobStatus::Null) {
                st = job.wait(st);
            }
        }
    }
}

/// Job threads (and the copy workers they start, which inherit it) run at nice 10: a job at
/// full speed leaves the CPU to the monitor and the vCPUs when they need it.
fn lower_priority() {
    // SAFETY: setpriority only reads its integer arguments; `who == 0` is the calling thread on
    // Linux, whose nice value is per thread.
    let r = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    if r != 0 {
        tracing::debug!("cannot lower a job thread's priority: {}", std::io::Error::last_os_error());
    }
}

/// Back from a pause: `paused` → `running`, `standby` → `ready`.
fn unpause(job: &Job, st: &mut JobState) {
    match st.status {
        JobStatus::Paused => job.transition(st, JobStatus::Running),
        JobStatus::Standby => job.transition(st, JobStatus::Ready),
        _ => {}
    }
    job.cv.notify_all();
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor::events::SystemClock;

    /// A job that only passes checkpoints until it is told to stop.
    struct Spin;

    impl JobDriver for Spin {
        fn run(&mut self, ctx: &JobCtx<'_>) -> Result<(), JobError> {
            loop {
                ctx.checkpoint()?;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        fn prepare(&mut self, _graph: &BlockGraph) -> Result<(), String> {
            Ok(())
        }
    }

    fn spec(id: &str) -> JobSpec {
        JobSpec {
            id: id.into(),
            kind: JobType::Stream,
            speed: 0,
            on_error: BlockdevOnError::Report,
            auto_finalize: true,
            auto_dismiss: true,
            covered: Vec::new(),
            mirror_like: false,
            len: 100,
        }
    }

    fn statuses(
        rx: &mut tokio::sync::broadcast::Receiver<Arc<monitor::events::EventMessage>>,
    ) -> Vec<String> {
        let mut v = Vec::new();
        while let Ok(e) = rx.try_recv() {
            match e.value["data"]["status"].as_str() {
                Some(s) => v.push(s.to_string()),
                None => v.push(e.name.to_string()),
            }
        }
        v
    }

    #[test]
    fn deferred_verbs_wait_for_their_kick() {
        let bus = EventBus::new(Box::new(SystemClock));
        let mut rx = bus.subscribe();
        let mgr = JobManager::new(bus, Arc::new(BlockGraph::new()));
        let kick = mgr.start(spec("j"), Box::new(Spin)).unwrap();
        assert_eq!(statuses(&mut rx), ["created", "running"]);
        kick.run();
        // Synchronous verbs: their event is out before the verb returns.
        mgr.verb("j", JobApi::Block, JobVerb::Pause).unwrap().run();
        assert_eq!(statuses(&mut rx), ["paused"]);
        assert_eq!(
            mgr.verb("j", JobApi::Block, JobVerb::Cancel { force: false }).unwrap_err(),
            ControlError::Failed("The block job for device 'j' is currently paused".into())
        );
        let resume = mgr.verb("j", JobApi::Block, JobVerb::Resume).unwrap();
        assert_eq!(statuses(&mut rx), ["running"]);
        resume.run();
        // A cancel takes effect only once its kick runs (after the reply, in the monitor).
        let cancel = mgr.verb("j", JobApi::Generic, JobVerb::Cancel { force: true }).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        assert!(statuses(&mut rx).is_empty(), "nothing happens before the kick");
        assert_eq!(mgr.find("j").map(|j| j.status()), Some(JobStatus::Running));
        cancel.run();
        let deadline = Instant::now() + Duration::from_secs(10);
        while mgr.find("j").is_some() {
            assert!(Instant::now() < deadline, "the job should end");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(statuses(&mut rx), ["aborting", "BLOCK_JOB_CANCELLED", "concluded", "null"]);
        assert_eq!(
            mgr.verb("j", JobApi::Block, JobVerb::Pause).unwrap_err(),
            ControlError::BlockJobNotFound("j".into())
        );
    }

    #[test]
    fn quit_drains_then_cancels_every_job() {
        let bus = EventBus::new(Box::new(SystemClock));
        let mut rx = bus.subscribe();
        let mgr = JobManager::new(bus, Arc::new(BlockGraph::new()));
        mgr.start(spec("a"), Box::new(Spin)).unwrap().run();
        let mut s = spec("b");
        s.auto_dismiss = false;
        mgr.start(s, Box::new(Spin)).unwrap().run();
        mgr.verb("a", JobApi::Block, JobVerb::Pause).unwrap().run();
        statuses(&mut rx);
        mgr.cancel_all_sync();
        assert!(mgr.jobs().is_empty());
        let got: Vec<String> = {
            let mut v = Vec::new();
            while let Ok(e) = rx.try_recv() {
                let id = e.value["data"]["id"].as_str().or(e.value["data"]["device"].as_str()).unwrap_or("");
                let what = e.value["data"]["status"].as_str().unwrap_or(e.name);
                v.push(format!("{id}:{what}"));
            }
            v
        };
        assert_eq!(
            got,
            [
                "b:paused",
                "b:running",
                "b:aborting",
                "b:BLOCK_JOB_CANCELLED",
                "b:concluded",
                "b:null",
                "a:running",
                "a:aborting",
                "a:BLOCK_JOB_CANCELLED",
                "a:concluded",
                "a:null"
            ]
        );
    }
}
