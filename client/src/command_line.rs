//! What one input line means: a client command, a QMP command (qmp-shell syntax or a raw JSON
//! object), or an HMP command line.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::events::{EventPattern, Filter};
use crate::keyval::{parse_command, split_words};
use crate::schema::Schema;

/// The client's own commands, in the order `help` lists them.
pub const CLIENT_COMMANDS: &[(&str, &str, &str)] = &[
    ("help", "[COMMAND]", "this help, or the arguments of a QMP command from the live schema"),
    ("wait-event", "NAME [TIMEOUT] [key=value...]", "wait for an event (data members must match)"),
    ("sleep", "SECONDS", "pause"),
    ("echo", "TEXT", "print TEXT"),
    ("mode", "[qmp|hmp]", "over QMP: read lines as QMP commands or as HMP command lines"),
    ("reconnect", "", "connect again (after the server went away)"),
    ("exit", "", "leave vmmon (also Ctrl-D); 'quit' is sent to the server"),
];

/// A client command.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    Help(Option<String>),
    WaitEvent { pattern: EventPattern, timeout: Option<Duration> },
    Sleep(Duration),
    Echo(String),
    Mode(Option<String>),
    Reconnect,
    Exit,
}

/// The meaning of one input line.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Blank line or comment.
    Nothing,
    Client(ClientCommand),
    Qmp {
        command: String,
        arguments: Map<String, Value>,
    },
    /// A raw JSON request object, sent as typed.
    RawJson(Map<String, Value>),
    /// An HMP command line (over HMP, or over QMP with `human-monitor-command`).
    Hmp(String),
}

/// How lines are read in the current session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineMode {
    /// Lines are HMP command lines (an HMP connection, or `mode hmp` over QMP).
    pub hmp: bool,
}

/// Interprets a (possibly multi-line, for JSON) input.
pub fn parse_line(input: &str, mode: LineMode, schema: Option<&Schema>) -> Result<Action> {
    let line = input.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(Action::Nothing);
    }
    if let Some(rest) = line.strip_prefix('!') {
        return Ok(Action::Hmp(rest.trim().to_string()));
    }
    let first = line.split_whitespace().next().unwrap_or("");
    let rest = line[first.len()..].trim();
    let forwarded_help = mode.hmp && (first == "help" || first == "?") && !rest.is_empty();
    if !forwarded_help && let Some(cmd) = parse_client(first, rest)? {
        return Ok(Action::Client(cmd));
    }
    if mode.hmp {
        return Ok(Action::Hmp(line.to_string()));
    }
    if line.starts_with('{') {
        return match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => Ok(Action::RawJson(m)),
            Ok(_) => Err(Error::Input("A raw request must be a JSON object".into())),
            Err(e) => Err(Error::Input(format!("Invalid JSON: {e}"))),
        };
    }
    let (command, arguments) = parse_command(line, schema)?;
    Ok(Action::Qmp { command, arguments })
}

fn parse_client(first: &str, rest: &str) -> Result<Option<ClientCommand>> {
    Ok(Some(match first {
        "help" => ClientCommand::Help((!rest.is_empty()).then(|| rest.to_string())),
        "exit" => ClientCommand::Exit,
        "reconnect" => ClientCommand::Reconnect,
        "echo" => ClientCommand::Echo(rest.to_string()),
        "mode" => ClientCommand::Mode((!rest.is_empty()).then(|| rest.to_string())),
        "sleep" => ClientCommand::Sleep(parse_seconds(rest, "sleep")?),
        "wait-event" => parse_wait_event(rest)?,
        _ => return Ok(None),
    }))
}

fn parse_seconds(text: &str, what: &str) -> Result<Duration> {
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| Error::Input(format!("{what}: expected a number of seconds, got '{text}'")))
}

fn parse_wait_event(rest: &str) -> Result<ClientCommand> {
    let words = split_words(rest)?;
    let Some((name, more)) = words.split_first() else {
        return Err(Error::Input("wait-event: expected NAME [TIMEOUT] [key=value...]".into()));
    };
    let mut timeout = None;
    let mut filters = Vec::new();
    for (i, w) in more.iter().enumerate() {
        if i == 0 && !w.text.contains('=') {
            timeout = Some(parse_seconds(&w.text, "wait-event")?);
        } else {
            filters.push(Filter::parse(&w.text)?);
        }
    }
    Ok(ClientCommand::WaitEvent { pattern: EventPattern { name: name.text.clone(), filters }, timeout })
}

/// The client's help text.
pub fn help_text(hmp: bool) -> String {
    let mut s = String::from("vmmon commands:\n");
    for (name, args, help) in CLIENT_COMMANDS {
        let usage = format!("{name} {args}");
        s.push_str(&format!("  {usage:<40} {help}\n"));
    }
    if hmp {
        s.push_str("Other lines are HMP command lines ('help COMMAND' asks the server).\n");
    } else {
        s.push_str(concat!(
            "Other lines are QMP commands:\n",
            "  command key=value a.b=1 list=[1,2] obj={\"x\":1}   (qmp-shell syntax)\n",
            "  {\"execute\": \"...\", \"arguments\": {...}}          (raw JSON, may span lines)\n",
            "  !info status                                     (HMP through human-monitor-command)\n",
        ));
    }
    s.push_str("Tab completes commands, arguments and values; Ctrl-R searches the history.\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const QMP: LineMode = LineMode { hmp: false };
    const HMP: LineMode = LineMode { hmp: true };

    #[test]
    fn kinds_of_lines() {
        assert_eq!(parse_line("  # comment", QMP, None).unwrap(), Action::Nothing);
        assert_eq!(parse_line("", QMP, None).unwrap(), Action::Nothing);
        assert_eq!(parse_line("!info status", QMP, None).unwrap(), Action::Hmp("info status".into()));
        assert_eq!(parse_line("info status", HMP, None).unwrap(), Action::Hmp("info status".into()));
        assert_eq!(parse_line("help", HMP, None).unwrap(), Action::Client(ClientCommand::Help(None)));
        assert_eq!(parse_line("help info", HMP, None).unwrap(), Action::Hmp("help info".into()));
        assert_eq!(
            parse_line("help block-stream", QMP, None).unwrap(),
            Action::Client(ClientCommand::Help(Some("block-stream".into())))
        );
        match parse_line("{\"execute\": \"stop\",\n \"id\": 1}", QMP, None).unwrap() {
            Action::RawJson(m) => assert_eq!(Value::Object(m), json!({"execute": "stop", "id": 1})),
            other => panic!("{other:?}"),
        }
        assert!(parse_line("{\"execute\": ", QMP, None).is_err());
        match parse_line("stop", QMP, None).unwrap() {
            Action::Qmp { command, arguments } => {
                assert_eq!(command, "stop");
                assert!(arguments.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn client_commands() {
        assert_eq!(
            parse_line("sleep 0.5", QMP, None).unwrap(),
            Action::Client(ClientCommand::Sleep(Duration::from_millis(500)))
        );
        assert!(parse_line("sleep soon", QMP, None).is_err());
        assert!(parse_line("sleep -1", QMP, None).is_err());
        assert_eq!(
            parse_line("echo hello  world", QMP, None).unwrap(),
            Action::Client(ClientCommand::Echo("hello  world".into()))
        );
        match parse_line("wait-event JOB_STATUS_CHANGE 5 status=concluded id=j0", QMP, None).unwrap() {
            Action::Client(ClientCommand::WaitEvent { pattern, timeout }) => {
                assert_eq!(pattern.name, "JOB_STATUS_CHANGE");
                assert_eq!(timeout, Some(Duration::from_secs(5)));
                assert_eq!(pattern.filters.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        match parse_line("wait-event STOP", QMP, None).unwrap() {
            Action::Client(ClientCommand::WaitEvent { pattern, timeout }) => {
                assert_eq!(pattern.name, "STOP");
                assert_eq!(timeout, None);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_line("wait-event", QMP, None).is_err());
        assert!(parse_line("wait-event STOP x y", QMP, None).is_err());
    }
}
