//! The one error type of the block crate.
//!
//! Messages follow QEMU's wording (`Could not open 'x': No such file or directory`,
//! `Image is not in qcow2 format`, ...) because `vmm-img` prints them as qemu-img does and
//! the monitor passes them on in QMP `desc` fields.

use std::io;

/// Errors of the block layer.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// An OS-level I/O error with what was being done (`Could not open 'a.img'`).
    #[error("{context}: {}", os_text(.source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The image is malformed (bad header, table past EOF, ...).
    #[error("{0}")]
    Invalid(String),
    /// The image or request uses something this implementation does not support.
    #[error("{0}")]
    Unsupported(String),
    /// A caller passed an argument that cannot be honoured.
    #[error("{0}")]
    Argument(String),
    /// A write or metadata change on a node opened read-only.
    #[error("Block node is read-only")]
    ReadOnly,
    /// A request outside the node's virtual size.
    #[error("Request at offset {offset} of length {len} is beyond the end of the image ({size})")]
    OutOfRange { offset: u64, len: u64, size: u64 },
}

/// Result alias of the block crate.
pub type Result<T> = std::result::Result<T, BlockError>;

impl BlockError {
    /// Wraps an `io::Error` with context.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        BlockError::Io { context: context.into(), source }
    }

    /// The errno behind this error, if it came from the OS (used for exit codes and
    /// for QMP `on-error=enospc`).
    pub fn errno(&self) -> Option<i32> {
        match self {
            BlockError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// The text of an `io::Error` as C's `strerror` gives it (without Rust's "(os error N)").
pub fn os_text(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

/// Extension to add context to `io::Result`s.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| BlockError::io(what(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_read_like_strerror() {
        let e = BlockError::io("Could not open 'x'", io::Error::from_raw_os_error(libc::ENOENT));
        assert_eq!(e.to_string(), "Could not open 'x': No such file or directory");
        assert_eq!(e.errno(), Some(libc::ENOENT));
    }
}
