//! What an HMP command handler works with: the monitor, the session's state, and the text it prints.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::Monitor;
use crate::error::QmpError;

/// State that lives as long as one HMP session (a fresh one for each `human-monitor-command`).
#[derive(Debug, Clone)]
pub struct HmpState {
    /// The CPU chosen with `cpu N` (QEMU's `mon_cpu_path`); `None` means the first CPU.
    pub cpu_index: Option<i64>,
    /// The last `/fmt` of a memory-dump command: format letter and unit size, loaded from and
    /// saved to [`Monitor::hmp_dump_defaults`] around each command (QEMU keeps them process-wide).
    pub dump_format: u8,
    pub dump_size: i64,
}

impl Default for HmpState {
    fn default() -> Self {
        HmpState { cpu_index: None, dump_format: b'x', dump_size: 4 }
    }
}

/// The context of one command execution.
pub struct Ctx {
    pub monitor: Arc<Monitor>,
    pub state: HmpState,
    /// The line editor's history, for `info history` (`None` without a line editor, as over
    /// `human-monitor-command`).
    pub history: Option<Vec<String>>,
    out: String,
    close_requested: bool,
}

impl Ctx {
    pub fn new(monitor: Arc<Monitor>, state: HmpState, history: Option<Vec<String>>) -> Self {
        Ctx { monitor, state, history, out: String::new(), close_requested: false }
    }

    /// Prints text; every `\n` goes out as `\r\n`, as QEMU's monitor writes it.
    pub fn print(&mut self, args: fmt::Arguments<'_>) {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = text.write_fmt(args);
        self.print_str(&text);
    }

    pub fn print_str(&mut self, text: &str) {
        let mut rest = text;
        while let Some(i) = rest.find('\n') {
            self.out.push_str(&rest[..i]);
            self.out.push_str("\r\n");
            rest = &rest[i + 1..];
        }
        self.out.push_str(rest);
    }

    /// Prints a failed QMP command as HMP does (`hmp_handle_error`): `Error: <desc>`.
    pub fn print_error(&mut self, e: &QmpError) {
        self.print(format_args!("Error: {}\n", e.desc));
    }

    /// Runs a QMP command through the shared registry: the same entry, argument checks and handler
    /// as a QMP client gets.
    pub async fn qmp(&self, name: &str, args: Map<String, Value>) -> Result<Value, QmpError> {
        let Some(def) = self.monitor.registry.get(name) else {
            return Err(QmpError::command_not_found(format!("The command {name} has not been found")));
        };
        def.call(self.monitor.clone(), args).await
    }

    /// Runs a QMP command without arguments, printing `Error: ...` on failure.
    pub async fn qmp_simple(&mut self, name: &str) -> Option<Value> {
        match self.qmp(name, Map::new()).await {
            Ok(v) => Some(v),
            Err(e) => {
                self.print_error(&e);
                None
            }
        }
    }

    /// Asks the session to close the connection after this command (HMP `quit`).
    pub fn request_close(&mut self) {
        self.close_requested = true;
    }

    pub fn close_requested(&self) -> bool {
        self.close_requested
    }

    /// The text printed so far.
    pub fn output(&self) -> &str {
        &self.out
    }

    pub fn into_parts(self) -> (String, HmpState, bool) {
        (self.out, self.state, self.close_requested)
    }
}

/// `out!(ctx, "fmt", args..)`: prints to the command's output.
macro_rules! out {
    ($ctx:expr, $($arg:tt)*) => {
        $ctx.print(format_args!($($arg)*))
    };
}
pub(crate) use out;
