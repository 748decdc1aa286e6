//! One thread per active virtqueue, plus a small pool of I/O threads.
//!
//! The queue thread waits on the queue's notify eventfd (written by KVM's ioeventfd when the
//! guest kicks), takes every available chain, checks it ([`super::chain::collect`]) and hands it
//! to the pool; pool threads serve chains with the device's [`ChainHandler`] (blocking disk I/O,
//! several requests at once) and report back through a completion eventfd; the queue thread
//! then returns them on the used ring (in completion order, as virtio allows) and raises the
//! queue's MSI-X vector when the guest wants an interrupt. Only the queue thread touches the
//! rings.
//!
//! A malformed chain, an available index that jumps past the ring, or a ring write that fails
//! puts the device in NEEDS_RESET (with a config interrupt) and the queue stops taking requests
//! until the device is reset. The control thread can pause the worker: it returns once every
//! request in flight has completed and been returned to the guest, so nothing touches guest
//! memory or the disk while the VM is stopped; resume; or stop and join it (device reset,
//! shutdown: requests in flight finish, their completions are dropped).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
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
    /// Serves `chain`; returns how many bytes were written into its device-writable buffers,
    /// or a description of a fatal guest error (the device then needs a reset).
    fn handle(&self, chain: &Chain, mem: &GuestMemory) -> Result<u32, String>;
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

type Done = (u16, Result<u32, String>);

/// The I/O threads of one queue: chains in, completions out.
struct Pool {
    jobs: Option<Sender<Chain>>,
    done: Arc<Mutex<Vec<Done>>>,
    done_evt: Arc<EventFd>,
    threads: Vec<JoinHandle<()>>,
    in_flight: usize,
}

impl Pool {
    fn start(s: &WorkerSetup) -> Result<Self, String> {
        let (tx, rx) = channel::<Chain>();
        let rx = Arc::new(Mutex::new(rx));
        let done = Arc::new(Mutex::new(Vec::new()));
        let done_evt = Arc::new(EventFd::new(EFD_NONBLOCK).map_err(|e| format!("eventfd: {e}"))?);
        let mut threads = Vec::new();
        for i in 0..IO_THREADS {
            let (rx, done, evt) = (Arc::clone(&rx), Arc::clone(&done), Arc::clone(&done_evt));
            let (handler, mem) = (Arc::clone(&s.handler), s.mem.clone());
            let t = std::thread::Builder::new()
                .name(format!("{} io{i}", s.name))
                .spawn(move || io_thread(&rx, handler.as_ref(), &mem, &done, &evt))
                .map_err(|e| format!("cannot start an I/O thread: {e}"))?;
            threads.push(t);
        }
        Ok(Pool { jobs: Some(tx), done, done_evt, threads, in_flight: 0 })
    }

    fn submit(&mut self, chain: Chain) -> Result<(), String> {
        let tx = self.jobs.as_ref().ok_or("the I/O threads are gone")?;
        tx.send(chain).map_err(|_| "the I/O threads are gone".to_string())?;
        self.in_flight += 1;
        Ok(())
    }

    fn take_done(&mut self) -> Vec<Done> {
        let _ = self.done_evt.read();
        let done = std::mem::take(&mut *self.done.lock().unwrap_or_else(|p| p.into_inner()));
        self.in_flight = self.in_flight.saturating_sub(done.len());
        done
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

fn io_thread(
    rx: &Mutex<Receiver<Chain>>,
    handler: &dyn ChainHandler,
    mem: &GuestMemory,
    done: &Mutex<Vec<Done>>,
    evt: &EventFd,
) {
    loop {
        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok(chain) = job else { return };
        let result = handler.handle(&chain, mem);
        done.lock().unwrap_or_else(|p| p.into_inner()).push((chain.head, result));
        let _ = evt.write(1);
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
        let pool = Pool::start(&setup)?;
        let c = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name(setup.name.clone())
            .spawn(move || {
                Worker { s: setup, pool, broken: false }.run(&c);
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
    s: WorkerSetup,
    pool: Pool,
    broken: bool,
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
            }
            if self.broken {
                self.pool.take_done(); // dropped: the driver must reset the device
            } else if let Err(e) = self.complete().and_then(|()| self.take_available(ctl)) {
                self.fail(&e);
            }
            self.wait(&ctl.wake);
        }
    }

    fn fail(&mut self, e: &str) {
        self.s.interrupt.needs_reset(&format!("{}: {e}", self.s.name));
        self.broken = true;
    }

    /// Waits for every request in flight; returns them to the guest if `deliver`.
    fn finish_in_flight(&mut self, deliver: bool) {
        while self.pool.in_flight > 0 {
            wait_readable(&[self.pool.done_evt.as_raw_fd()]);
            if deliver && !self.broken {
                if let Err(e) = self.complete() {
                    self.fail(&e);
                }
            } else {
                self.pool.take_done();
            }
        }
    }

    /// Sleeps until a kick, a completion or a control change.
    fn wait(&self, wake: &EventFd) {
        wait_readable(&[self.s.notify.as_raw_fd(), self.pool.done_evt.as_raw_fd(), wake.as_raw_fd()]);
        // Non-blocking: reading an unsignalled one just fails with EAGAIN. The completion
        // eventfd is read where completions are taken.
        let _ = self.s.notify.read();
        let _ = wake.read();
    }

    /// Returns finished requests on the used ring; one interrupt for the batch if wanted.
    fn complete(&mut self) -> Result<(), String> {
        let done = self.pool.take_done();
        if done.is_empty() {
            return Ok(());
        }
        let mem = &self.s.mem;
        for (head, result) in done {
            let used = result?;
            self.s.queue.add_used(mem, head, used).map_err(|e| format!("used ring: {e}"))?;
        }
        if self.s.queue.needs_notification(mem).map_err(|e| format!("used ring: {e}"))? {
            self.s.interrupt.signal_used(self.s.vector.load(Ordering::SeqCst));
        }
        Ok(())
    }

    /// Hands every available chain to the pool, with guest notifications off while doing so.
    fn take_available(&mut self, ctl: &Control) -> Result<(), String> {
        let mem = &self.s.mem;
        loop {
            self.s.queue.disable_notification(mem).map_err(|e| format!("used ring: {e}"))?;
            loop {
                if ctl.want() != Want::Run {
                    return Ok(());
                }
                let next = self.s.queue.iter(mem).map_err(|e| format!("available ring: {e}"))?.next();
                let Some(chain) = next else { break };
                self.pool.submit(collect(chain).map_err(|e| e.to_string())?)?;
            }
            if !self.s.queue.enable_notification(mem).map_err(|e| format!("used ring: {e}"))? {
                return Ok(());
            }
        }
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
