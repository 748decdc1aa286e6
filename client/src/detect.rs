//! Recognising what answers on a socket: a QMP greeting (a JSON object with a `QMP` member) or
//! an HMP banner followed by a prompt.

use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::ansi::AnsiStripper;
use crate::error::{Error, Result};
use crate::json_framer::{JsonFramer, snippet};
use crate::link::{Chunk, Link, recv_until};

/// The server's opening, as recognised.
#[derive(Debug)]
pub enum Opening {
    Qmp {
        greeting: Map<String, Value>,
        /// The framer, holding any bytes received after the greeting.
        framer: JsonFramer,
    },
    Hmp {
        banner: String,
        prompt: String,
    },
}

/// Most bytes read while looking for a banner and prompt.
const MAX_OPENING: usize = 64 * 1024;

/// Reads from `link` until the protocol is known.
pub fn detect(link: &Link, timeout: Duration) -> Result<Opening> {
    let deadline = Instant::now() + timeout;
    let mut raw: Vec<u8> = Vec::new();
    loop {
        let first = raw.iter().copied().find(|b| !b.is_ascii_whitespace());
        match first {
            Some(b'{') => return detect_qmp(link, raw, deadline, timeout),
            Some(b) if b.is_ascii_graphic() => {
                if let Some(opening) = try_hmp(&raw)? {
                    return Ok(opening);
                }
            }
            Some(_) => {
                return Err(Error::Protocol(format!(
                    "the server sent neither a QMP greeting nor an HMP banner: {}",
                    snippet(&raw)
                )));
            }
            None => {}
        }
        if raw.len() > MAX_OPENING {
            return Err(Error::Protocol(format!(
                "no HMP prompt in the first {} KiB from the server: {}",
                MAX_OPENING / 1024,
                snippet(&raw)
            )));
        }
        match recv_until(&link.chunks, Some(deadline)) {
            Some(Chunk::Data(d)) => raw.extend_from_slice(&d),
            Some(Chunk::Eof) => {
                return Err(Error::Closed {
                    context: if raw.is_empty() {
                        " before sending a greeting".into()
                    } else {
                        format!(" after sending {}", snippet(&raw))
                    },
                });
            }
            Some(Chunk::Failed(e)) => return Err(Error::Io(e)),
            None => return Err(opening_timeout(timeout, &raw)),
        }
    }
}

fn opening_timeout(timeout: Duration, raw: &[u8]) -> Error {
    if raw.is_empty() {
        Error::timeout(
            timeout,
            "a QMP greeting or HMP banner (is another client connected? QEMU serves one at a time)",
        )
    } else {
        Error::timeout(timeout, format!("the rest of the server's greeting after {}", snippet(raw)))
    }
}

fn detect_qmp(link: &Link, raw: Vec<u8>, deadline: Instant, timeout: Duration) -> Result<Opening> {
    let mut framer = JsonFramer::new();
    framer.feed(&raw);
    loop {
        if let Some(msg) = framer.next_message()? {
            if !msg.get("QMP").is_some_and(Value::is_object) {
                return Err(Error::Protocol(format!(
                    "expected a QMP greeting, got {}",
                    snippet(Value::Object(msg).to_string().as_bytes())
                )));
            }
            return Ok(Opening::Qmp { greeting: msg, framer });
        }
        match recv_until(&link.chunks, Some(deadline)) {
            Some(Chunk::Data(d)) => framer.feed(&d),
            Some(Chunk::Eof) => {
                return Err(Error::Closed { context: " in the middle of its greeting".into() });
            }
            Some(Chunk::Failed(e)) => return Err(Error::Io(e)),
            None => return Err(Error::timeout(timeout, "the rest of the QMP greeting")),
        }
    }
}

/// An HMP opening is a banner line mentioning "monitor", then a prompt with no newline.
fn try_hmp(raw: &[u8]) -> Result<Option<Opening>> {
    let mut text = Vec::new();
    AnsiStripper::default().strip(raw, &mut text);
    let text = String::from_utf8_lossy(&text);
    let Some(nl) = text.find('\n') else {
        return Ok(None);
    };
    let banner = text[..nl].trim().to_string();
    if !banner.contains("monitor") {
        return Err(Error::Protocol(format!(
            "the server sent neither a QMP greeting nor an HMP banner: {}",
            snippet(raw)
        )));
    }
    let after = text.rsplit('\n').next().unwrap_or("");
    if after.is_empty() || !after.ends_with(' ') {
        return Ok(None);
    }
    Ok(Some(Opening::Hmp { banner, prompt: after.to_string() }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmp_banner_and_prompt() {
        let raw = b"QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) ";
        match try_hmp(raw).unwrap() {
            Some(Opening::Hmp { banner, prompt }) => {
                assert_eq!(banner, "QEMU 7.2.22 monitor - type 'help' for more information");
                assert_eq!(prompt, "(qemu) ");
            }
            other => panic!("{other:?}"),
        }
        assert!(try_hmp(b"QEMU 7.2.22 monitor - type").unwrap().is_none());
        assert!(try_hmp(b"QEMU 7.2.22 monitor\r\n(qe").unwrap().is_none());
        assert!(try_hmp(b"HTTP/1.1 400 Bad Request\r\n").is_err());
    }
}
