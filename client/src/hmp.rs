//! An HMP client: send a line, collect the text up to the next prompt.
//!
//! QEMU's readline echoes what we type (with cursor-movement redraws) before running the line;
//! the echo is everything before the first line break and is dropped when it ends with the
//! command we sent, so servers that do not echo work too.

use std::sync::Mutex;
use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use crate::ansi::AnsiStripper;
use crate::error::{Error, Result};
use crate::json_framer::{MAX_MESSAGE, snippet};
use crate::link::{Chunk, Link, Writer, recv_until};

struct Reader {
    link_chunks: std::sync::mpsc::Receiver<Chunk>,
    stripper: AnsiStripper,
    closed: bool,
}

/// A connection to a human monitor.
pub struct HmpClient {
    writer: Writer,
    reader: Mutex<Reader>,
    banner: String,
    prompt: String,
    timeout: Duration,
}

impl HmpClient {
    pub fn new(link: Link, banner: String, prompt: String, timeout: Duration) -> HmpClient {
        HmpClient {
            writer: link.writer,
            reader: Mutex::new(Reader {
                link_chunks: link.chunks,
                stripper: AnsiStripper::default(),
                closed: false,
            }),
            banner,
            prompt,
            timeout,
        }
    }

    pub fn banner(&self) -> &str {
        &self.banner
    }

    pub fn prompt(&self) -> &str {
        &self.prompt
    }

    /// Runs one command line; returns its output with `\n` line ends.
    pub fn command(&self, line: &str) -> Result<String> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.contains(['\r', '\n']) {
            return Err(Error::Input("An HMP command must be a single line".into()));
        }
        let mut reader =
            self.reader.lock().map_err(|_| Error::Protocol("internal HMP lock poisoned".into()))?;
        if reader.closed {
            return Err(Error::Closed { context: String::new() });
        }
        // Output that arrived between commands belongs to no command: drop it.
        loop {
            match reader.link_chunks.try_recv() {
                Ok(Chunk::Data(_)) => {}
                Ok(Chunk::Eof | Chunk::Failed(_)) | Err(TryRecvError::Disconnected) => {
                    reader.closed = true;
                    return Err(Error::Closed { context: String::new() });
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        self.writer.send(format!("{line}\n").as_bytes())?;
        let deadline = Instant::now() + self.timeout;
        let mut text: Vec<u8> = Vec::new();
        loop {
            if text.ends_with(self.prompt.as_bytes()) {
                let body = &text[..text.len() - self.prompt.len()];
                return Ok(clean_output(&String::from_utf8_lossy(body), line));
            }
            if text.len() > MAX_MESSAGE {
                return Err(Error::Protocol(format!(
                    "more than {} MiB of output without a prompt",
                    MAX_MESSAGE >> 20
                )));
            }
            match recv_until(&reader.link_chunks, Some(deadline)) {
                Some(Chunk::Data(d)) => {
                    let mut out = Vec::new();
                    reader.stripper.strip(&d, &mut out);
                    text.extend_from_slice(&out);
                }
                Some(Chunk::Eof) => {
                    reader.closed = true;
                    return Err(Error::Closed {
                        context: if text.is_empty() {
                            String::new()
                        } else {
                            format!(" after sending {}", snippet(&text))
                        },
                    });
                }
                Some(Chunk::Failed(e)) => {
                    reader.closed = true;
                    return Err(Error::Io(e));
                }
                None => {
                    return Err(Error::timeout(
                        self.timeout,
                        format!("the '{}' prompt after '{line}'", self.prompt.trim_end()),
                    ));
                }
            }
        }
    }

    /// True once the server closed the connection.
    pub fn is_closed(&self) -> bool {
        self.reader.lock().map(|r| r.closed).unwrap_or(true)
    }

    pub fn close(&self) {
        self.writer.shutdown();
    }
}

impl Drop for HmpClient {
    fn drop(&mut self) {
        self.close();
    }
}

/// Drops the echoed command line and normalises line ends.
fn clean_output(body: &str, line: &str) -> String {
    let body = body.replace("\r\n", "\n").replace('\r', "");
    match body.split_once('\n') {
        Some((echo, rest)) if echo.ends_with(line.trim()) => rest.to_string(),
        None if body.ends_with(line.trim()) => String::new(),
        _ => body,
    }
}

/// True when HMP output reports a failure (QEMU prints `Error: ...` for failed QMP-backed
/// commands and `unknown command: ...` for typos).
pub fn output_is_error(output: &str) -> bool {
    output.lines().any(|l| {
        l.starts_with("Error: ") || l.starts_with("unknown command:") || l.starts_with("Try \"help ")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_is_removed() {
        assert_eq!(
            clean_output("iininfinfo info status\r\nVM status: paused (prelaunch)\r\n", "info status"),
            "VM status: paused (prelaunch)\n"
        );
        assert_eq!(clean_output("\r\n", ""), "");
        assert_eq!(clean_output("ststostop\r\n", "stop"), "");
        // A server without echo: the first line is output.
        assert_eq!(clean_output("VM status: running\r\n", "info status"), "VM status: running\n");
    }

    #[test]
    fn error_output() {
        assert!(output_is_error("Error: Device 'nope' not found\n"));
        assert!(output_is_error("unknown command: 'bogus'\n"));
        assert!(!output_is_error("VM status: running\n"));
    }
}
