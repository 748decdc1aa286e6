//! One thread per active virtqueue, plus a small pool of I/O threads.
//!
//! The queue thread waits on the queue's notify eventfd (written by KVM's ioeventfd when the
//! guest kicks), takes every available chain, checks it ([`super::chain::collect`]) and hands it
//! to the pool. A pool thread serves the chain with the device's [`ChainHandler`] (blocking
//! disk I/O; several requests at once), then itself returns it on the used ring (in completion
//! order, as virtio allows) and raises the queue's MSI-X vector if the guest wants an
//! interrupt: one thread hand-off per request. The `Queue` sits behind a mutex: the queue
//! thread holds it while taking chains, a pool thread while adding one used element.
//!
//! A request the device holds ([`Handled::Retry`]: the drive's error policy stops the VM) is
//! parked, not returned; the queue thread submits the parked chains again when it is resumed
//! after a pause (`cont`), and drops them on a stop (device reset, shutdown).
//!
//! A malformed chain, an available index that jumps past the ring, or a ring write that fails
//! puts the device in NEEDS_RESET (with a config interrupt) and the queue stops taking requests
//! until the device is reset. The control thread can pause the worker: it returns once every
//! request in flight has completed and been returned to the guest, so nothing touches guest
//! memory or the disk while the VM is stopped; resume; or stop and join it (device reset,
//! shutdown: requests in flight finish, their completions are dropped).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::chain::{Chain, collect};
use super::interrupt::VirtioInterrupt;
use crate::machine::kvm::memory::GuestMemory;

/// I/O threads per queue (requests served at once).
pub const IO_THREADS: usize = 4;

/// What a device does with one request (called on the pool threads, several at once).
pub trait ChainHandler: Send + Sync + 'static {
    /// Serves `chain`, or describes a fatal guest error (the device then needs a reset).
    fn handle(&self, chain: &Chain, mem: &GuestMemory) -> Result<Handled, String>;
}

/// What became of a served chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done: this many bytes were written into its device-writable buffers.
    Used(u32),
    /// Not answered: submit it again when the VM resumes.
    Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Run,
    Pause,
    Stop,
}

struct State {
    want: Want,
    parked: bool,
    exited: bool,
}

struct Control {
    state: Mutex<State>,
    cv: Condvar,
    wake: EventFd,
}

impl Control {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn want(&self) -> Want {
        self.lock().want
    }

    fn set(&self, want: Want) {
        let mut s = self.lock();
        s.want = want;
        self.cv.notify_all();
        drop(s);
        let _ = self.wake.write(1);
    }

    /// Parks while paused; false once asked to stop.
    fn wait_runnable(&self) -> bool {
        let mut s = self.lock();
        loop {
            match s.want {
                Want::Run => {
                    s.parked = false;
                    return true;
                }
                Want::Stop => return false,
                Want::Pause => {
                    s.parked = true;
                    self.cv.notify_all();
                    s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
                }
            }
        }
    }
}

/// Everything a queue thread owns.
pub struct WorkerSetup {
    pub name: String,
    pub queue: Queue,
    pub notify: Arc<EventFd>,
    /// The queue's MSI-X vector (the guest may change it at run time).
    pub vector: Arc<AtomicU16>,
    pub mem: GuestMemory,
    pub interrupt: Arc<VirtioInterrupt>,
    pub handler: Arc<dyn ChainHandler>,
}

/// What the queue thread and the pool threads share.
struct Shared {
    name: String,
    queue: Mutex<Queue>,
    mem: GuestMemory,
    vector: Arc<AtomicU16>,
    interrupt: Arc<VirtioInterrupt>,
    handler: Arc<dyn ChainHandler>,
    in_flight: AtomicUsize,
    /// Written when `in_flight` drops to zero.
    idle: EventFd,
    /// Completions go to the used ring (false while stopping: they are dropped).
    deliver: AtomicBool,
    /// NEEDS_RESET was raised: take nothing more.
    broken: AtomicBool,
    /// Chains held for a retry after the next resume.
    parked: Mutex<Vec<Chain>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fail(&self, e: &str) {
        if !self.broken.swap(true, Ordering::SeqCst) {
            self.interrupt.needs_reset(&format!("{}: {e}", self.name));
        }
    }

    /// A pool thread finished `head`: used ring, interrupt, in-flight count.
    fn finish(&self, head: u16, result: Result<u32, String>) {
        if self.deliver.load(Ordering::SeqCst) && !self.broken.load(Ordering::SeqCst) {
            let notify = result.and_then(|used| {
                let mut q = self.queue();
                q.add_used(&self.mem, head, used).map_err(|e| format!("used ring: {e}"))?;
                q.needs_notification(&self.mem).map_err(|e| format!("used ring: {e}"))
            });
            match notify {
                Ok(true) => self.interrupt.signal_used(self.vector.load(Ordering::SeqCst)),
                Ok(false) => {}
                Err(e) => self.fail(&e),
            }
        }
        self.one_less_in_flight();
    }

    /// A pool thread holds `chain` for a retry: it stays off the used ring.
    fn park(&self, chain: Chain) {
        self.parked.lock().unwrap_or_else(|p| p.into_inner()).push(chain);
        self.one_less_in_flight();
    }

    fn one_less_in_flight(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            let _ = self.idle.write(1);
        }
    }
}

/// The I/O threads of one queue.
struct Pool {
    jobs: Option<Sender<Chain>>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    fn start(shared: &Arc<Shared>) -> Result<Self, String> {
        let (tx, rx) = channel::<Chain>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..IO_THREADS {
            let (rx, shared) = (Arc::clone(&rx), Arc::clone(shared));
            let t = std::thread::Builder::new()
                .name(format!("{} io{i}", shared.name))
                .spawn(move || io_thread(&rx, &shared))
                .map_err(|e| format!("cannot start an I/O thread: {e}"))?;
            threads.push(t);
        }
        Ok(Pool { jobs: Some(tx), threads })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a virtio I/O thread panicked");
            }
        }
    }
}

fn io_thread(rx: &Mutex<Receiver<Chain>>, shared: &Shared) {
    loop {
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(chain) = job else { return };
        match shared.handler.handle(&chain, &shared.mem) {
            Ok(Handled::Retry) => shared.park(chain),
            Ok(Handled::Used(n)) => shared.finish(chain.head, Ok(n)),
            Err(e) => shared.finish(chain.head, Err(e)),
        }
    }
}

/// A running queue thread.
pub struct QueueWorker {
    control: Arc<Control>,
    thread: Option<JoinHandle<()>>,
}

impl QueueWorker {
    pub fn spawn(setup: WorkerSetup) -> Result<Self, String> {
        let wake = EventFd::new(EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?;
        let control = Arc::new(Control {
            state: Mutex::new(State { want: Want::Run, parked: false, exited: false }),
            cv: Condvar::new(),
            wake,
        });
        let shared = Arc::new(Shared {
            name: setup.name.clone(),
            queue: Mutex::new(setup.queue),
            mem: setup.mem,
            vector: setup.vector,
            interrupt: setup.interrupt,
            handler: setup.handler,
            in_flight: AtomicUsize::new(0),
            idle: EventFd::new(EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?,
            deliver: AtomicBool::new(true),
            broken: AtomicBool::new(false),
            parked: Mutex::new(Vec::new()),
        });
        let pool = Pool::start(&shared)?;
        let c = Arc::clone(&control);
        let notify = setup.notify;
        let thread = std::thread::Builder::new()
            .name(setup.name)
            .spawn(move || {
                Worker { shared, pool, notify }.run(&c);
                let mut s = c.lock();
                s.exited = true;
                c.cv.notify_all();
            })
            .map_err(|e| format!("cannot start a device thread: {e}"))?;
        Ok(QueueWorker { control, thread: Some(thread) })
    }

    /// Returns once every request in flight has completed and the thread waits.
    pub fn pause(&self) {
        self.control.set(Want::Pause);
        let mut s = self.control.lock();
        while !s.parked && !s.exited {
            s = self.control.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    pub fn resume(&self) {
        self.control.set(Want::Run);
    }

    /// Stops and joins the thread (and its I/O threads).
    pub fn stop(&mut self) {
        self.control.set(Want::Stop);
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            tracing::error!("a virtio queue thread panicked");
        }
    }
}

impl Drop for QueueWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    shared: Arc<Shared>,
    pool: Pool,
    notify: Arc<EventFd>,
}

impl Worker {
    fn run(&mut self, ctl: &Control) {
        loop {
            let want = ctl.want();
            if want != Want::Run {
                self.finish_in_flight(want == Want::Pause);
                if !ctl.wait_runnable() {
                    return;
                }
                // Resumed: the held requests go first.
                if let Err(e) = self.retry_parked() {
                    self.shared.fail(&e);
                }
            }
            if !self.shared.broken.load(Ordering::SeqCst)
                && let Err(e) = self.take_available(ctl)
            {
                self.shared.fail(&e);
            }
            wait_readable(&[self.notify.as_raw_fd(), ctl.wake.as_raw_fd()]);
            // Non-blocking: reading an unsignalled one just fails with EAGAIN.
            let _ = self.notify.read();
            let _ = ctl.wake.read();
        }
    }

    /// Waits until no request is in flight; their completions reach the guest if `deliver`.
    fn finish_in_flight(&self, deliver: bool) {
        self.shared.deliver.store(deliver, Ordering::SeqCst);
        while self.shared.in_flight.load(Ordering::SeqCst) > 0 {
            wait_readable(&[self.shared.idle.as_raw_fd()]);
            let _ = self.shared.idle.read();
        }
        self.shared.deliver.store(true, Ordering::SeqCst);
    }

    /// Hands every available chain to the pool, with guest notifications off while taking them.
    fn take_available(&mut self, ctl: &Control) -> Result<(), String> {
        let mem = &self.shared.mem;
        let mut chains = Vec::new();
        let result = (|| {
            let mut q = self.shared.queue();
            loop {
                q.disable_notification(mem).map_err(|e| format!("used ring: {e}"))?;
                loop {
                    if ctl.want() != Want::Run {
                        return Ok(());
                    }
                    let next = q.iter(mem).map_err(|e| format!("available ring: {e}"))?.next();
                    let Some(chain) = next else { break };
                    chains.push(collect(chain).map_err(|e| e.to_string())?);
                }
                if !q.enable_notification(mem).map_err(|e| format!("used ring: {e}"))? {
                    return Ok(());
                }
            }
        })();
        // Chains taken before an error are still served (their requests are well-formed).
        for chain in chains {
            self.submit(chain)?;
        }
        result
    }

    fn retry_parked(&mut self) -> Result<(), String> {
        let chains = std::mem::take(&mut *self.shared.parked.lock().unwrap_or_else(|p| p.into_inner()));
        if self.shared.broken.load(Ordering::SeqCst) {
            return Ok(());
        }
        for chain in chains {
            self.submit(chain)?;
        }
        Ok(())
    }

    fn submit(&mut self, chain: Chain) -> Result<(), String> {
        let tx = self.pool.jobs.as_ref().ok_or("the I/O threads are gone")?;
        self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        if tx.send(chain).is_err() {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            return Err("the I/O threads are gone".into());
        }
        Ok(())
    }
}

/// Blocks until one of `fds` is readable (or a signal interrupts).
fn wait_readable(fds: &[std::os::fd::RawFd]) {
    let mut p: Vec<libc::pollfd> =
        fds.iter().map(|&fd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 }).collect();
    // SAFETY: `p` is a valid array of pollfds for the duration of the call.
    let r = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, -1) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            tracing::warn!("virtio queue thread: poll: {e}");
        }
    }
}
