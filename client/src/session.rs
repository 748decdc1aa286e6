//! A session with one monitor: connecting (with protocol detection), running input lines, and
//! the state the REPL and scripts share (line mode, schema, events, job progress).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::address::Address;
use crate::command_line::{Action, CLIENT_COMMANDS, ClientCommand, LineMode, help_text, parse_line};
use crate::detect::{Opening, detect};
use crate::error::{Error, Result};
use crate::events::EventQueue;
use crate::hmp::{HmpClient, output_is_error};
use crate::hmp_help::{HmpCommand, parse_help, parse_info};
use crate::link::Link;
use crate::output::Output;
use crate::progress::JobWatcher;
use crate::qmp::{EventSink, QmpClient, reply_result};
use crate::schema::Schema;
use crate::transport;

/// Settings that apply to a whole session.
#[derive(Debug, Clone)]
pub struct Options {
    /// Limit for connecting, the greeting, each reply and (by default) `wait-event`.
    pub timeout: Duration,
    /// Keep trying to connect this long while the socket is missing or refusing.
    pub retry: Option<Duration>,
    /// Over QMP, start with lines read as HMP.
    pub start_in_hmp: bool,
    /// REPL: fetch completion data, announce a dropped connection.
    pub interactive: bool,
}

/// Whether a line ran to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Exit,
}

/// A failed line. `reported` is true when the failure was already printed (a QMP error reply
/// is printed like any reply).
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    pub reported: bool,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure { error, reported: false }
    }
}

/// Completion data shared with the line editor.
#[derive(Debug, Default, Clone)]
pub struct CompletionData {
    pub schema: Option<Arc<Schema>>,
    pub hmp_commands: Vec<HmpCommand>,
    pub hmp_info: Vec<HmpCommand>,
    pub mode: Option<LineMode>,
}

enum Monitor {
    Qmp(Arc<QmpClient>),
    Hmp(HmpClient),
}

/// Receives events from the QMP dispatcher thread.
struct SessionSink {
    output: Arc<Output>,
    events: Arc<EventQueue>,
    watcher: Mutex<Option<Arc<JobWatcher>>>,
    expect_close: AtomicBool,
    announce_close: bool,
}

impl EventSink for SessionSink {
    fn event(&self, event: &Map<String, Value>) {
        self.output.event(event);
        if let Ok(w) = self.watcher.lock()
            && let Some(w) = w.as_ref()
        {
            w.on_event(event);
        }
        self.events.push(event.clone());
    }

    fn closed(&self, reason: &str) {
        self.events.close(reason);
        if let Ok(mut w) = self.watcher.lock()
            && let Some(w) = w.take()
        {
            w.stop();
        }
        if self.announce_close && !self.expect_close.load(Ordering::SeqCst) {
            self.output.error(&format!("{reason}. Type 'reconnect' to connect again, or Ctrl-D to leave."));
        }
    }
}

/// One session.
pub struct Session {
    address: Address,
    options: Options,
    output: Arc<Output>,
    events: Arc<EventQueue>,
    monitor: Option<Monitor>,
    sink: Option<Arc<SessionSink>>,
    hmp_mode: bool,
    schema: Option<Arc<Schema>>,
    schema_tried: bool,
    completion: Arc<RwLock<CompletionData>>,
}

impl Session {
    /// Connects and negotiates.
    pub fn connect(address: Address, options: Options, output: Arc<Output>) -> Result<Session> {
        let mut s = Session {
            address,
            hmp_mode: options.start_in_hmp,
            options,
            output,
            events: Arc::new(EventQueue::new()),
            monitor: None,
            sink: None,
            schema: None,
            schema_tried: false,
            completion: Arc::new(RwLock::new(CompletionData::default())),
        };
        s.open()?;
        Ok(s)
    }

    fn open(&mut self) -> Result<()> {
        self.close();
        self.events.reset();
        let stream = transport::connect(&self.address, self.options.retry, self.options.timeout)?;
        let link = Link::start(stream, self.address.is_telnet(), self.options.timeout)?;
        match detect(&link, self.options.timeout)? {
            Opening::Qmp { greeting, framer } => {
                let sink = Arc::new(SessionSink {
                    output: self.output.clone(),
                    events: self.events.clone(),
                    watcher: Mutex::new(None),
                    expect_close: AtomicBool::new(false),
                    announce_close: self.options.interactive,
                });
                let client =
                    Arc::new(QmpClient::start(link, greeting, framer, sink.clone(), self.options.timeout)?);
                if self.output.status_enabled() {
                    let watcher = JobWatcher::new(self.output.clone());
                    watcher.spawn(client.clone());
                    if let Ok(mut w) = sink.watcher.lock() {
                        *w = Some(watcher);
                    }
                }
                self.sink = Some(sink);
                self.monitor = Some(Monitor::Qmp(client));
            }
            Opening::Hmp { banner, prompt } => {
                self.monitor = Some(Monitor::Hmp(HmpClient::new(link, banner, prompt, self.options.timeout)));
            }
        }
        self.schema = None;
        self.schema_tried = false;
        if self.options.interactive {
            self.load_completion_data();
        }
        self.publish_mode();
        Ok(())
    }

    fn drop_monitor(&mut self) {
        self.close();
    }

    /// Drops the connection.
    pub fn close(&mut self) {
        if let Some(sink) = &self.sink {
            sink.expect_close.store(true, Ordering::SeqCst);
        }
        match self.monitor.take() {
            Some(Monitor::Qmp(c)) => c.close(),
            Some(Monitor::Hmp(c)) => c.close(),
            None => {}
        }
        self.sink = None;
    }

    /// The data the line editor completes from.
    pub fn completion(&self) -> Arc<RwLock<CompletionData>> {
        self.completion.clone()
    }

    /// One line describing what we are connected to.
    pub fn describe(&self) -> String {
        match &self.monitor {
            Some(Monitor::Qmp(c)) => {
                let caps = c
                    .greeting()
                    .get("QMP")
                    .and_then(|q| q.get("capabilities"))
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", "))
                    .unwrap_or_default();
                let caps = if caps.is_empty() { "none".to_string() } else { caps };
                format!(
                    "Connected to QEMU {} on {} (QMP, capabilities: {caps})",
                    c.server_version(),
                    self.address
                )
            }
            Some(Monitor::Hmp(c)) => {
                format!("Connected to {} (HMP): {}", self.address, c.banner())
            }
            None => format!("Not connected to {}", self.address),
        }
    }

    /// The REPL prompt.
    pub fn prompt(&self) -> String {
        match &self.monitor {
            _ if !self.connected() => "(disconnected) ".into(),
            Some(Monitor::Hmp(c)) => c.prompt().to_string(),
            Some(Monitor::Qmp(_)) if self.hmp_mode => "(hmp) ".into(),
            Some(Monitor::Qmp(_)) => "(qmp) ".into(),
            None => "(disconnected) ".into(),
        }
    }

    /// True while the server is there.
    pub fn connected(&self) -> bool {
        match &self.monitor {
            Some(Monitor::Qmp(c)) => !c.is_closed(),
            Some(Monitor::Hmp(c)) => !c.is_closed(),
            None => false,
        }
    }

    fn line_mode(&self) -> LineMode {
        LineMode {
            hmp: match &self.monitor {
                Some(Monitor::Hmp(_)) => true,
                _ => self.hmp_mode,
            },
        }
    }

    fn publish_mode(&self) {
        if let Ok(mut c) = self.completion.write() {
            c.mode = Some(self.line_mode());
        }
    }

    /// Runs one input line (or a complete multi-line JSON request).
    pub fn run_line(&mut self, input: &str) -> std::result::Result<Flow, Failure> {
        if self.options.interactive && self.monitor.is_some() && !self.connected() {
            // Report "not connected" (and offer reconnect) from now on.
            self.drop_monitor();
        }
        let mode = self.line_mode();
        if !mode.hmp && !input.trim_start().starts_with(['{', '!', '#']) {
            // Typing key=value arguments needs the schema; fetch it the first time.
            if input.split_whitespace().nth(1).is_some() {
                self.ensure_schema()?;
            }
        }
        let action = parse_line(input, mode, self.schema.as_deref())?;
        match action {
            Action::Nothing => Ok(Flow::Continue),
            Action::Client(c) => self.run_client(c),
            Action::Qmp { command, arguments } => {
                let quitting = command == "quit";
                let client = self.qmp_client("QMP commands")?;
                self.expect_close(quitting);
                let reply = client.execute_raw(&command, arguments);
                self.finish_qmp(reply, quitting)?;
                if let Some(w) = self.watcher()
                    && (command.starts_with("block")
                        || command.starts_with("drive")
                        || command.starts_with("job"))
                {
                    w.poke();
                }
                Ok(Flow::Continue)
            }
            Action::RawJson(msg) => {
                let command = msg
                    .get("execute")
                    .or_else(|| msg.get("exec-oob"))
                    .and_then(Value::as_str)
                    .unwrap_or("the request")
                    .to_string();
                let quitting = command == "quit";
                let client = self.qmp_client("JSON requests")?;
                self.expect_close(quitting);
                let reply = client.request(msg, &command);
                self.finish_qmp(reply, quitting)?;
                Ok(Flow::Continue)
            }
            Action::Hmp(line) => self.run_hmp(&line),
        }
    }

    fn expect_close(&self, yes: bool) {
        if let Some(s) = &self.sink {
            s.expect_close.store(yes, Ordering::SeqCst);
        }
    }

    fn watcher(&self) -> Option<Arc<JobWatcher>> {
        self.sink.as_ref().and_then(|s| s.watcher.lock().ok().and_then(|w| w.clone()))
    }

    fn finish_qmp(
        &self,
        reply: Result<Map<String, Value>>,
        quitting: bool,
    ) -> std::result::Result<(), Failure> {
        match reply {
            Ok(r) => {
                self.output.reply(&r);
                match reply_result(r) {
                    Ok(_) => Ok(()),
                    Err(error) => Err(Failure { error, reported: true }),
                }
            }
            // `quit` may close the socket before its reply arrives.
            Err(Error::Closed { .. }) if quitting => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    fn qmp_client(&self, what: &str) -> Result<Arc<QmpClient>> {
        match &self.monitor {
            Some(Monitor::Qmp(c)) => Ok(c.clone()),
            Some(Monitor::Hmp(_)) => {
                Err(Error::Input(format!("This is an HMP monitor: {what} work only over QMP")))
            }
            None => Err(not_connected()),
        }
    }

    fn run_hmp(&mut self, line: &str) -> std::result::Result<Flow, Failure> {
        let first = line.split_whitespace().next().unwrap_or("");
        let quitting = first == "quit" || first == "q";
        let result = match &self.monitor {
            Some(Monitor::Hmp(c)) => c.command(line),
            Some(Monitor::Qmp(c)) => {
                self.expect_close(quitting);
                let mut args = Map::new();
                args.insert("command-line".into(), Value::String(line.to_string()));
                c.execute("human-monitor-command", args).map(|v| match v {
                    Value::String(s) => s.replace("\r\n", "\n"),
                    other => other.to_string(),
                })
            }
            None => Err(not_connected()),
        };
        match result {
            Ok(text) => {
                self.output.hmp_output(&text);
                if output_is_error(&text) {
                    let desc = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
                    return Err(Failure {
                        error: Error::Command { class: "HMP".into(), desc },
                        reported: true,
                    });
                }
                Ok(Flow::Continue)
            }
            Err(Error::Closed { .. }) if quitting => Ok(Flow::Continue),
            Err(e) => Err(e.into()),
        }
    }

    fn run_client(&mut self, command: ClientCommand) -> std::result::Result<Flow, Failure> {
        match command {
            ClientCommand::Exit => Ok(Flow::Exit),
            ClientCommand::Echo(text) => {
                self.output.message(&text);
                Ok(Flow::Continue)
            }
            ClientCommand::Sleep(d) => {
                thread::sleep(d);
                Ok(Flow::Continue)
            }
            ClientCommand::WaitEvent { pattern, timeout } => {
                self.qmp_client("events (wait-event)")?;
                let timeout = timeout.unwrap_or(self.options.timeout);
                self.events.wait(&pattern, timeout)?;
                Ok(Flow::Continue)
            }
            ClientCommand::Mode(m) => {
                match (m.as_deref(), &self.monitor) {
                    (None, _) => {
                        let mode = if self.line_mode().hmp { "hmp" } else { "qmp" };
                        self.output.message(&format!("mode {mode}"));
                    }
                    (Some(_), Some(Monitor::Hmp(_))) => {
                        return Err(
                            Error::Input("This is an HMP monitor: there is no QMP mode".into()).into()
                        );
                    }
                    (Some("hmp"), _) => self.hmp_mode = true,
                    (Some("qmp"), _) => self.hmp_mode = false,
                    (Some(other), _) => {
                        return Err(
                            Error::Input(format!("mode: expected 'qmp' or 'hmp', got '{other}'")).into()
                        );
                    }
                }
                self.publish_mode();
                Ok(Flow::Continue)
            }
            ClientCommand::Reconnect => {
                self.open()?;
                self.output.message(&self.describe());
                Ok(Flow::Continue)
            }
            ClientCommand::Help(topic) => self.help(topic.as_deref()),
        }
    }

    fn help(&mut self, topic: Option<&str>) -> std::result::Result<Flow, Failure> {
        let hmp = self.line_mode().hmp;
        let Some(topic) = topic else {
            let mut text = help_text(hmp);
            if !hmp && let Ok(Some(schema)) = self.ensure_schema().map(|()| self.schema.clone()) {
                text.push_str(&format!(
                    "The server has {} QMP commands (Tab lists them; 'help COMMAND' shows arguments).\n",
                    schema.command_names().count()
                ));
            }
            self.output.message(text.trim_end());
            return Ok(Flow::Continue);
        };
        if let Some((name, args, help)) = CLIENT_COMMANDS.iter().find(|c| c.0 == topic) {
            self.output.message(&format!("{name} {args}\n  {help}"));
            return Ok(Flow::Continue);
        }
        self.ensure_schema()?;
        match self.schema.as_ref().and_then(|s| s.describe_command(topic)) {
            Some(d) => {
                self.output.message(d.trim_end());
                Ok(Flow::Continue)
            }
            None => Err(Error::Input(format!("No command '{topic}' in the server's schema")).into()),
        }
    }

    /// Fetches the schema once (QMP only). A server without introspection falls back to
    /// `query-commands`; one without that has no schema.
    fn ensure_schema(&mut self) -> Result<()> {
        if self.schema_tried {
            return Ok(());
        }
        let Some(Monitor::Qmp(c)) = &self.monitor else {
            return Ok(());
        };
        let c = c.clone();
        self.schema_tried = true;
        let schema = match c.execute("query-qmp-schema", Map::new()) {
            Ok(v) => Some(Schema::from_value(&v)),
            Err(e) if e.is_fatal() => return Err(e),
            Err(_) => match c.execute("query-commands", Map::new()) {
                Ok(Value::Array(list)) => Some(Schema::from_command_names(
                    list.iter().filter_map(|c| c.get("name").and_then(Value::as_str)).map(str::to_string),
                )),
                Ok(_) => None,
                Err(e) if e.is_fatal() => return Err(e),
                Err(_) => None,
            },
        };
        self.schema = schema.map(Arc::new);
        if let Ok(mut d) = self.completion.write() {
            d.schema = self.schema.clone();
        }
        Ok(())
    }

    /// Schema and HMP command lists for completion. Failures only mean less completion.
    fn load_completion_data(&mut self) {
        if let Err(e) = self.ensure_schema() {
            self.output.error(&format!("Cannot read the QMP schema: {e}"));
        }
        let hmp = |line: &str| -> Option<String> {
            match &self.monitor {
                Some(Monitor::Hmp(c)) => c.command(line).ok(),
                Some(Monitor::Qmp(c)) => {
                    let mut args = Map::new();
                    args.insert("command-line".into(), Value::String(line.into()));
                    c.execute("human-monitor-command", args)
                        .ok()
                        .and_then(|v| v.as_str().map(|s| s.replace("\r\n", "\n")))
                }
                None => None,
            }
        };
        let commands = hmp("help").map(|t| parse_help(&t)).unwrap_or_default();
        let info = hmp("info").map(|t| parse_info(&t)).unwrap_or_default();
        if let Ok(mut d) = self.completion.write() {
            d.hmp_commands = commands;
            d.hmp_info = info;
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
    }
}

fn not_connected() -> Error {
    Error::Closed { context: "; type 'reconnect' to connect again".into() }
}
