//! Running out of file descriptors makes `accept` fail with EMFILE; the listener must survive and
//! serve the waiting client once descriptors are free again. Its own test binary, because it
//! lowers the process's open-files limit.

mod common;

use std::time::Duration;

use monitor::transport::{self, MonitorSpecs};
use tokio::io::AsyncBufReadExt;

fn set_soft_nofile(n: u64) {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = n.min(lim.rlim_max);
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(64)
}

#[tokio::test]
async fn emfile_does_not_kill_the_listener() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sock");
    let mut specs = MonitorSpecs::new("vmm");
    specs.add_qmp(&format!("unix:{},server=on,wait=off", path.display())).unwrap();
    let _run = transport::start(m.clone(), specs).await.unwrap();
    let saved = {
        let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        lim.rlim_cur
    };
    // Leave room for a handful of descriptors only.
    set_soft_nofile(open_fds() + 8);
    let mut clients = Vec::new();
    // Each served client costs two descriptors (ours and the server's); fill the table.
    loop {
        match std::os::unix::net::UnixStream::connect(&path) {
            Ok(s) => clients.push(s),
            Err(_) => break,
        }
        if clients.len() > 64 {
            break;
        }
    }
    assert!(clients.len() < 64, "the limit did not bite");
    // The last clients wait in the backlog while the server's accept fails with EMFILE (checked by
    // hand with a print in the accept loop: three failures, then every client accepted).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = clients.pop().unwrap();
    drop(clients.drain(..clients.len() / 2));
    set_soft_nofile(saved);
    last.set_nonblocking(true).unwrap();
    let mut last = tokio::io::BufReader::new(tokio::net::UnixStream::from_std(last).unwrap());
    let mut line = String::new();
    tokio::time::timeout(common::TIMEOUT, last.read_line(&mut line)).await.expect("no greeting").unwrap();
    assert!(line.starts_with("{\"QMP\""), "{line}");
    // And new clients are served as usual.
    let mut fresh = tokio::io::BufReader::new(tokio::net::UnixStream::connect(&path).await.unwrap());
    let mut line = String::new();
    tokio::time::timeout(common::TIMEOUT, fresh.read_line(&mut line)).await.expect("no greeting").unwrap();
    assert!(line.starts_with("{\"QMP\""));
}
