//! Everything vmmon prints goes through [`Output`]: replies, events, messages, errors and the
//! block-job status area (progress bars kept at the bottom of the terminal).
//!
//! The status area is redrawn by moving the cursor up over it, clearing to the end of the
//! screen, printing whatever has to scroll past, then printing the bars again. In the REPL the
//! text goes through rustyline's external printer, which clears the prompt line first and
//! repaints it (with the line being typed) afterwards, so events never break the input line.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::sync::mpsc::{self, SyncSender};

use serde_json::{Map, Value};

/// How replies and events are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Pretty-printed JSON, events on one line.
    Pretty,
    /// Everything on one line.
    Compact,
    /// Each message as received, one JSON object per line.
    Json,
}

enum Sink {
    Stdio,
    /// Text for the printer thread (see [`Output::use_printer`]).
    Printer(SyncSender<String>),
}

/// Messages queued for the printer thread before writers wait.
const PRINTER_QUEUE: usize = 4096;

struct Inner {
    sink: Sink,
    status: Vec<String>,
    shown: usize,
}

/// The single writer of the process's output.
pub struct Output {
    format: Format,
    status_enabled: bool,
    inner: Mutex<Inner>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

impl Output {
    /// `status_enabled`: draw block-job progress (only on a terminal, never in JSON mode).
    pub fn new(format: Format) -> Output {
        let status_enabled = format != Format::Json && std::io::stdout().is_terminal();
        Output {
            format,
            status_enabled,
            inner: Mutex::new(Inner { sink: Sink::Stdio, status: Vec::new(), shown: 0 }),
        }
    }

    /// True when a progress display would be seen.
    pub fn status_enabled(&self) -> bool {
        self.status_enabled
    }

    /// Sends all later output through rustyline's external printer (REPL mode).
    ///
    /// A thread of its own feeds the printer: the printer can block until the line editor
    /// takes the text, and the output lock must never be held while it does (the main thread
    /// needs that lock to print replies).
    pub fn use_printer(&self, mut printer: Box<dyn rustyline::ExternalPrinter + Send>) {
        let (tx, rx) = mpsc::sync_channel::<String>(PRINTER_QUEUE);
        let spawned = std::thread::Builder::new().name("vmmon-printer".into()).spawn(move || {
            for text in rx {
                // The printer only fails when the terminal is gone; nothing left to tell.
                let _ = printer.print(text);
            }
        });
        if spawned.is_ok()
            && let Ok(mut i) = self.inner.lock()
        {
            i.sink = Sink::Printer(tx);
        }
    }

    /// Prints a QMP reply object.
    pub fn reply(&self, reply: &Map<String, Value>) {
        match self.format {
            Format::Json => self.emit(Stream::Out, &json_line(reply)),
            _ => {
                if let Some(v) = reply.get("return") {
                    self.value(v);
                } else {
                    let e = reply.get("error");
                    let field =
                        |k: &str| e.and_then(|e| e.get(k)).and_then(Value::as_str).unwrap_or("").to_string();
                    self.error(&format!("Error ({}): {}", field("class"), field("desc")));
                }
            }
        }
    }

    /// Prints a command's result value (strings as text, the rest as JSON).
    pub fn value(&self, v: &Value) {
        match (self.format, v) {
            (Format::Json, _) => {
                let mut m = Map::new();
                m.insert("return".into(), v.clone());
                self.emit(Stream::Out, &json_line(&m));
            }
            (_, Value::String(s)) => self.text(s),
            (Format::Compact, v) => self.emit(Stream::Out, &format!("{v}\n")),
            (Format::Pretty, v) => {
                let s = serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string());
                self.emit(Stream::Out, &format!("{s}\n"));
            }
        }
    }

    /// Prints an HMP command's output.
    pub fn hmp_output(&self, text: &str) {
        match self.format {
            Format::Json => self.value(&Value::String(text.to_string())),
            _ => self.text(text),
        }
    }

    /// Prints an event.
    pub fn event(&self, event: &Map<String, Value>) {
        let line = match self.format {
            Format::Json => json_line(event),
            _ => format!("{}\n", event_line(event)),
        };
        self.emit(Stream::Out, &line);
    }

    /// Prints a line of the client's own output (help, echo, banners).
    pub fn message(&self, text: &str) {
        match self.format {
            Format::Json => {
                let mut m = Map::new();
                m.insert("echo".into(), Value::String(text.to_string()));
                self.emit(Stream::Out, &json_line(&m));
            }
            _ => self.text(text),
        }
    }

    /// Prints a diagnostic to stderr.
    pub fn error(&self, text: &str) {
        let mut t = text.trim_end().to_string();
        t.push('\n');
        self.emit(Stream::Err, &t);
    }

    /// Replaces the status area (one line per running job).
    pub fn set_status(&self, lines: Vec<String>) {
        if !self.status_enabled {
            return;
        }
        let Ok(mut i) = self.inner.lock() else {
            return;
        };
        if i.status == lines && i.shown == lines.len() {
            return;
        }
        i.status = lines;
        let mut s = clear_sequence(i.shown);
        for l in &i.status {
            s.push_str(l);
            s.push('\n');
        }
        if i.status.is_empty() && matches!(i.sink, Sink::Printer(_)) {
            // rustyline ends every message with a line break: step up one line first so that
            // the break lands where the first bar was, and no blank line is left behind.
            s.push_str("\x1b[1A\n");
        }
        i.shown = i.status.len();
        write_sink(&mut i.sink, Stream::Out, &s);
    }

    /// Leaves the bars where they are (the REPL is about to print the typed line below them):
    /// the next redraw starts below.
    pub fn detach_status(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.shown = 0;
        }
    }

    fn text(&self, s: &str) {
        if s.is_empty() {
            return;
        }
        let mut t = s.replace("\r\n", "\n");
        if !t.ends_with('\n') {
            t.push('\n');
        }
        self.emit(Stream::Out, &t);
    }

    fn emit(&self, stream: Stream, text: &str) {
        let Ok(mut i) = self.inner.lock() else {
            return;
        };
        if i.shown == 0 {
            write_sink(&mut i.sink, stream, text);
            return;
        }
        // Scroll the text out above the bars, then draw the bars again.
        let clear = clear_sequence(i.shown);
        let mut bars = String::new();
        for l in &i.status {
            bars.push_str(l);
            bars.push('\n');
        }
        i.shown = i.status.len();
        if stream == Stream::Out || matches!(i.sink, Sink::Printer(_)) {
            let all = format!("{clear}{text}{bars}");
            write_sink(&mut i.sink, stream, &all);
        } else {
            write_sink(&mut i.sink, Stream::Out, &clear);
            write_sink(&mut i.sink, Stream::Err, text);
            write_sink(&mut i.sink, Stream::Out, &bars);
        }
    }
}

fn clear_sequence(shown: usize) -> String {
    if shown == 0 { String::new() } else { format!("\x1b[{shown}A\r\x1b[J") }
}

fn write_sink(sink: &mut Sink, stream: Stream, text: &str) {
    match sink {
        Sink::Printer(p) => {
            // The printer thread only stops when the process ends.
            let _ = p.send(text.to_string());
        }
        Sink::Stdio => {
            // A closed stdout (e.g. `vmmon ... | head`) must not abort the session.
            let _ = match stream {
                Stream::Out => {
                    let mut o = std::io::stdout().lock();
                    o.write_all(text.as_bytes()).and_then(|_| o.flush())
                }
                Stream::Err => {
                    let mut e = std::io::stderr().lock();
                    e.write_all(text.as_bytes()).and_then(|_| e.flush())
                }
            };
        }
    }
}

fn json_line(m: &Map<String, Value>) -> String {
    format!("{}\n", Value::Object(m.clone()))
}

/// `[12:34:56.789] NAME {"data": ...}` in local time.
pub fn event_line(event: &Map<String, Value>) -> String {
    let name = event.get("event").and_then(Value::as_str).unwrap_or("?");
    let ts = event.get("timestamp");
    let secs = ts.and_then(|t| t.get("seconds")).and_then(Value::as_i64);
    let micros = ts.and_then(|t| t.get("microseconds")).and_then(Value::as_i64);
    let time = match (secs, micros) {
        (Some(s), Some(us)) if s >= 0 && us >= 0 => format!("[{}] ", clock_time(s, us)),
        _ => String::new(),
    };
    match event.get("data") {
        Some(d) => format!("{time}event {name} {d}"),
        None => format!("{time}event {name}"),
    }
}

fn clock_time(secs: i64, micros: i64) -> String {
    let t: libc::time_t = secs;
    // SAFETY: `tm` is plain old data, fully written by localtime_r on success; both pointers
    // are valid for the duration of the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return format!("{secs}.{:03}", micros / 1000);
        }
        tm
    };
    format!("{:02}:{:02}:{:02}.{:03}", tm.tm_hour, tm.tm_min, tm.tm_sec, (micros / 1000) % 1000)
}

/// The terminal width of stdout, or 80.
pub fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the struct we pass; it is plain old data.
    let ws = unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) != 0 {
            return 80;
        }
        ws
    };
    if ws.ws_col == 0 { 80 } else { ws.ws_col as usize }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_lines() {
        let ev = json!({"event": "STOP", "timestamp": {"seconds": 1796014365, "microseconds": 96885}});
        let line = event_line(ev.as_object().unwrap());
        assert!(line.ends_with(".096] event STOP"), "{line}");
        let ev = json!({"event": "RESET", "data": {"guest": false}});
        assert_eq!(event_line(ev.as_object().unwrap()), "event RESET {\"guest\":false}");
    }

    #[test]
    fn clear_sequences() {
        assert_eq!(clear_sequence(0), "");
        assert_eq!(clear_sequence(2), "\x1b[2A\r\x1b[J");
    }
}
