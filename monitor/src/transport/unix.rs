//! Unix-domain sockets: listening (stale files replaced, owner-only, removed at exit) and
//! connecting out.

use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use socket2::{Domain, SockAddr, Socket, Type};

use super::error::strerror;

/// Pending connections the kernel queues for us (capped by `net.core.somaxconn`).
pub const LISTEN_BACKLOG: i32 = 4096;
/// `sizeof(sockaddr_un.sun_path)`.
const SUN_PATH_MAX: usize = 108;

/// A socket file we created; removed when dropped, if it is still ours.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the file unless something else replaced it meanwhile.
    pub fn remove(&self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path)
            && m.dev() == self.dev
            && m.ino() == self.ino
        {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A bind failure: QEMU's message and an optional hint line.
#[derive(Debug)]
pub struct BindError {
    pub message: String,
    pub hint: Option<String>,
}

impl BindError {
    fn msg(message: String) -> Self {
        BindError { message, hint: None }
    }
}

/// Listens on `path`, created with mode 0600. A stale socket file (nobody accepting) is replaced;
/// a live one is left alone and reported as in use. Must run inside a tokio runtime.
pub fn listen(path: &Path) -> Result<(tokio::net::UnixListener, SocketFile), BindError> {
    let shown = path.display();
    if path.as_os_str().len() >= SUN_PATH_MAX {
        return Err(BindError {
            message: format!("UNIX socket path '{shown}' is too long"),
            hint: Some(format!("Path must be less than {SUN_PATH_MAX} bytes")),
        });
    }
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(BindError::msg(format!("Failed to bind socket to {shown}: Address already in use")));
        }
        std::fs::remove_file(path)
            .map_err(|e| BindError::msg(format!("Failed to unlink socket {shown}: {}", strerror(&e))))?;
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)
        .map_err(|e| BindError::msg(format!("Failed to create socket: {}", strerror(&e))))?;
    // The socket file takes the socket's mode (minus the umask) when bound: owner-only from the
    // first instant.
    // SAFETY: fchmod on a descriptor we own; no memory is involved.
    if unsafe { libc::fchmod(sock.as_raw_fd(), 0o600) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(BindError::msg(format!("Failed to set socket permissions: {}", strerror(&e))));
    }
    let addr = SockAddr::unix(path)
        .map_err(|e| BindError::msg(format!("Failed to bind socket to {shown}: {}", strerror(&e))))?;
    sock.bind(&addr)
        .map_err(|e| BindError::msg(format!("Failed to bind socket to {shown}: {}", strerror(&e))))?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| BindError::msg(format!("Failed to bind socket to {shown}: {}", strerror(&e))))?;
    let file = SocketFile { path: path.to_path_buf(), dev: meta.dev(), ino: meta.ino() };
    sock.listen(LISTEN_BACKLOG)
        .map_err(|e| BindError::msg(format!("Failed to listen on socket: {}", strerror(&e))))?;
    sock.set_nonblocking(true)
        .map_err(|e| BindError::msg(format!("Failed to listen on socket: {}", strerror(&e))))?;
    let listener = tokio::net::UnixListener::from_std(std::os::unix::net::UnixListener::from(sock))
        .map_err(|e| BindError::msg(format!("Failed to listen on socket: {}", strerror(&e))))?;
    Ok((listener, file))
}

/// Connects to a listening socket (client mode), with QEMU's error text.
pub async fn connect(path: &Path) -> Result<tokio::net::UnixStream, String> {
    tokio::net::UnixStream::connect(path)
        .await
        .map_err(|e| format!("Failed to connect to '{}': {}", path.display(), strerror(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[tokio::test]
    async fn owner_only_stale_replaced_live_refused_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sock");
        // A stale socket file: bound, then its listener closed.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let (listener, file) = listen(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = listen(&path).unwrap_err();
        assert_eq!(
            err.message,
            format!("Failed to bind socket to {}: Address already in use", path.display())
        );
        drop(listener);
        drop(file);
        assert!(!path.exists(), "removed when dropped");
    }

    #[tokio::test]
    async fn errors_use_qemu_words() {
        let err = listen(Path::new("/nonexistent-dir/x.sock")).unwrap_err();
        assert_eq!(
            err.message,
            "Failed to bind socket to /nonexistent-dir/x.sock: No such file or directory"
        );
        let long = format!("/tmp/{}", "x".repeat(120));
        let err = listen(Path::new(&long)).unwrap_err();
        assert_eq!(err.message, format!("UNIX socket path '{long}' is too long"));
        assert_eq!(err.hint.as_deref(), Some("Path must be less than 108 bytes"));
        let dir = tempfile::tempdir().unwrap();
        let regular = dir.path().join("file");
        std::fs::write(&regular, b"keep me").unwrap();
        let err = listen(&regular).unwrap_err();
        assert!(err.message.ends_with("Address already in use"), "{}", err.message);
        assert_eq!(std::fs::read(&regular).unwrap(), b"keep me", "a regular file is never removed");
        let err = connect(&dir.path().join("none.sock")).await.unwrap_err();
        assert!(err.starts_with("Failed to connect to '") && err.ends_with("': No such file or directory"));
    }
}
