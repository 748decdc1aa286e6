//! `-daemonize` and `-pidfile`, as QEMU does them.
//!
//! Daemonizing forks before any thread exists; the parent waits on a pipe until the child reports
//! that start-up succeeded (exit 0) or failed (exit 1, the child has printed why). The child then
//! detaches from the terminal and its standard streams go to /dev/null.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The child side of a daemonized process.
pub struct Daemon {
    ready: File,
}

impl Daemon {
    /// Forks. Returns in the child only; the parent exits with the child's start-up status.
    pub fn fork() -> Result<Daemon, String> {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe(2) to fill.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(format!("cannot create a pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: pipe2 succeeded, so both descriptors are open and owned by nobody else.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: called before any other thread exists (launch::run forks before building the
        // runtime), so the child inherits a consistent single-threaded process.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(format!("cannot fork: {}", std::io::Error::last_os_error()));
        }
        if pid > 0 {
            drop(wr);
            let mut byte = [0u8; 1];
            let ok = File::from(rd).read(&mut byte).map(|n| n == 1).unwrap_or(false);
            std::process::exit(if ok { 0 } else { 1 });
        }
        drop(rd);
        // SAFETY: setsid has no memory-safety preconditions.
        unsafe { libc::setsid() };
        Ok(Daemon { ready: File::from(wr) })
    }

    /// Start-up succeeded: release the parent and detach the standard streams.
    pub fn ready(mut self) {
        let _ = self.ready.write_all(b"1");
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            for fd in 0..3 {
                // SAFETY: dup2 onto the standard descriptors with a valid open descriptor.
                unsafe { libc::dup2(null.as_raw_fd(), fd) };
            }
        }
    }
}

/// A pid file, locked while we run and removed at exit (QEMU's `qemu_write_pidfile`).
pub struct PidFile {
    path: PathBuf,
    _file: File,
}

impl PidFile {
    pub fn create(path: &Path) -> Result<PidFile, String> {
        let fail = |e: std::io::Error| format!("cannot create PID file: {e}");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(fail)?;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(format!("Cannot lock pid file: {}", std::io::Error::last_os_error()));
        }
        file.set_len(0).map_err(fail)?;
        writeln!(file, "{}", std::process::id()).map_err(fail)?;
        Ok(PidFile { path: path.to_path_buf(), _file: file })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
