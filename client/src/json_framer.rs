//! Splits a QMP byte stream into JSON messages without relying on line breaks.
//!
//! A message may arrive split over several reads, and one read may hold several messages. The
//! framer tracks brace depth and string state incrementally (so a large message is scanned once,
//! not once per read), then hands each complete object to serde_json.

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Largest message accepted from a server (QEMU's own token-size limit).
pub const MAX_MESSAGE: usize = 64 << 20;

/// Incremental framer: feed bytes, take messages.
#[derive(Debug, Default)]
pub struct JsonFramer {
    buf: Vec<u8>,
    /// Scan position inside `buf` for the message being assembled.
    pos: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
    started: bool,
}

impl JsonFramer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the server.
    pub fn feed(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// True when bytes of an unfinished message are buffered.
    pub fn has_partial(&self) -> bool {
        self.buf.iter().any(|b| !b.is_ascii_whitespace())
    }

    /// Returns the next complete message, `Ok(None)` if more bytes are needed, or an error for
    /// bytes that cannot be QMP (the stream is then unusable).
    pub fn next_message(&mut self) -> Result<Option<Map<String, Value>>> {
        while self.pos < self.buf.len() {
            let b = self.buf[self.pos];
            self.pos += 1;
            if !self.started {
                if b.is_ascii_whitespace() {
                    continue;
                }
                if b != b'{' {
                    return Err(Error::Protocol(format!(
                        "the server sent data that is not a JSON object: {}",
                        snippet(&self.buf[self.pos - 1..])
                    )));
                }
                self.started = true;
                self.depth = 1;
                continue;
            }
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return self.take_message().map(Some);
                    }
                }
                _ => {}
            }
        }
        if self.buf.len() > MAX_MESSAGE {
            return Err(Error::Protocol(format!(
                "the server sent a message larger than {} MiB",
                MAX_MESSAGE >> 20
            )));
        }
        Ok(None)
    }

    fn take_message(&mut self) -> Result<Map<String, Value>> {
        let end = self.pos;
        let raw: Vec<u8> = self.buf.drain(..end).collect();
        self.pos = 0;
        self.started = false;
        self.depth = 0;
        match serde_json::from_slice::<Value>(&raw) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(Error::Protocol("the server sent a non-object message".into())),
            Err(e) => {
                Err(Error::Protocol(format!("the server sent malformed JSON ({e}): {}", snippet(&raw))))
            }
        }
    }
}

/// A short, printable excerpt of raw bytes for error messages.
pub fn snippet(raw: &[u8]) -> String {
    const MAX: usize = 80;
    let shown = &raw[..raw.len().min(MAX)];
    let mut s = String::from("\"");
    for c in String::from_utf8_lossy(shown).chars() {
        match c {
            '\r' => s.push_str("\\r"),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '"' => s.push_str("\\\""),
            c if c.is_control() => s.push_str(&format!("\\x{:02x}", c as u32)),
            c => s.push(c),
        }
    }
    s.push('"');
    if raw.len() > MAX {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(f: &mut JsonFramer) -> Vec<Map<String, Value>> {
        let mut v = Vec::new();
        while let Some(m) = f.next_message().unwrap() {
            v.push(m);
        }
        v
    }

    #[test]
    fn several_messages_in_one_read() {
        let mut f = JsonFramer::new();
        f.feed(b"{\"return\": {}}\r\n{\"event\": \"STOP\"}{\"return\": [1, {\"a\": \"}\"}]}\r\n");
        let msgs = all(&mut f);
        assert_eq!(msgs.len(), 3);
        assert_eq!(msgs[1]["event"], "STOP");
        assert_eq!(msgs[2]["return"][1]["a"], "}");
        assert!(!f.has_partial());
    }

    #[test]
    fn message_split_anywhere() {
        let text = b"{\"return\": {\"s\": \"a\\\"{b\"}, \"id\": 5}\r\n";
        for cut in 0..text.len() {
            let mut f = JsonFramer::new();
            f.feed(&text[..cut]);
            let first = all(&mut f);
            f.feed(&text[cut..]);
            let second = all(&mut f);
            assert_eq!(first.len() + second.len(), 1, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        let mut f = JsonFramer::new();
        f.feed(b"hello\r\n");
        assert!(f.next_message().is_err());
        let mut f = JsonFramer::new();
        f.feed(b"{\"a\" 1}");
        let e = f.next_message().unwrap_err().to_string();
        assert!(e.contains("malformed JSON"), "{e}");
    }

    #[test]
    fn partial_is_reported() {
        let mut f = JsonFramer::new();
        f.feed(b"  {\"ret");
        assert!(f.next_message().unwrap().is_none());
        assert!(f.has_partial());
    }

    #[test]
    fn snippet_escapes() {
        assert_eq!(snippet(b"a\r\n\x01"), "\"a\\r\\n\\x01\"");
    }
}
