//! One QMP connection: greeting, capabilities negotiation, dispatch, replies and events.
//!
//! A session is a single task that owns its reader, its writer and its decoder, so replies leave
//! in the order requests arrived and events are only ever written between whole messages.
//!
//! Flow control (QMP.md §9), with one improvement over QEMU: a command that completes without
//! waiting (most queries) is answered inline, so a pipelined burst is answered in one pass. While
//! a command is waiting on the machine, the session stops reading input, except with the `oob`
//! capability, where up to [`INBAND_QUEUE_MAX`] in-band requests are queued and `exec-oob`
//! requests behind them still run at once. Output is flushed whenever it exceeds
//! [`OUT_HIGH_WATER`] and before the session waits, so a client that stops reading stops being
//! read (backpressure), and its memory stays bounded: the decoder's cap, one read buffer, the
//! output high-water mark plus one reply, and at most [`EVENT_BACKLOG`](crate::events::EVENT_BACKLOG)
//! shared events; a client that falls further behind on events is disconnected with a log line.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::{self, error::TryRecvError};

use super::json_out::to_qmp_line;
use super::json_stream::{JsonError, JsonStreamSplitter, Limits};
use super::message::{Request, parse_request};
use crate::Monitor;
use crate::commands::{QmpCapabilitiesArgs, QmpCapability};
use crate::error::QmpError;
use crate::events::EventMessage;
use crate::registry::CommandFuture;

/// In-band requests queued per session when `oob` is enabled (QEMU's `QMP_REQ_QUEUE_LEN_MAX`).
pub const INBAND_QUEUE_MAX: usize = 8;
/// Pending output above which the session writes before taking more input.
pub const OUT_HIGH_WATER: usize = 64 * 1024;
const READ_CHUNK: usize = 64 * 1024;

/// Per-transport session options.
#[derive(Debug, Clone, Copy)]
pub struct QmpOptions {
    /// Offer the `oob` capability in the greeting (sockets: yes; stdio: no, as QEMU).
    pub oob_offered: bool,
}

/// Serves one QMP client until it disconnects or the monitor closes.
pub async fn serve<R, W>(monitor: Arc<Monitor>, reader: R, writer: W, opts: QmpOptions)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _guard = monitor.session_guard();
    let mut session = Session::new(monitor, writer, opts);
    if let Err(e) = session.run(reader).await {
        tracing::debug!("QMP session ended: {e}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Negotiating,
    Command { oob: bool },
}

/// A decoded input item: a value or one error for one malformed message.
type Item = Result<Value, JsonError>;

struct Session<W> {
    monitor: Arc<Monitor>,
    writer: W,
    out: Vec<u8>,
    mode: Mode,
    opts: QmpOptions,
    decoder: JsonStreamSplitter,
    /// In-band items waiting for the current command (only used with `oob`).
    queue: VecDeque<Item>,
    /// The in-band command in progress and its id.
    current: Option<(Option<Value>, CommandFuture)>,
    events: Option<broadcast::Receiver<Arc<EventMessage>>>,
}

#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("write failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("client fell more than {0} events behind; disconnected")]
    Lagged(u64),
}

impl<W: AsyncWrite + Unpin> Session<W> {
    fn new(monitor: Arc<Monitor>, writer: W, opts: QmpOptions) -> Self {
        Session {
            monitor,
            writer,
            out: Vec::with_capacity(4096),
            mode: Mode::Negotiating,
            opts,
            decoder: JsonStreamSplitter::new(Limits::default()),
            queue: VecDeque::new(),
            current: None,
            events: None,
        }
    }

    async fn run<R: AsyncRead + Unpin>(&mut self, mut reader: R) -> Result<(), SessionEnd> {
        self.write_greeting();
        let mut closing = self.monitor.closing_signal();
        let mut buf = vec![0u8; READ_CHUNK];
        let mut eof = false;
        loop {
            self.pump().await?;
            if eof && self.current.is_none() && self.queue.is_empty() {
                self.flush().await?;
                return Ok(());
            }
            self.flush().await?;
            let may_read = !eof
                && match self.mode {
                    Mode::Command { oob: true } => self.queue.len() < INBAND_QUEUE_MAX,
                    _ => self.current.is_none(),
                };
            tokio::select! {
                biased;
                r = wait_current(&mut self.current) => {
                    let id = self.current.take().and_then(|(id, _)| id);
                    self.respond(id, r)?;
                }
                _ = closing.changed() => {
                    self.flush().await?;
                    return Ok(());
                }
                ev = next_event(&mut self.events) => {
                    match ev {
                        Ok(ev) => self.out.extend_from_slice(&ev.line),
                        Err(broadcast::error::RecvError::Lagged(n)) => return Err(SessionEnd::Lagged(n)),
                        Err(broadcast::error::RecvError::Closed) => self.events = None,
                    }
                }
                n = reader.read(&mut buf), if may_read => {
                    match n {
                        Ok(0) | Err(_) => eof = true,
                        Ok(n) => self.decoder.feed(&buf[..n]),
                    }
                }
            }
        }
    }

    /// Runs everything that can run without waiting: decoded requests, answered inline when their
    /// command completes at once, until a command waits or input runs out.
    async fn pump(&mut self) -> Result<(), SessionEnd> {
        loop {
            if let Mode::Command { oob: true } = self.mode {
                while self.queue.len() < INBAND_QUEUE_MAX {
                    let Some(item) = self.decoder.next_item() else { break };
                    if is_exec_oob(&item) {
                        self.handle_item(item).await?;
                    } else {
                        self.queue.push_back(item);
                    }
                }
            }
            if self.current.is_some() {
                return Ok(());
            }
            let item = match self.mode {
                Mode::Command { oob: true } => self.queue.pop_front(),
                _ => self.decoder.next_item(),
            };
            let Some(item) = item else { return Ok(()) };
            self.handle_item(item).await?;
            if self.out.len() >= OUT_HIGH_WATER {
                self.flush().await?;
            }
        }
    }

    /// Handles one decoded item: an error reply, or a command started (and answered if it is done
    /// at once). OOB commands are awaited here: only non-blocking commands may allow OOB.
    async fn handle_item(&mut self, item: Item) -> Result<(), SessionEnd> {
        let value = match item {
            Ok(v) => v,
            Err(e) => return self.respond(None, Err(QmpError::generic(e.to_string()))),
        };
        let oob_enabled = matches!(self.mode, Mode::Command { oob: true });
        let req = match parse_request(value, oob_enabled) {
            Ok(r) => r,
            Err(e) => return self.respond(e.id, Err(e.error)),
        };
        let Request { command, oob, arguments, id } = req;
        if self.mode == Mode::Negotiating {
            let r = if command == "qmp_capabilities" {
                self.negotiate(arguments)
            } else {
                Err(QmpError::command_not_found("Expecting capabilities negotiation with 'qmp_capabilities'"))
            };
            return self.respond(id, r);
        }
        let Some(def) = self.monitor.registry.get(&command) else {
            return self.respond(
                id,
                Err(QmpError::command_not_found(format!("The command {command} has not been found"))),
            );
        };
        if oob && !def.flags.allow_oob {
            return self
                .respond(id, Err(QmpError::generic(format!("The command {command} does not support OOB"))));
        }
        let mut fut = def.call(self.monitor.clone(), arguments);
        if oob {
            let r = fut.await;
            return self.respond(id, r);
        }
        match poll_once(&mut fut) {
            Poll::Ready(r) => self.respond(id, r),
            Poll::Pending => {
                self.current = Some((id, fut));
                Ok(())
            }
        }
    }

    /// `qmp_capabilities` in negotiation mode; on success the session enters command mode and
    /// starts receiving events.
    fn negotiate(&mut self, arguments: Map<String, Value>) -> Result<Value, QmpError> {
        let Some(def) = self.monitor.registry.get("qmp_capabilities") else {
            return Err(QmpError::generic("qmp_capabilities is not registered"));
        };
        crate::qapi::check::check_arguments(&arguments, (def.args)())?;
        let args: QmpCapabilitiesArgs =
            serde_json::from_value(Value::Object(arguments)).map_err(|e| QmpError::generic(e.to_string()))?;
        let mut oob = false;
        for cap in args.enable.unwrap_or_default() {
            match cap {
                QmpCapability::Oob if self.opts.oob_offered => oob = true,
                QmpCapability::Oob => return Err(QmpError::generic("Capability oob not available")),
            }
        }
        self.mode = Mode::Command { oob };
        self.events = Some(self.monitor.events.subscribe());
        Ok(Value::Object(Map::new()))
    }

    fn write_greeting(&mut self) {
        let version = serde_json::to_value(&self.monitor.config.version).unwrap_or(Value::Null);
        let caps: Vec<Value> = if self.opts.oob_offered { vec!["oob".into()] } else { vec![] };
        let mut qmp = Map::new();
        qmp.insert("version".into(), version);
        qmp.insert("capabilities".into(), Value::Array(caps));
        let mut greeting = Map::new();
        greeting.insert("QMP".into(), Value::Object(qmp));
        to_qmp_line(&Value::Object(greeting), &mut self.out);
    }

    /// Writes one reply, after any events that are already waiting (an event caused by a command
    /// precedes its reply, as in QEMU).
    fn respond(&mut self, id: Option<Value>, result: Result<Value, QmpError>) -> Result<(), SessionEnd> {
        self.drain_events()?;
        let mut obj = Map::new();
        match result {
            Ok(v) => {
                obj.insert("return".into(), v);
            }
            Err(e) => {
                let mut err = Map::new();
                err.insert("class".into(), serde_json::to_value(e.class).unwrap_or(Value::Null));
                err.insert("desc".into(), Value::String(e.desc));
                obj.insert("error".into(), Value::Object(err));
            }
        }
        if let Some(id) = id {
            obj.insert("id".into(), id);
        }
        to_qmp_line(&Value::Object(obj), &mut self.out);
        Ok(())
    }

    fn drain_events(&mut self) -> Result<(), SessionEnd> {
        let Some(rx) = self.events.as_mut() else { return Ok(()) };
        loop {
            match rx.try_recv() {
                Ok(ev) => self.out.extend_from_slice(&ev.line),
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Lagged(n)) => return Err(SessionEnd::Lagged(n)),
                Err(TryRecvError::Closed) => {
                    self.events = None;
                    return Ok(());
                }
            }
        }
    }

    async fn flush(&mut self) -> Result<(), SessionEnd> {
        if self.out.is_empty() {
            return Ok(());
        }
        self.writer.write_all(&self.out).await?;
        self.writer.flush().await?;
        self.out.clear();
        if self.out.capacity() > 4 * OUT_HIGH_WATER {
            self.out.shrink_to(4096);
        }
        Ok(())
    }
}

/// The current command's result; never resolves when there is none.
async fn wait_current(current: &mut Option<(Option<Value>, CommandFuture)>) -> Result<Value, QmpError> {
    match current {
        Some((_, fut)) => fut.await,
        None => std::future::pending().await,
    }
}

/// The next event for a negotiated session; never resolves before negotiation.
async fn next_event(
    events: &mut Option<broadcast::Receiver<Arc<EventMessage>>>,
) -> Result<Arc<EventMessage>, broadcast::error::RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn is_exec_oob(item: &Item) -> bool {
    matches!(item, Ok(Value::Object(o)) if o.contains_key("exec-oob"))
}

/// Polls a future once without a real waker: commands that complete immediately are answered
/// without a trip through the scheduler. A pending future is polled again later with a real waker.
fn poll_once(fut: &mut CommandFuture) -> Poll<Result<Value, QmpError>> {
    let mut cx = Context::from_waker(Waker::noop());
    fut.as_mut().poll(&mut cx)
}
