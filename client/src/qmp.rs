//! A QMP client: negotiation, commands matched to their replies, and events.
//!
//! Threading: one dispatcher thread reads chunks from the [`Link`], frames them into JSON
//! messages and routes each one: events go to the [`EventSink`] (synchronously, so they are
//! handled in wire order relative to replies), replies go to the waiting caller through a
//! per-request channel. Replies are matched by `id` when the server echoes one we know, and
//! otherwise in order (in-band commands are answered in order). Any thread may send commands.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::json_framer::JsonFramer;
use crate::link::{Chunk, Link, Writer};

/// Receives what the dispatcher thread reads besides replies.
pub trait EventSink: Send + Sync {
    /// An asynchronous event (`{"event": ..., "data": ..., "timestamp": ...}`).
    fn event(&self, event: &Map<String, Value>);
    /// The connection is gone; `reason` is a one-line explanation.
    fn closed(&self, reason: &str);
}

#[derive(Debug, Clone)]
enum CloseReason {
    Eof,
    Protocol(String),
    Io(String),
}

impl CloseReason {
    fn to_error(&self) -> Error {
        match self {
            CloseReason::Eof => Error::Closed { context: String::new() },
            CloseReason::Protocol(m) => Error::Protocol(m.clone()),
            CloseReason::Io(m) => Error::Closed { context: format!(" ({m})") },
        }
    }
}

struct Pending {
    id: Option<Value>,
    reply: mpsc::Sender<Result<Map<String, Value>>>,
}

#[derive(Default)]
struct Dispatch {
    pending: VecDeque<Pending>,
    closed: Option<CloseReason>,
}

/// A negotiated QMP connection.
pub struct QmpClient {
    writer: Writer,
    dispatch: Arc<Mutex<Dispatch>>,
    next_id: AtomicU64,
    greeting: Map<String, Value>,
    timeout: Duration,
}

impl QmpClient {
    /// Starts the dispatcher on a link whose greeting was already read, then negotiates
    /// capabilities.
    pub fn start(
        link: Link,
        greeting: Map<String, Value>,
        framer: JsonFramer,
        sink: Arc<dyn EventSink>,
        timeout: Duration,
    ) -> Result<QmpClient> {
        let dispatch = Arc::new(Mutex::new(Dispatch::default()));
        let Link { writer, chunks } = link;
        {
            let dispatch = dispatch.clone();
            thread::Builder::new()
                .name("vmmon-qmp".into())
                .spawn(move || run_dispatcher(chunks, framer, &dispatch, sink.as_ref()))?;
        }
        let client = QmpClient { writer, dispatch, next_id: AtomicU64::new(1), greeting, timeout };
        client.execute("qmp_capabilities", Map::new())?;
        Ok(client)
    }

    /// The greeting's `QMP` object.
    pub fn greeting(&self) -> &Map<String, Value> {
        &self.greeting
    }

    /// `QEMU 7.2.22 (Debian ...)` from the greeting.
    pub fn server_version(&self) -> String {
        // Value indexing yields Null for missing members; only Map indexing could panic.
        let v = &self.greeting.get("QMP").unwrap_or(&Value::Null)["version"];
        let q = &v["qemu"];
        let mut s = format!("{}.{}.{}", q["major"], q["minor"], q["micro"]);
        if let Some(p) = v["package"].as_str().map(str::trim).filter(|p| !p.is_empty()) {
            // A package already in parentheses (ours: " (vmm 0.1.0)") is not wrapped twice.
            let p = p.strip_prefix('(').and_then(|p| p.strip_suffix(')')).unwrap_or(p);
            s.push_str(&format!(" ({p})"));
        }
        s
    }

    /// Sends a request object as is and returns the raw reply object (success or error).
    pub fn request(&self, message: Map<String, Value>, what: &str) -> Result<Map<String, Value>> {
        let (tx, rx) = mpsc::channel();
        {
            let mut d = self.lock()?;
            if let Some(reason) = &d.closed {
                return Err(reason.to_error());
            }
            d.pending.push_back(Pending { id: message.get("id").cloned(), reply: tx });
        }
        let mut bytes = serde_json::to_vec(&Value::Object(message))
            .map_err(|e| Error::Input(format!("Cannot encode the request: {e}")))?;
        bytes.extend_from_slice(b"\r\n");
        self.writer.send(&bytes)?;
        match rx.recv_timeout(self.timeout) {
            Ok(r) => r,
            // The entry stays queued: a late reply is then matched to it, not to the next one.
            Err(RecvTimeoutError::Timeout) => {
                Err(Error::timeout(self.timeout, format!("the reply to {what}")))
            }
            Err(RecvTimeoutError::Disconnected) => Err(self.closed_error()),
        }
    }

    /// Runs `command` and returns the raw reply object (`{"return": ...}` or `{"error": ...}`).
    pub fn execute_raw(&self, command: &str, arguments: Map<String, Value>) -> Result<Map<String, Value>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut msg = Map::new();
        msg.insert("execute".into(), Value::String(command.to_string()));
        if !arguments.is_empty() {
            msg.insert("arguments".into(), Value::Object(arguments));
        }
        msg.insert("id".into(), Value::String(format!("vmmon-{id}")));
        self.request(msg, command)
    }

    /// Runs `command`; a QMP error reply becomes `Err(Error::Command)`.
    pub fn execute(&self, command: &str, arguments: Map<String, Value>) -> Result<Value> {
        reply_result(self.execute_raw(command, arguments)?)
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.lock().map(|d| d.closed.is_some()).unwrap_or(true)
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.writer.shutdown();
    }

    fn closed_error(&self) -> Error {
        match self.lock() {
            Ok(d) => d
                .closed
                .as_ref()
                .map(CloseReason::to_error)
                .unwrap_or(Error::Closed { context: String::new() }),
            Err(e) => e,
        }
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Dispatch>> {
        self.dispatch.lock().map_err(|_| Error::Protocol("internal dispatcher lock poisoned".into()))
    }
}

impl Drop for QmpClient {
    fn drop(&mut self) {
        self.close();
    }
}

/// Splits a reply object into its `return` value or a [`Error::Command`].
pub fn reply_result(reply: Map<String, Value>) -> Result<Value> {
    if let Some(v) = reply.get("return") {
        return Ok(v.clone());
    }
    let err = reply.get("error");
    let field = |k: &str| err.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
    Err(Error::Command { class: field("class"), desc: field("desc") })
}

fn run_dispatcher(
    chunks: mpsc::Receiver<Chunk>,
    mut framer: JsonFramer,
    dispatch: &Mutex<Dispatch>,
    sink: &dyn EventSink,
) {
    let reason = loop {
        match drain(&mut framer, dispatch, sink) {
            Ok(()) => {}
            Err(reason) => break reason,
        }
        match chunks.recv() {
            Ok(Chunk::Data(d)) => framer.feed(&d),
            Ok(Chunk::Eof) | Err(_) => {
                if framer.has_partial() {
                    break CloseReason::Protocol(
                        "the server closed the connection in the middle of a message".into(),
                    );
                }
                break CloseReason::Eof;
            }
            Ok(Chunk::Failed(e)) if framer.has_partial() => {
                break CloseReason::Protocol(format!(
                    "the connection broke in the middle of a message ({e})"
                ));
            }
            // A reset after a complete message is how some servers hang up (e.g. after `quit`).
            Ok(Chunk::Failed(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                break CloseReason::Eof;
            }
            Ok(Chunk::Failed(e)) => break CloseReason::Io(e.to_string()),
        }
    };
    let pending = match dispatch.lock() {
        Ok(mut d) => {
            d.closed = Some(reason.clone());
            std::mem::take(&mut d.pending)
        }
        Err(_) => VecDeque::new(),
    };
    for p in pending {
        // The caller may have given up waiting (timeout); nothing to do then.
        let _ = p.reply.send(Err(reason.to_error()));
    }
    sink.closed(&reason.to_error().to_string());
}

fn drain(
    framer: &mut JsonFramer,
    dispatch: &Mutex<Dispatch>,
    sink: &dyn EventSink,
) -> std::result::Result<(), CloseReason> {
    loop {
        let msg = match framer.next_message() {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(e) => return Err(CloseReason::Protocol(protocol_text(e))),
        };
        if msg.contains_key("event") {
            sink.event(&msg);
        } else if msg.contains_key("return") || msg.contains_key("error") {
            let Ok(mut d) = dispatch.lock() else {
                return Err(CloseReason::Protocol("internal dispatcher lock poisoned".into()));
            };
            let by_id = msg.get("id").and_then(|id| d.pending.iter().position(|p| p.id.as_ref() == Some(id)));
            let slot = match by_id {
                Some(i) => d.pending.remove(i),
                None => d.pending.pop_front(),
            };
            drop(d);
            if let Some(p) = slot {
                // A caller that timed out dropped its receiver; the reply is discarded.
                let _ = p.reply.send(Ok(msg));
            }
        } else {
            return Err(CloseReason::Protocol(format!(
                "the server sent a message that is neither a reply nor an event: {}",
                crate::json_framer::snippet(Value::Object(msg).to_string().as_bytes())
            )));
        }
    }
}

fn protocol_text(e: Error) -> String {
    match e {
        Error::Protocol(m) => m,
        other => other.to_string(),
    }
}
