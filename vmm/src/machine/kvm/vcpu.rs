//! vCPU threads and how the control thread stops, resumes and talks to them.
//!
//! Each vCPU has its own thread that owns its `VcpuFd` and loops on KVM_RUN, dispatching port
//! and MMIO exits to the buses. All vCPUs share one `RunControl` (a mutex + condvar) holding the
//! wanted state (run, park, exit), the number of parked threads and a queue of requests per vCPU
//! (closures run on the vCPU thread: register reads for `info registers`, the reset sequence).
//!
//! Kicking a thread out of KVM_RUN: set `kvm_run.immediate_exit`, then send it `SIGRTMIN`
//! (whose handler does nothing). The thread clears `immediate_exit` *before* it looks at the
//! wanted state, so a kick is never lost: either the thread sees the new state, or KVM_RUN
//! returns EINTR at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;

use kvm_ioctls::{VcpuExit, VcpuFd};

use super::bus::Bus;
use super::events::GuestEvents;
use crate::machine::{GuestEvent, MachineError};

/// Work run on a vCPU thread with its `VcpuFd`.
pub type VcpuRequest = Box<dyn FnOnce(&mut VcpuFd) + Send>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Run,
    Park,
    Exit,
}

struct ControlState {
    want: Want,
    parked: usize,
    requests: Vec<VecDeque<VcpuRequest>>,
}

/// What every vCPU thread and the control thread share.
pub struct RunControl {
    state: Mutex<ControlState>,
    cv: Condvar,
    kicks: Vec<KickTarget>,
}

/// How to get one vCPU thread out of KVM_RUN.
struct KickTarget {
    /// Address of `kvm_run.immediate_exit` (the mapping lives as long as the VcpuFd, which the
    /// thread hands back when it ends; kicks stop before that).
    immediate_exit: AtomicUsize,
    pthread: AtomicU64,
    tid: AtomicI64,
}

fn kick_signal() -> i32 {
    libc::SIGRTMIN()
}

extern "C" fn on_kick(_: libc::c_int) {}

fn install_kick_handler() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a handler that does nothing is valid; no SA_RESTART,
        // so KVM_RUN returns EINTR.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_kick as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(kick_signal(), &sa, std::ptr::null_mut()) != 0 {
                tracing::error!("cannot install the vCPU kick signal handler");
            }
        }
    });
}

fn unblock_kick_signal() {
    // SAFETY: plain signal-mask manipulation of the calling thread.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, kick_signal());
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

impl RunControl {
    pub fn new(vcpus: usize) -> Arc<Self> {
        install_kick_handler();
        Arc::new(RunControl {
            state: Mutex::new(ControlState {
                want: Want::Park,
                parked: 0,
                requests: (0..vcpus).map(|_| VecDeque::new()).collect(),
            }),
            cv: Condvar::new(),
            kicks: (0..vcpus)
                .map(|_| KickTarget {
                    immediate_exit: AtomicUsize::new(0),
                    pthread: AtomicU64::new(0),
                    tid: AtomicI64::new(0),
                })
                .collect(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ControlState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn kick(&self, index: usize) {
        let k = &self.kicks[index];
        let ie = k.immediate_exit.load(Ordering::SeqCst);
        if ie != 0 {
            // SAFETY: `ie` points into the vCPU's kvm_run mapping, valid while the thread runs
            // (the thread owns the VcpuFd and returns it only after leaving its loop, and the
            // address is cleared before that). A racy byte store is what KVM expects here.
            unsafe { std::ptr::write_volatile(ie as *mut u8, 1) };
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        let thread = k.pthread.load(Ordering::SeqCst);
        if thread != 0 {
            // SAFETY: the pthread_t of a live vCPU thread (set by the thread itself, cleared
            // before it exits); sending a signal with a no-op handler.
            unsafe { libc::pthread_kill(thread as libc::pthread_t, kick_signal()) };
        }
    }

    fn set_want(&self, want: Want) -> MutexGuard<'_, ControlState> {
        let mut s = self.lock();
        if s.want != Want::Exit {
            s.want = want;
        }
        self.cv.notify_all();
        s
    }

    /// Ask every vCPU to park without waiting (used from vCPU threads on a guest event).
    pub fn request_park(&self) {
        let s = self.set_want(Want::Park);
        drop(s);
        for i in 0..self.kicks.len() {
            self.kick(i);
        }
    }

    /// Park every vCPU and wait until all are out of KVM_RUN.
    pub fn park_all(&self) {
        drop(self.set_want(Want::Park));
        for i in 0..self.kicks.len() {
            self.kick(i);
        }
        let mut s = self.lock();
        while s.parked < self.kicks.len() && s.want == Want::Park {
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn run_all(&self) {
        drop(self.set_want(Want::Run));
    }

    /// Tell every thread to leave (they are joined by the owner).
    pub fn exit_all(&self) {
        let mut s = self.lock();
        s.want = Want::Exit;
        self.cv.notify_all();
        drop(s);
        for i in 0..self.kicks.len() {
            self.kick(i);
        }
    }

    pub fn thread_id(&self, index: usize) -> i64 {
        self.kicks.get(index).map(|k| k.tid.load(Ordering::SeqCst)).unwrap_or(0)
    }

    /// Run `f` on vCPU `index`'s thread and wait for its result.
    pub fn run_on<R: Send + 'static>(
        &self,
        index: usize,
        f: impl FnOnce(&mut VcpuFd) -> R + Send + 'static,
    ) -> Result<R, MachineError> {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut s = self.lock();
            if s.want == Want::Exit {
                return Err(MachineError::Vcpu(format!("CPU {index} has stopped")));
            }
            let queue = s
                .requests
                .get_mut(index)
                .ok_or_else(|| MachineError::Vcpu(format!("CPU {index} does not exist")))?;
            queue.push_back(Box::new(move |fd: &mut VcpuFd| {
                let _ = tx.send(f(fd));
            }));
            self.cv.notify_all();
        }
        self.kick(index);
        rx.recv().map_err(|_| MachineError::Vcpu(format!("CPU {index} did not answer")))
    }
}

/// What a vCPU thread needs besides its fd.
pub struct VcpuContext {
    pub index: usize,
    pub control: Arc<RunControl>,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub events: Arc<GuestEvents>,
    pub unknown_io: Arc<AtomicU64>,
}

/// Log an access nobody claimed: the first few loudly, the rest at debug level.
fn log_unknown(ctx: &VcpuContext, kind: &str, addr: u64, len: usize, write: Option<&[u8]>) {
    let n = ctx.unknown_io.fetch_add(1, Ordering::Relaxed);
    let what = match write {
        Some(d) => format!("write of {d:02x?}"),
        None => format!("{len}-byte read"),
    };
    if n < 16 {
        tracing::warn!(cpu = ctx.index, "guest {kind} {what} at unassigned {addr:#x} ignored");
    } else {
        tracing::debug!(cpu = ctx.index, "guest {kind} access to unassigned {addr:#x} ignored");
    }
}

enum Next {
    Continue,
    Stop(GuestEvent),
    /// KVM_EXIT_INTERNAL_ERROR: the details are read from kvm_run after the exit is released.
    InternalError,
}

/// QEMU's wording: "KVM internal error. Suberror: N" and the extra data words.
fn internal_error_detail(fd: &mut VcpuFd) -> String {
    let run = fd.get_kvm_run();
    // SAFETY: the last exit was KVM_EXIT_INTERNAL_ERROR, so `internal` is the union member KVM
    // filled in; ndata is clamped to the array length.
    let internal = unsafe { run.__bindgen_anon_1.internal };
    let n = (internal.ndata as usize).min(internal.data.len());
    let mut detail = format!("KVM internal error. Suberror: {}", internal.suberror);
    for (i, d) in internal.data[..n].iter().enumerate() {
        detail.push_str(&format!("\nextra data[{i}]: {d:#018x}"));
    }
    detail
}

fn handle_exit(ctx: &VcpuContext, exit: VcpuExit<'_>) -> Next {
    match exit {
        VcpuExit::IoOut(port, data) => {
            if !ctx.pio.write(u64::from(port), data) {
                log_unknown(ctx, "port", u64::from(port), data.len(), Some(data));
            }
        }
        VcpuExit::IoIn(port, data) => {
            if !ctx.pio.read(u64::from(port), data) {
                data.fill(0xff);
                log_unknown(ctx, "port", u64::from(port), data.len(), None);
            }
        }
        VcpuExit::MmioWrite(addr, data) => {
            if !ctx.mmio.write(addr, data) {
                log_unknown(ctx, "MMIO", addr, data.len(), Some(data));
            }
        }
        VcpuExit::MmioRead(addr, data) => {
            if !ctx.mmio.read(addr, data) {
                data.fill(0xff);
                log_unknown(ctx, "MMIO", addr, data.len(), None);
            }
        }
        VcpuExit::Hlt | VcpuExit::Intr | VcpuExit::IrqWindowOpen | VcpuExit::IoapicEoi(_) => {}
        VcpuExit::Shutdown => return Next::Stop(GuestEvent::Reset { triple_fault: true }),
        VcpuExit::SystemEvent(kind, _) => {
            return Next::Stop(match kind {
                kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => GuestEvent::Shutdown,
                kvm_bindings::KVM_SYSTEM_EVENT_RESET => GuestEvent::Reset { triple_fault: false },
                other => {
                    GuestEvent::InternalError { cpu: ctx.index, detail: format!("KVM system event {other}") }
                }
            });
        }
        VcpuExit::FailEntry(reason, cpu) => {
            return Next::Stop(GuestEvent::InternalError {
                cpu: ctx.index,
                detail: format!(
                    "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {reason:#x} on host CPU {cpu}"
                ),
            });
        }
        VcpuExit::InternalError => return Next::InternalError,
        other => {
            return Next::Stop(GuestEvent::InternalError {
                cpu: ctx.index,
                detail: format!("unexpected KVM exit {other:?}"),
            });
        }
    }
    Next::Continue
}

/// Park until the wanted state is Run again, serving requests meanwhile. Returns false on Exit.
fn park(ctx: &VcpuContext, fd: &mut VcpuFd) -> bool {
    let control = &ctx.control;
    let mut s = control.lock();
    s.parked += 1;
    control.cv.notify_all();
    loop {
        while let Some(req) = s.requests[ctx.index].pop_front() {
            drop(s);
            req(fd);
            s = control.lock();
        }
        match s.want {
            Want::Run => break,
            Want::Exit => {
                s.parked -= 1;
                control.cv.notify_all();
                return false;
            }
            Want::Park => s = control.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
        }
    }
    s.parked -= 1;
    true
}

fn vcpu_loop(ctx: &VcpuContext, fd: &mut VcpuFd) {
    loop {
        fd.set_kvm_immediate_exit(0);
        std::sync::atomic::fence(Ordering::SeqCst);
        let run = {
            let mut s = ctx.control.lock();
            let mut pending = std::mem::take(&mut s.requests[ctx.index]);
            let want = s.want;
            drop(s);
            for req in pending.drain(..) {
                req(fd);
            }
            want
        };
        match run {
            Want::Run => {}
            Want::Park => {
                if park(ctx, fd) {
                    continue;
                }
                return;
            }
            Want::Exit => return,
        }
        let next = match fd.run() {
            Ok(exit) => handle_exit(ctx, exit),
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => Next::Continue,
            Err(e) => Next::Stop(GuestEvent::InternalError {
                cpu: ctx.index,
                detail: format!("KVM_RUN failed: {e}"),
            }),
        };
        match next {
            Next::Continue => {}
            Next::Stop(event) => ctx.events.report(event),
            Next::InternalError => {
                let detail = internal_error_detail(fd);
                ctx.events.report(GuestEvent::InternalError { cpu: ctx.index, detail });
            }
        }
    }
}

/// Start the thread of one vCPU (parked until `run_all`). It returns its fd when it ends.
pub fn spawn(ctx: VcpuContext, mut fd: VcpuFd) -> Result<JoinHandle<VcpuFd>, MachineError> {
    let name = format!("CPU {}/KVM", ctx.index);
    std::thread::Builder::new()
        .name(name)
        .stack_size(256 << 10)
        .spawn(move || {
            unblock_kick_signal();
            let k = &ctx.control.kicks[ctx.index];
            // SAFETY: gettid and pthread_self have no preconditions.
            k.tid.store(unsafe { libc::gettid() } as i64, Ordering::SeqCst);
            // SAFETY: as above.
            k.pthread.store(unsafe { libc::pthread_self() } as u64, Ordering::SeqCst);
            let ie = &mut fd.get_kvm_run().immediate_exit as *mut u8 as usize;
            k.immediate_exit.store(ie, Ordering::SeqCst);
            {
                let _s = ctx.control.lock();
                ctx.control.cv.notify_all();
            }
            vcpu_loop(&ctx, &mut fd);
            // No kick may touch this thread or its mapping from here on.
            let _s = ctx.control.lock();
            k.immediate_exit.store(0, Ordering::SeqCst);
            k.pthread.store(0, Ordering::SeqCst);
            drop(_s);
            fd
        })
        .map_err(|e| MachineError::Vcpu(format!("cannot start a vCPU thread: {e}")))
}

/// Wait until every vCPU thread has published its thread id (so `cpus()` is complete).
pub fn wait_started(control: &RunControl) {
    let mut s = control.lock();
    while control.kicks.iter().any(|k| k.tid.load(Ordering::SeqCst) == 0) {
        let (g, _) = control
            .cv
            .wait_timeout(s, std::time::Duration::from_millis(10))
            .unwrap_or_else(|p| p.into_inner());
        s = g;
    }
}
