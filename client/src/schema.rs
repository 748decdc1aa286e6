//! The live QMP introspection (`query-qmp-schema`), reduced to what completion, hints, `help`
//! and argument typing need.
//!
//! Schema entries refer to each other by (often numeric) names: a command names its argument
//! object type, an object lists members with type names, and so on.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

/// One member of an object type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub type_name: String,
    pub optional: bool,
}

#[derive(Debug, Clone)]
enum TypeInfo {
    /// `str`, `int`, `bool`, ... with their JSON type (`string`, `int`, `boolean`, ...).
    Builtin(String),
    Enum(Vec<String>),
    Array(String),
    Object {
        members: Vec<Member>,
        tag: Option<String>,
        variants: Vec<(String, String)>,
    },
    Alternate(Vec<String>),
}

/// What JSON type a value at some argument position must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    String,
    Integer,
    Number,
    Boolean,
    /// Objects, arrays, alternates, `any` or an unknown position.
    Other,
}

#[derive(Debug, Clone)]
struct Command {
    arg_type: String,
    ret_type: String,
}

/// The parsed introspection data.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    types: HashMap<String, TypeInfo>,
    commands: BTreeMap<String, Command>,
    events: BTreeMap<String, String>,
}

impl Schema {
    /// Builds the model from `query-qmp-schema`'s return value. Entries of unknown shape are
    /// skipped, so a newer server's schema still works.
    pub fn from_value(value: &Value) -> Schema {
        let mut schema = Schema::default();
        let Some(entries) = value.as_array() else {
            return schema;
        };
        for entry in entries {
            let Some(name) = entry.get("name").and_then(Value::as_str) else {
                continue;
            };
            let field = |k: &str| entry.get(k).and_then(Value::as_str).map(str::to_string);
            match entry.get("meta-type").and_then(Value::as_str) {
                Some("command") => {
                    schema.commands.insert(
                        name.to_string(),
                        Command {
                            arg_type: field("arg-type").unwrap_or_default(),
                            ret_type: field("ret-type").unwrap_or_default(),
                        },
                    );
                }
                Some("event") => {
                    schema.events.insert(name.to_string(), field("arg-type").unwrap_or_default());
                }
                Some("builtin") => {
                    let json = field("json-type").unwrap_or_default();
                    schema.types.insert(name.to_string(), TypeInfo::Builtin(json));
                }
                Some("enum") => {
                    let values = string_list(entry.get("values"));
                    schema.types.insert(name.to_string(), TypeInfo::Enum(values));
                }
                Some("array") => {
                    let elem = field("element-type").unwrap_or_default();
                    schema.types.insert(name.to_string(), TypeInfo::Array(elem));
                }
                Some("object") => {
                    let members = entry
                        .get("members")
                        .and_then(Value::as_array)
                        .map(|ms| ms.iter().filter_map(parse_member).collect())
                        .unwrap_or_default();
                    let variants = entry
                        .get("variants")
                        .and_then(Value::as_array)
                        .map(|vs| {
                            vs.iter()
                                .filter_map(|v| {
                                    Some((
                                        v.get("case")?.as_str()?.to_string(),
                                        v.get("type")?.as_str()?.to_string(),
                                    ))
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    schema
                        .types
                        .insert(name.to_string(), TypeInfo::Object { members, tag: field("tag"), variants });
                }
                Some("alternate") => {
                    let alts = entry
                        .get("members")
                        .and_then(Value::as_array)
                        .map(|ms| {
                            ms.iter().filter_map(|m| Some(m.get("type")?.as_str()?.to_string())).collect()
                        })
                        .unwrap_or_default();
                    schema.types.insert(name.to_string(), TypeInfo::Alternate(alts));
                }
                _ => {}
            }
        }
        schema
    }

    /// A schema that knows only command names (from `query-commands`).
    pub fn from_command_names<I: IntoIterator<Item = String>>(names: I) -> Schema {
        let mut schema = Schema::default();
        for name in names {
            schema.commands.insert(name, Command { arg_type: String::new(), ret_type: String::new() });
        }
        schema
    }

    pub fn command_names(&self) -> impl Iterator<Item = &str> {
        self.commands.keys().map(String::as_str)
    }

    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        self.events.keys().map(String::as_str)
    }

    pub fn has_command(&self, name: &str) -> bool {
        self.commands.contains_key(name)
    }

    /// The argument members of `command`, including the members of the union variant selected
    /// by a tag already present in `given`.
    pub fn arguments(&self, command: &str, given: &Map<String, Value>) -> Vec<Member> {
        match self.commands.get(command) {
            Some(c) => self.members(&c.arg_type, given),
            None => Vec::new(),
        }
    }

    /// Members of an object type (through alternates that contain an object).
    pub fn members(&self, type_name: &str, given: &Map<String, Value>) -> Vec<Member> {
        match self.types.get(type_name) {
            Some(TypeInfo::Object { members, tag, variants }) => {
                let mut out = members.clone();
                if let Some(tag_value) = tag.as_ref().and_then(|t| given.get(t)).and_then(Value::as_str) {
                    for (case, vtype) in variants {
                        if case == tag_value {
                            out.extend(self.members(vtype, given));
                        }
                    }
                }
                out
            }
            Some(TypeInfo::Alternate(alts)) => alts
                .iter()
                .find(|a| matches!(self.types.get(*a), Some(TypeInfo::Object { .. })))
                .map(|a| self.members(a, given))
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The type name of the argument at `path` (`["a", "b"]` for `a.b=...`).
    pub fn type_at(&self, command: &str, path: &[&str], given: &Map<String, Value>) -> Option<String> {
        let mut type_name = self.commands.get(command)?.arg_type.clone();
        let mut context = given.clone();
        for key in path {
            let member = self.members(&type_name, &context).into_iter().find(|m| m.name == *key)?;
            type_name = member.type_name;
            context = context.get(*key).and_then(Value::as_object).cloned().unwrap_or_default();
        }
        Some(type_name)
    }

    /// The JSON type expected for values of `type_name`.
    pub fn kind(&self, type_name: &str) -> ValueKind {
        match self.types.get(type_name) {
            Some(TypeInfo::Builtin(json)) => match json.as_str() {
                "string" => ValueKind::String,
                "int" => ValueKind::Integer,
                "number" => ValueKind::Number,
                "boolean" => ValueKind::Boolean,
                _ => ValueKind::Other,
            },
            Some(TypeInfo::Enum(_)) => ValueKind::String,
            _ => ValueKind::Other,
        }
    }

    /// The values a member of `type_name` may take, when they form a closed set.
    pub fn value_choices(&self, type_name: &str) -> Vec<String> {
        match self.types.get(type_name) {
            Some(TypeInfo::Enum(values)) => values.clone(),
            Some(TypeInfo::Builtin(json)) if json == "boolean" => {
                vec!["true".into(), "false".into()]
            }
            Some(TypeInfo::Alternate(alts)) => alts.iter().flat_map(|a| self.value_choices(a)).collect(),
            _ => Vec::new(),
        }
    }

    /// Human-readable form of a type: `str`, `int`, `'a'|'b'`, `[str]`, `{...}`.
    pub fn describe_type(&self, type_name: &str) -> String {
        match self.types.get(type_name) {
            Some(TypeInfo::Builtin(_)) => type_name.to_string(),
            Some(TypeInfo::Enum(values)) => {
                if values.len() <= 6 {
                    values.join("|")
                } else {
                    format!("{}|...({} values)", values[..4].join("|"), values.len())
                }
            }
            Some(TypeInfo::Array(elem)) => format!("[{}]", self.describe_type(elem)),
            Some(TypeInfo::Object { .. }) => "{...}".to_string(),
            Some(TypeInfo::Alternate(alts)) => {
                alts.iter().map(|a| self.describe_type(a)).collect::<Vec<_>>().join(" or ")
            }
            None => type_name.to_string(),
        }
    }

    /// A multi-line description of a command's arguments, for `help COMMAND`.
    pub fn describe_command(&self, command: &str) -> Option<String> {
        let c = self.commands.get(command)?;
        let mut out = command.to_string();
        let args = self.arguments(command, &Map::new());
        if args.is_empty() {
            out.push_str(" (no arguments)\n");
        } else {
            out.push('\n');
            for m in &args {
                let opt = if m.optional { " (optional)" } else { "" };
                out.push_str(&format!("  {}={}{opt}\n", m.name, self.describe_type(&m.type_name)));
            }
            if let Some(TypeInfo::Object { tag: Some(tag), variants, .. }) = self.types.get(&c.arg_type)
                && !variants.is_empty()
            {
                out.push_str(&format!(
                    "  (more arguments depend on {tag}=...; press Tab after setting it)\n"
                ));
            }
        }
        if !c.ret_type.is_empty() && c.ret_type != "0" {
            out.push_str(&format!("  returns {}\n", self.describe_type(&c.ret_type)));
        }
        Some(out)
    }
}

fn parse_member(m: &Value) -> Option<Member> {
    Some(Member {
        name: m.get("name")?.as_str()?.to_string(),
        type_name: m.get("type")?.as_str()?.to_string(),
        optional: m.get("default").is_some(),
    })
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A small schema in QEMU's format (shapes copied from QEMU 7.2's introspection).
    pub fn sample() -> Schema {
        Schema::from_value(&json!([
            {"name": "query-status", "ret-type": "1", "meta-type": "command", "arg-type": "0"},
            {"name": "block-stream", "ret-type": "0", "meta-type": "command", "arg-type": "41"},
            {"name": "blockdev-add", "ret-type": "0", "meta-type": "command", "arg-type": "49"},
            {"name": "STOP", "meta-type": "event", "arg-type": "0"},
            {"name": "0", "members": [], "meta-type": "object"},
            {"name": "1", "members": [{"name": "running", "type": "bool"},
                {"name": "status", "type": "9"}], "meta-type": "object"},
            {"name": "9", "meta-type": "enum", "values": ["running", "paused"]},
            {"name": "41", "members": [
                {"name": "job-id", "default": null, "type": "str"},
                {"name": "device", "type": "str"},
                {"name": "speed", "default": null, "type": "int"},
                {"name": "on-error", "default": null, "type": "279"},
                {"name": "auto-finalize", "default": null, "type": "bool"}], "meta-type": "object"},
            {"name": "279", "meta-type": "enum", "values": ["report", "ignore", "enospc", "stop", "auto"]},
            {"name": "49", "tag": "driver", "variants": [{"case": "qcow2", "type": "316"},
                {"case": "file", "type": "301"}],
             "members": [{"name": "driver", "type": "291"},
                {"name": "node-name", "default": null, "type": "str"}], "meta-type": "object"},
            {"name": "291", "meta-type": "enum", "values": ["file", "qcow2", "raw"]},
            {"name": "316", "members": [{"name": "file", "type": "290"},
                {"name": "backing", "default": null, "type": "334"}], "meta-type": "object"},
            {"name": "301", "members": [{"name": "filename", "type": "str"}], "meta-type": "object"},
            {"name": "290", "members": [{"type": "str"}, {"type": "49"}], "meta-type": "alternate"},
            {"name": "334", "members": [{"type": "str"}, {"type": "null"}], "meta-type": "alternate"},
            {"name": "str", "json-type": "string", "meta-type": "builtin"},
            {"name": "int", "json-type": "int", "meta-type": "builtin"},
            {"name": "bool", "json-type": "boolean", "meta-type": "builtin"},
            {"name": "null", "json-type": "null", "meta-type": "builtin"}
        ]))
    }

    #[test]
    fn commands_and_members() {
        let s = sample();
        assert!(s.has_command("block-stream"));
        assert_eq!(s.event_names().collect::<Vec<_>>(), ["STOP"]);
        let names: Vec<String> =
            s.arguments("block-stream", &Map::new()).into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["job-id", "device", "speed", "on-error", "auto-finalize"]);
        assert_eq!(s.kind(&s.type_at("block-stream", &["speed"], &Map::new()).unwrap()), ValueKind::Integer);
        assert_eq!(
            s.value_choices(&s.type_at("block-stream", &["on-error"], &Map::new()).unwrap()),
            ["report", "ignore", "enospc", "stop", "auto"]
        );
    }

    #[test]
    fn union_variants_follow_the_tag() {
        let s = sample();
        let none = s.arguments("blockdev-add", &Map::new());
        assert_eq!(none.len(), 2);
        let mut given = Map::new();
        given.insert("driver".into(), json!("qcow2"));
        let names: Vec<String> = s.arguments("blockdev-add", &given).into_iter().map(|m| m.name).collect();
        assert_eq!(names, ["driver", "node-name", "file", "backing"]);
        // file is str-or-BlockdevOptions: nested members come from the object branch.
        let mut inner = Map::new();
        inner.insert("driver".into(), json!("file"));
        given.insert("file".into(), Value::Object(inner));
        let t = s.type_at("blockdev-add", &["file", "filename"], &given).unwrap();
        assert_eq!(s.kind(&t), ValueKind::String);
    }

    #[test]
    fn describes_commands() {
        let s = sample();
        let d = s.describe_command("block-stream").unwrap();
        assert!(d.contains("  device=str\n"), "{d}");
        assert!(d.contains("  speed=int (optional)\n"), "{d}");
        assert!(s.describe_command("nope").is_none());
        assert!(s.describe_command("blockdev-add").unwrap().contains("driver=..."));
    }

    #[test]
    fn garbage_schema_is_empty_not_a_panic() {
        let s = Schema::from_value(&json!({"not": "a list"}));
        assert_eq!(s.command_names().count(), 0);
        let s = Schema::from_value(&json!([1, "x", {"name": 3}, {"name": "c", "meta-type": "command"}]));
        assert!(s.has_command("c"));
        assert!(s.arguments("c", &Map::new()).is_empty());
    }
}
