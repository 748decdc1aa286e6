//! The qmp-shell command syntax: `command key=value a.b=1 list=[1,2] obj={"x":1}`.
//!
//! Values are typed from the live schema when it is known (so `id=1` stays a string where the
//! argument is a string); without a schema, unquoted integers, `true`, `false` and `null` become
//! JSON scalars and anything starting with `[` or `{` is parsed as JSON. Quoted values are always
//! strings.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::schema::{Schema, ValueKind};

/// One word of the input, quotes removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    /// Some part of the word was quoted: its value is a string, whatever it looks like.
    pub quoted: bool,
    /// The value part starts with `[` or `{`: it is JSON.
    pub json: bool,
}

/// Splits a line into words. Quotes group, a backslash escapes the next character, and a value
/// that starts with `[` or `{` extends to its matching bracket (spaces and quotes inside kept).
pub fn split_words(line: &str) -> Result<Vec<Word>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = Word { text: String::new(), quoted: false, json: false };
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            chars.next();
            let value_start = word.text.is_empty() || word.text.ends_with('=') && !word.quoted;
            match c {
                '"' | '\'' => {
                    word.quoted = true;
                    let mut closed = false;
                    while let Some(q) = chars.next() {
                        if q == c {
                            closed = true;
                            break;
                        }
                        if q == '\\' && c == '"' {
                            if let Some(e) = chars.next() {
                                word.text.push(e);
                            }
                        } else {
                            word.text.push(q);
                        }
                    }
                    if !closed {
                        return Err(Error::Input(format!("Unclosed quote {c} in: {line}")));
                    }
                }
                '\\' => {
                    if let Some(e) = chars.next() {
                        word.text.push(e);
                    }
                }
                '[' | '{' if value_start && !word.json => {
                    word.json = true;
                    word.text.push(c);
                    take_json(&mut chars, &mut word.text, line)?;
                }
                c => word.text.push(c),
            }
        }
        words.push(word);
    }
}

/// Copies a bracketed JSON value (its opening bracket already taken) up to the matching close.
fn take_json(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    out: &mut String,
    line: &str,
) -> Result<()> {
    let mut depth = 1usize;
    let mut in_string: Option<char> = None;
    let mut escaped = false;
    for c in chars.by_ref() {
        out.push(c);
        if let Some(q) = in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                in_string = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => in_string = Some(c),
            '[' | '{' => depth += 1,
            ']' | '}' => {
                depth -= 1;
                if depth == 0 {
                    return Ok(());
                }
            }
            _ => {}
        }
    }
    Err(Error::Input(format!("Unbalanced brackets in: {line}")))
}

/// A parsed `key=value` argument.
#[derive(Debug, Clone, PartialEq)]
struct Assignment {
    path: Vec<String>,
    raw: Word,
}

/// Parses `command key=value ...` into the command name and its arguments object.
pub fn parse_command(line: &str, schema: Option<&Schema>) -> Result<(String, Map<String, Value>)> {
    let words = split_words(line)?;
    let Some((first, rest)) = words.split_first() else {
        return Err(Error::Input("Empty command".into()));
    };
    let command = first.text.clone();
    let mut assignments = Vec::new();
    for w in rest {
        let Some((key, value)) = w.text.split_once('=') else {
            return Err(Error::Input(format!("Expected key=value, got '{}' (try: help {command})", w.text)));
        };
        if key.is_empty() || key.split('.').any(str::is_empty) {
            return Err(Error::Input(format!("Invalid argument name in '{}'", w.text)));
        }
        assignments.push(Assignment {
            path: key.split('.').map(str::to_string).collect(),
            raw: Word { text: value.to_string(), quoted: w.quoted, json: w.json },
        });
    }
    let mut args = Map::new();
    for a in &assignments {
        let value = guess_value(&a.raw)?;
        insert_path(&mut args, &a.path, value)?;
    }
    if let Some(schema) = schema.filter(|s| s.has_command(&command)) {
        // Second pass: type every unquoted scalar as the schema says, now that union tags
        // (e.g. driver=qcow2) are known.
        let snapshot = args.clone();
        for a in assignments.iter().filter(|a| !a.raw.json && !a.raw.quoted) {
            let path: Vec<&str> = a.path.iter().map(String::as_str).collect();
            if let Some(t) = schema.type_at(&command, &path, &snapshot) {
                let typed = coerce(&a.raw.text, schema.kind(&t));
                set_path(&mut args, &a.path, typed);
            }
        }
    }
    Ok((command, args))
}

/// The value of a word when nothing is known about its type.
pub fn guess_value(word: &Word) -> Result<Value> {
    if word.json {
        return serde_json::from_str(&word.text)
            .map_err(|e| Error::Input(format!("Invalid JSON value {}: {e}", word.text)));
    }
    if word.quoted {
        return Ok(Value::String(word.text.clone()));
    }
    Ok(match word.text.as_str() {
        "true" => Value::Bool(true),
        "false" => Value::Bool(false),
        "null" => Value::Null,
        t => {
            if let Ok(i) = t.parse::<i64>() {
                Value::from(i)
            } else if let Ok(u) = t.parse::<u64>() {
                Value::from(u)
            } else {
                Value::String(t.to_string())
            }
        }
    })
}

fn coerce(text: &str, kind: ValueKind) -> Value {
    let word = Word { text: text.to_string(), quoted: false, json: false };
    let guessed = guess_value(&word).unwrap_or_else(|_| Value::String(text.to_string()));
    match kind {
        ValueKind::String => Value::String(text.to_string()),
        ValueKind::Number => match text.parse::<f64>() {
            Ok(f) if !guessed.is_number() => {
                serde_json::Number::from_f64(f).map(Value::Number).unwrap_or(guessed)
            }
            _ => guessed,
        },
        ValueKind::Boolean => match text {
            "on" | "yes" => Value::Bool(true),
            "off" | "no" => Value::Bool(false),
            _ => guessed,
        },
        ValueKind::Integer | ValueKind::Other => guessed,
    }
}

fn insert_path(args: &mut Map<String, Value>, path: &[String], value: Value) -> Result<()> {
    let Some((last, parents)) = path.split_last() else {
        return Ok(());
    };
    let mut cur = args;
    for (i, p) in parents.iter().enumerate() {
        let entry = cur.entry(p.clone()).or_insert_with(|| Value::Object(Map::new()));
        match entry {
            Value::Object(m) => cur = m,
            _ => {
                return Err(Error::Input(format!(
                    "Cannot use '{}' as both leaf and non-leaf key",
                    path[..=i].join(".")
                )));
            }
        }
    }
    match cur.get(last) {
        Some(Value::Object(_)) => {
            Err(Error::Input(format!("Cannot use '{}' as both leaf and non-leaf key", path.join("."))))
        }
        Some(_) => Err(Error::Input(format!("Cannot set '{}' multiple times", path.join(".")))),
        None => {
            cur.insert(last.clone(), value);
            Ok(())
        }
    }
}

fn set_path(args: &mut Map<String, Value>, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cur = args;
    for p in parents {
        match cur.get_mut(p) {
            Some(Value::Object(m)) => cur = m,
            _ => return,
        }
    }
    cur.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::sample;
    use serde_json::json;

    fn parse(line: &str) -> (String, Value) {
        let (c, a) = parse_command(line, None).unwrap();
        (c, Value::Object(a))
    }

    #[test]
    fn qmp_shell_syntax() {
        assert_eq!(parse("query-status"), ("query-status".into(), json!({})));
        assert_eq!(
            parse("block-stream device=drive0 speed=65536"),
            ("block-stream".into(), json!({"device": "drive0", "speed": 65536}))
        );
        assert_eq!(
            parse("x a.b=1 a.c=two flag=true n=null"),
            ("x".into(), json!({"a": {"b": 1, "c": "two"}, "flag": true, "n": null}))
        );
        assert_eq!(
            parse(r#"x list=[1, "a b", {"k": [2]}] obj={"q": "}"}"#),
            ("x".into(), json!({"list": [1, "a b", {"k": [2]}], "obj": {"q": "}"}}))
        );
        assert_eq!(
            parse(r#"x name="hello world" id='7' esc=a\ b"#),
            ("x".into(), json!({"name": "hello world", "id": "7", "esc": "a b"}))
        );
        assert_eq!(
            parse("x file=img[1].qcow2 big=18446744073709551615"),
            ("x".into(), json!({"file": "img[1].qcow2", "big": 18446744073709551615u64}))
        );
    }

    #[test]
    fn errors_are_reported() {
        for bad in [
            "x novalue",
            "x a=1 a=2",
            "x a=1 a.b=2",
            "x a.b=1 a=2",
            "x a=\"open",
            "x a=[1, 2",
            "x a={bad json}",
            "x .a=1",
            "x =1",
        ] {
            assert!(parse_command(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn schema_types_the_values() {
        let s = sample();
        let (_, a) = parse_command("block-stream device=0 job-id=true speed=10", Some(&s)).unwrap();
        assert_eq!(Value::Object(a), json!({"device": "0", "job-id": "true", "speed": 10}));
        let (_, a) = parse_command(
            "blockdev-add driver=qcow2 node-name=1 file.driver=file file.filename=123",
            Some(&s),
        )
        .unwrap();
        assert_eq!(
            Value::Object(a),
            json!({"driver": "qcow2", "node-name": "1", "file": {"driver": "file", "filename": "123"}})
        );
        let (_, a) = parse_command("block-stream device=d auto-finalize=off", Some(&s)).unwrap();
        assert_eq!(a["auto-finalize"], json!(false));
    }
}
