//! The line editor's helper: completion of command names, argument names and enum values from
//! the live schema (or HMP `help`), argument hints, and multi-line JSON input.

use std::borrow::Cow;
use std::sync::{Arc, RwLock};

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use serde_json::{Map, Value};

use crate::command_line::CLIENT_COMMANDS;
use crate::keyval::parse_command;
use crate::session::CompletionData;

/// The rustyline helper.
pub struct MonitorHelper {
    data: Arc<RwLock<CompletionData>>,
}

impl MonitorHelper {
    pub fn new(data: Arc<RwLock<CompletionData>>) -> Self {
        MonitorHelper { data }
    }

    fn snapshot(&self) -> CompletionData {
        self.data.read().map(|d| d.clone()).unwrap_or_default()
    }
}

/// Completions for `line` with the cursor at `pos`: the start of the replaced text and the
/// candidates.
pub fn complete(data: &CompletionData, line: &str, pos: usize) -> (usize, Vec<Pair>) {
    let before = &line[..pos];
    let hmp_mode = data.mode.is_some_and(|m| m.hmp);
    if let Some(rest) = before.strip_prefix('!') {
        let (start, c) = complete_hmp(data, rest);
        return (start + 1, c);
    }
    if hmp_mode {
        return complete_hmp(data, before);
    }
    complete_qmp(data, before)
}

fn word_start(before: &str) -> usize {
    before.rfind(char::is_whitespace).map(|i| i + 1).unwrap_or(0)
}

fn pairs<'a>(prefix: &str, names: impl Iterator<Item = &'a str>, suffix: &str) -> Vec<Pair> {
    let mut v: Vec<Pair> = names
        .filter(|n| n.starts_with(prefix))
        .map(|n| Pair { display: n.to_string(), replacement: format!("{n}{suffix}") })
        .collect();
    v.sort_by(|a, b| a.display.cmp(&b.display));
    v.dedup_by(|a, b| a.display == b.display);
    v
}

fn complete_qmp(data: &CompletionData, before: &str) -> (usize, Vec<Pair>) {
    let start = word_start(before);
    let word = &before[start..];
    let leading = before.len() - before.trim_start().len();
    if before[leading..start].trim().is_empty() {
        // The command name.
        let client = CLIENT_COMMANDS.iter().map(|c| c.0);
        let names: Vec<&str> = match &data.schema {
            Some(s) => s.command_names().chain(client).collect(),
            None => client.collect(),
        };
        return (start, pairs(word, names.into_iter(), " "));
    }
    let command = before.split_whitespace().next().unwrap_or("");
    let Some(schema) = data.schema.as_ref() else {
        return (start, Vec::new());
    };
    match command {
        "wait-event" => {
            if before[leading..start].split_whitespace().count() == 1 {
                return (start, pairs(word, schema.event_names(), " "));
            }
            return (start, Vec::new());
        }
        "help" => return (start, pairs(word, schema.command_names(), "")),
        "mode" => return (start, pairs(word, ["qmp", "hmp"].into_iter(), "")),
        _ => {}
    }
    // Arguments typed so far give union tags (driver=qcow2) for the members offered.
    let given: Map<String, Value> =
        parse_command(&before[..start], Some(schema)).map(|(_, a)| a).unwrap_or_default();
    if let Some((key, value)) = word.split_once('=') {
        let path: Vec<&str> = key.split('.').collect();
        let Some(t) = schema.type_at(command, &path, &given) else {
            return (start, Vec::new());
        };
        let choices = schema.value_choices(&t);
        let value_start = start + key.len() + 1;
        return (value_start, pairs(value, choices.iter().map(String::as_str), " "));
    }
    let (parent, prefix) = match word.rfind('.') {
        Some(i) => (&word[..i], &word[i + 1..]),
        None => ("", word),
    };
    let members = if parent.is_empty() {
        schema.arguments(command, &given)
    } else {
        let path: Vec<&str> = parent.split('.').collect();
        let mut inner = &given;
        for p in &path {
            match inner.get(*p).and_then(Value::as_object) {
                Some(m) => inner = m,
                None => break,
            }
        }
        match schema.type_at(command, &path, &given) {
            Some(t) => schema.members(&t, inner),
            None => Vec::new(),
        }
    };
    let offset = if parent.is_empty() { 0 } else { parent.len() + 1 };
    let mut out: Vec<Pair> = members
        .iter()
        .filter(|m| m.name.starts_with(prefix))
        .filter(|m| !(parent.is_empty() && given.contains_key(&m.name)))
        .map(|m| {
            let nested = !schema.members(&m.type_name, &Map::new()).is_empty()
                && schema.value_choices(&m.type_name).is_empty();
            let suffix = if nested && schema.kind(&m.type_name) != crate::schema::ValueKind::String {
                "."
            } else {
                "="
            };
            Pair { display: m.name.clone(), replacement: format!("{}{suffix}", m.name) }
        })
        .collect();
    out.sort_by(|a, b| a.display.cmp(&b.display));
    out.dedup_by(|a, b| a.display == b.display);
    (start + offset, out)
}

fn complete_hmp(data: &CompletionData, before: &str) -> (usize, Vec<Pair>) {
    let start = word_start(before);
    let word = &before[start..];
    let leading = before.len() - before.trim_start().len();
    let typed: Vec<&str> = before[leading..start].split_whitespace().collect();
    let names = |cmds: &[crate::hmp_help::HmpCommand]| -> Vec<String> {
        cmds.iter().flat_map(|c| c.names.iter().cloned()).collect()
    };
    match typed.as_slice() {
        [] => {
            let mut all = names(&data.hmp_commands);
            all.extend(CLIENT_COMMANDS.iter().map(|c| c.0.to_string()));
            (start, pairs(word, all.iter().map(String::as_str), " "))
        }
        ["info"] => {
            let all = names(&data.hmp_info);
            (start, pairs(word, all.iter().map(String::as_str), " "))
        }
        ["help" | "?"] => {
            let all = names(&data.hmp_commands);
            (start, pairs(word, all.iter().map(String::as_str), ""))
        }
        _ => (start, Vec::new()),
    }
}

/// The argument synopsis shown after a complete command name.
pub fn hint(data: &CompletionData, line: &str, pos: usize) -> Option<String> {
    if pos < line.len() || !line.ends_with(' ') {
        return None;
    }
    let hmp_mode = data.mode.is_some_and(|m| m.hmp);
    if hmp_mode || line.starts_with('!') {
        let text = line.trim_start_matches('!');
        let mut words = text.split_whitespace();
        let first = words.next()?;
        if words.next().is_some() {
            return None;
        }
        let list = if first == "info" { &data.hmp_info } else { &data.hmp_commands };
        let cmd = data.hmp_commands.iter().find(|c| c.names.iter().any(|n| n == first))?;
        if first == "info" {
            return (!list.is_empty()).then(|| "SUBCOMMAND (Tab lists them)".to_string());
        }
        return (!cmd.params.is_empty()).then(|| cmd.params.clone());
    }
    let schema = data.schema.as_ref()?;
    let command = line.split_whitespace().next()?;
    if !schema.has_command(command) {
        return None;
    }
    let given = parse_command(line, Some(schema)).map(|(_, a)| a).ok()?;
    let members = schema.arguments(command, &given);
    let missing: Vec<String> = members
        .iter()
        .filter(|m| !m.optional && !given.contains_key(&m.name))
        .map(|m| format!("{}=<{}>", m.name, schema.describe_type(&m.type_name)))
        .collect();
    let optional = members.iter().filter(|m| m.optional && !given.contains_key(&m.name)).count();
    let mut parts = missing;
    if optional > 0 {
        parts.push(format!("[{optional} optional]"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// A hint that is shown but never inserted.
pub struct ShownHint(String);

impl Hint for ShownHint {
    fn display(&self) -> &str {
        &self.0
    }

    fn completion(&self) -> Option<&str> {
        None
    }
}

impl Completer for MonitorHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(complete(&self.snapshot(), line, pos))
    }
}

impl Hinter for MonitorHelper {
    type Hint = ShownHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<ShownHint> {
        hint(&self.snapshot(), line, pos).map(ShownHint)
    }
}

impl Highlighter for MonitorHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

impl Validator for MonitorHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if json_incomplete(ctx.input()) {
            ValidationResult::Incomplete
        } else {
            ValidationResult::Valid(None)
        })
    }
}

impl Helper for MonitorHelper {}

/// True for input that starts a JSON object and stops before its end.
pub fn json_incomplete(input: &str) -> bool {
    let t = input.trim_start();
    t.starts_with('{') && matches!(serde_json::from_str::<Value>(t), Err(e) if e.is_eof())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command_line::LineMode;
    use crate::hmp_help::parse_help;
    use crate::schema::tests::sample;

    fn qmp_data() -> CompletionData {
        CompletionData {
            schema: Some(Arc::new(sample())),
            hmp_commands: Vec::new(),
            hmp_info: Vec::new(),
            mode: Some(LineMode { hmp: false }),
        }
    }

    fn replacements(data: &CompletionData, line: &str) -> (usize, Vec<String>) {
        let (start, c) = complete(data, line, line.len());
        (start, c.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn command_names() {
        let d = qmp_data();
        assert_eq!(replacements(&d, "query-st"), (0, vec!["query-status ".to_string()]));
        let (_, all) = replacements(&d, "");
        assert!(all.contains(&"block-stream ".to_string()));
        assert!(all.contains(&"wait-event ".to_string()));
    }

    #[test]
    fn argument_names_and_values() {
        let d = qmp_data();
        assert_eq!(replacements(&d, "block-stream dev"), (13, vec!["device=".to_string()]));
        assert_eq!(replacements(&d, "block-stream device=x on-error=st"), (31, vec!["stop ".to_string()]));
        assert_eq!(
            replacements(&d, "block-stream device=x auto-finalize="),
            (36, vec!["false ".to_string(), "true ".to_string()])
        );
        // Already given arguments are not offered again.
        let (_, names) = replacements(&d, "block-stream device=x ");
        assert!(!names.contains(&"device=".to_string()));
        assert!(names.contains(&"speed=".to_string()));
        // Union members follow the tag; nested members after a dot.
        let (_, names) = replacements(&d, "blockdev-add driver=qcow2 ");
        assert!(names.contains(&"file.".to_string()), "{names:?}");
        let (start, names) = replacements(&d, "blockdev-add driver=qcow2 file.driver=file file.fi");
        assert_eq!(names, ["filename="]);
        assert_eq!(start, "blockdev-add driver=qcow2 file.driver=file file.".len());
        assert_eq!(replacements(&d, "blockdev-add driver=qc"), (20, vec!["qcow2 ".to_string()]));
        assert_eq!(replacements(&d, "wait-event ST"), (11, vec!["STOP ".to_string()]));
    }

    #[test]
    fn hmp_completion() {
        let d = CompletionData {
            schema: None,
            hmp_commands: parse_help(
                "info [subcommand] -- show\nblock_stream device [speed [base]] -- copy\ncont|c  -- resume\n",
            ),
            hmp_info: parse_help("status  -- show status\nblock [-n] -- show block\n"),
            mode: Some(LineMode { hmp: true }),
        };
        assert_eq!(replacements(&d, "co"), (0, vec!["cont ".to_string()]));
        assert_eq!(replacements(&d, "info st"), (5, vec!["status ".to_string()]));
        assert_eq!(hint(&d, "block_stream ", 13).as_deref(), Some("device [speed [base]]"));
        let q = CompletionData { mode: Some(LineMode { hmp: false }), ..d };
        assert_eq!(replacements(&q, "!info st"), (6, vec!["status ".to_string()]));
    }

    #[test]
    fn hints_show_missing_arguments() {
        let d = qmp_data();
        assert_eq!(hint(&d, "block-stream ", 13).as_deref(), Some("device=<str> [4 optional]"));
        assert_eq!(hint(&d, "block-stream device=a ", 22).as_deref(), Some("[4 optional]"));
        assert_eq!(hint(&d, "query-status ", 13), None);
        assert_eq!(hint(&d, "block-stream", 12), None);
    }

    #[test]
    fn json_validation() {
        assert!(json_incomplete("{\"execute\": \"stop\","));
        assert!(!json_incomplete("{\"execute\": \"stop\"}"));
        assert!(!json_incomplete("{\"execute\" x"));
        assert!(!json_incomplete("stop"));
    }
}
