//! One thread per active virtqueue: it waits on the queue's notify eventfd (written by KVM's
//! ioeventfd when the guest kicks), takes every available chain, checks it
//! ([`super::chain::collect`]), hands it to the device's [`ChainHandler`], returns it on the
//! used ring and raises the queue's MSI-X vector when the guest wants an interrupt.
//!
//! A malformed chain, an available index that jumps past the ring, or a ring write that fails
//! puts the device in NEEDS_RESET (with a config interrupt) and the thread stops taking
//! requests until the device is reset. The control thread can pause the worker (it returns
//! once the request in hand is finished: nothing touches guest memory or the disk while the VM
//! is stopped), resume it, or stop and join it (device reset, shutdown).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vmm_sys_util::eventfd::{EFD_NONBLOCK, EventFd};

use super::chain::{Chain, collect};
use super::interrupt::VirtioInterrupt;
use crate::machine::kvm::memory::GuestMemory;

/// What a device does with one request.
pub trait ChainHandler: Send + 'static {
    /// Serves `chain`; returns how many bytes were written into its device-writable buffers,
    /// or a description of a fatal guest error (the device then needs a reset).
    fn handle(&mut self, chain: &Chain, mem: &GuestMemory) -> Result<u32, String>;
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
    pub handler: Box<dyn ChainHandler>,
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
        let c = Arc::clone(&control);
        let thread = std::thread::Builder::new()
            .name(setup.name.clone())
            .spawn(move || {
                run(setup, &c);
                let mut s = c.lock();
                s.exited = true;
                c.cv.notify_all();
            })
            .map_err(|e| format!("cannot start a device thread: {e}"))?;
        Ok(QueueWorker { control, thread: Some(thread) })
    }

    /// Returns once the thread has finished the request in hand and waits.
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

    /// Stops and joins the thread.
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

fn run(mut s: WorkerSetup, ctl: &Control) {
    let mut broken = false;
    loop {
        if !ctl.wait_runnable() {
            return;
        }
        if !broken && let Err(e) = drain(&mut s, ctl) {
            s.interrupt.needs_reset(&format!("{}: {e}", s.name));
            broken = true;
        }
        wait_for_kick(&s.notify, &ctl.wake);
    }
}

/// Sleeps until the guest kicks the queue or the control state changes.
fn wait_for_kick(notify: &EventFd, wake: &EventFd) {
    let mut fds = [
        libc::pollfd { fd: notify.as_raw_fd(), events: libc::POLLIN, revents: 0 },
        libc::pollfd { fd: wake.as_raw_fd(), events: libc::POLLIN, revents: 0 },
    ];
    // SAFETY: `fds` is a valid array of two pollfds for the duration of the call.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            tracing::warn!("virtio queue thread: poll: {e}");
        }
        return;
    }
    // Both are non-blocking: reading an unsignalled one just fails with EAGAIN.
    let _ = notify.read();
    let _ = wake.read();
}

/// Serves every available chain, with guest notifications off while doing so.
fn drain(s: &mut WorkerSetup, ctl: &Control) -> Result<(), String> {
    let mem = &s.mem;
    loop {
        s.queue.disable_notification(mem).map_err(|e| format!("used ring: {e}"))?;
        loop {
            if ctl.want() != Want::Run {
                return Ok(());
            }
            let next = s.queue.iter(mem).map_err(|e| format!("available ring: {e}"))?.next();
            let Some(chain) = next else { break };
            let head = chain.head_index();
            let chain = collect(chain).map_err(|e| e.to_string())?;
            let used = s.handler.handle(&chain, mem)?;
            s.queue.add_used(mem, head, used).map_err(|e| format!("used ring: {e}"))?;
            if s.queue.needs_notification(mem).map_err(|e| format!("used ring: {e}"))? {
                s.interrupt.signal_used(s.vector.load(Ordering::SeqCst));
            }
        }
        if !s.queue.enable_notification(mem).map_err(|e| format!("used ring: {e}"))? {
            return Ok(());
        }
    }
}
