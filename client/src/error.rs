//! The client's error type and the mapping from errors to exit codes.

use std::io;
use std::time::Duration;

/// Exit status when every command succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit status when a command failed (a QMP error reply, an HMP `Error:` line or a line that
/// could not be parsed).
pub const EXIT_COMMAND_FAILED: i32 = 1;
/// Exit status for a connection failure, a dead or misbehaving server, a timeout or bad usage.
pub const EXIT_CONNECTION: i32 = 2;

/// Everything that can go wrong while talking to a monitor.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be opened (refused, missing, unreachable).
    #[error("Cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    /// The server did not answer in time.
    #[error("Timed out after {} waiting for {what}", format_duration(*.after))]
    Timeout { after: Duration, what: String },
    /// The server closed the connection (or the connection broke).
    #[error("Connection closed by the server{context}")]
    Closed { context: String },
    /// The server sent something that is not the protocol it claimed to speak.
    #[error("Protocol error: {0}")]
    Protocol(String),
    /// Reading from or writing to the socket failed.
    #[error("Connection error: {0}")]
    Io(#[from] io::Error),
    /// The server answered a command with a QMP error.
    #[error("Error ({class}): {desc}")]
    Command { class: String, desc: String },
    /// The user's input could not be understood (bad `key=value`, unknown client command...).
    #[error("{0}")]
    Input(String),
    /// The command line or a script file is unusable.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The process exit status this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Command { .. } | Error::Input(_) => EXIT_COMMAND_FAILED,
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Closed { .. }
            | Error::Protocol(_)
            | Error::Io(_)
            | Error::Usage(_) => EXIT_CONNECTION,
        }
    }

    /// True when the connection can no longer be used after this error.
    pub fn is_fatal(&self) -> bool {
        self.exit_code() == EXIT_CONNECTION
    }

    /// Builds a timeout error.
    pub fn timeout(after: Duration, what: impl Into<String>) -> Self {
        Error::Timeout { after, what: what.into() }
    }
}

/// `1.5s`, `30s`, `250ms`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_class() {
        let qmp = Error::Command { class: "GenericError".into(), desc: "x".into() };
        assert_eq!(qmp.exit_code(), 1);
        assert_eq!(Error::Input("bad".into()).exit_code(), 1);
        assert_eq!(Error::timeout(Duration::from_secs(3), "a reply").exit_code(), 2);
        assert_eq!(Error::Closed { context: String::new() }.exit_code(), 2);
        assert_eq!(Error::Protocol("x".into()).exit_code(), 2);
    }

    #[test]
    fn messages_are_one_line() {
        let e = Error::timeout(Duration::from_millis(1500), "the greeting");
        assert_eq!(e.to_string(), "Timed out after 1.5s waiting for the greeting");
        let e = Error::Command {
            class: "CommandNotFound".into(),
            desc: "The command foo has not been found".into(),
        };
        assert_eq!(e.to_string(), "Error (CommandNotFound): The command foo has not been found");
    }
}
