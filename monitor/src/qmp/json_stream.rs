//! PLACEHOLDER until the `json` branch lands.
use std::collections::VecDeque;

use serde_json::Value;

pub struct Limits {
    pub max_message_bytes: usize,
    pub max_tokens: usize,
    pub max_nesting: usize,
}
impl Default for Limits {
    fn default() -> Self {
        Limits { max_message_bytes: 1 << 20, max_tokens: 1 << 20, max_nesting: 1024 }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("JSON parse error, {0}")]
pub struct JsonError(String);

pub struct JsonStreamSplitter {
    buf: Vec<u8>,
    items: VecDeque<Result<Value, JsonError>>,
}

impl JsonStreamSplitter {
    pub fn new(_limits: Limits) -> Self {
        JsonStreamSplitter { buf: Vec::new(), items: VecDeque::new() }
    }
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        loop {
            let mut depth = 0i32;
            let mut in_str = false;
            let mut esc = false;
            let mut end = None;
            let mut start = None;
            for (i, &b) in self.buf.iter().enumerate() {
                if start.is_none() {
                    if b.is_ascii_whitespace() {
                        continue;
                    }
                    start = Some(i);
                }
                if in_str {
                    if esc {
                        esc = false
                    } else if b == b'\\' {
                        esc = true
                    } else if b == b'"' {
                        in_str = false
                    }
                    continue;
                }
                match b {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth <= 0 {
                            end = Some(i + 1);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let Some(end) = end else {
                if start.is_none() {
                    self.buf.clear();
                }
                return;
            };
            let msg: Vec<u8> = self.buf.drain(..end).collect();
            self.items.push_back(serde_json::from_slice(&msg).map_err(|e| JsonError(e.to_string())));
        }
    }
    pub fn next_item(&mut self) -> Option<Result<Value, JsonError>> {
        self.items.pop_front()
    }
    pub fn reset(&mut self) {
        self.buf.clear();
        self.items.clear();
    }
}
