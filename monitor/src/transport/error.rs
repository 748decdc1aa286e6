//! The transport layer's error: what went wrong with which command-line option, in QEMU's words.

use std::fmt;

/// A monitor option that cannot be used. QEMU prints such errors as
/// `<program>: <option>: <message>`, sometimes several lines for one option (`... is not a valid
/// char driver` then `parse error: ...`), sometimes followed by an unprefixed hint line;
/// [`report`](Self::report) renders exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// The option as given (`-qmp unix:/x,server=on`).
    pub option: String,
    /// One or more messages (never empty).
    pub messages: Vec<String>,
    /// A hint printed on its own line after the messages.
    pub hint: Option<String>,
}

impl TransportError {
    pub fn new(option: &str, messages: Vec<String>) -> Self {
        TransportError { option: option.to_string(), messages, hint: None }
    }

    pub fn with_hint(option: &str, message: &str, hint: &str) -> Self {
        TransportError {
            option: option.to_string(),
            messages: vec![message.to_string()],
            hint: Some(hint.to_string()),
        }
    }

    /// The full text as QEMU prints it, with `program` as the prefix (no trailing newline).
    pub fn report(&self, program: &str) -> String {
        let mut lines: Vec<String> =
            self.messages.iter().map(|m| format!("{program}: {}: {m}", self.option)).collect();
        if let Some(h) = &self.hint {
            lines.push(h.clone());
        }
        lines.join("\n")
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.messages.first().map(String::as_str).unwrap_or("error");
        write!(f, "{}: {first}", self.option)
    }
}

impl std::error::Error for TransportError {}

/// The C library's text for an I/O error (`No such file or directory`), without Rust's
/// ` (os error N)` suffix.
pub fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_and_strerror() {
        let e = TransportError::with_hint(
            "-qmp unix:/x",
            "UNIX socket path '/x' is too long",
            "Path must be less than 108 bytes",
        );
        assert_eq!(
            e.report("vmm"),
            "vmm: -qmp unix:/x: UNIX socket path '/x' is too long\nPath must be less than 108 bytes"
        );
        assert_eq!(e.to_string(), "-qmp unix:/x: UNIX socket path '/x' is too long");
        assert_eq!(strerror(&std::io::Error::from_raw_os_error(libc::ENOENT)), "No such file or directory");
    }
}
