//! `query-qmp-schema`: the registry's commands and events, and every type they reach, as QEMU's
//! SchemaInfo list. Like QEMU, type names are masked: builtins keep their names (`str`, `int`,
//! ...), arrays are `[elem]`, everything else gets a number in order of first use. Commands
//! without arguments or return data point to an empty object type.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::schema::{Builtin, Empty, QType, Qapi};

/// A command as introspection shows it.
pub struct CommandIntro<'a> {
    pub name: &'a str,
    pub args: QType,
    pub ret: QType,
    pub allow_oob: bool,
    pub features: &'a [&'a str],
}

/// An event as introspection shows it.
pub struct EventIntro<'a> {
    pub name: &'a str,
    pub data: QType,
}

/// Builds the SchemaInfo list.
pub fn schema_info<'a>(
    commands: impl IntoIterator<Item = CommandIntro<'a>>,
    events: impl IntoIterator<Item = EventIntro<'a>>,
) -> Value {
    let mut b = Builder::default();
    // Name "0" is the empty object, as in QEMU.
    b.name_of(Empty::qapi_type());
    for c in commands {
        let arg = b.name_of(c.args);
        let ret = b.name_of(c.ret);
        let mut e = Map::new();
        e.insert("name".into(), c.name.into());
        e.insert("meta-type".into(), "command".into());
        e.insert("arg-type".into(), arg.into());
        e.insert("ret-type".into(), ret.into());
        if c.allow_oob {
            e.insert("allow-oob".into(), true.into());
        }
        if !c.features.is_empty() {
            e.insert("features".into(), json!(c.features));
        }
        b.out.push(Value::Object(e));
        b.flush_pending();
    }
    for ev in events {
        let arg = b.name_of(ev.data);
        b.out.push(json!({"name": ev.name, "meta-type": "event", "arg-type": arg}));
        b.flush_pending();
    }
    Value::Array(b.out)
}

#[derive(Default)]
struct Builder {
    names: HashMap<usize, String>,
    arrays: HashMap<String, ()>,
    builtins: HashMap<&'static str, ()>,
    pending: Vec<(String, QType)>,
    out: Vec<Value>,
    next: usize,
}

impl Builder {
    /// The masked name of a type; schedules its definition when first seen.
    fn name_of(&mut self, ty: QType) -> String {
        match ty {
            QType::Builtin(b) => {
                let (name, json_type) = match b {
                    Builtin::Str => ("str", "string"),
                    Builtin::Int(_) => ("int", "int"),
                    Builtin::Bool => ("bool", "boolean"),
                    Builtin::Number => ("number", "number"),
                    Builtin::Any => ("any", "value"),
                    Builtin::Null => ("null", "null"),
                };
                if self.builtins.insert(name, ()).is_none() {
                    self.pending.push((name.to_string(), ty));
                    let _ = json_type;
                }
                name.to_string()
            }
            QType::Array(elem) => {
                let name = format!("[{}]", self.name_of(elem()));
                if self.arrays.insert(name.clone(), ()).is_none() {
                    self.pending.push((name.clone(), ty));
                }
                name
            }
            QType::Enum(_) | QType::Object(_) | QType::Alternate(_) => {
                let id = ty.identity();
                if let Some(n) = self.names.get(&id) {
                    return n.clone();
                }
                let name = self.next.to_string();
                self.next += 1;
                self.names.insert(id, name.clone());
                self.pending.push((name.clone(), ty));
                name
            }
        }
    }

    /// Emits the definitions of every type scheduled so far (and of the types they reach).
    fn flush_pending(&mut self) {
        while !self.pending.is_empty() {
            let batch = std::mem::take(&mut self.pending);
            for (name, ty) in batch {
                let entry = self.define(&name, ty);
                self.out.push(entry);
            }
        }
    }

    fn define(&mut self, name: &str, ty: QType) -> Value {
        match ty {
            QType::Builtin(b) => {
                let json_type = match b {
                    Builtin::Str => "string",
                    Builtin::Int(_) => "int",
                    Builtin::Bool => "boolean",
                    Builtin::Number => "number",
                    Builtin::Any => "value",
                    Builtin::Null => "null",
                };
                json!({"name": name, "meta-type": "builtin", "json-type": json_type})
            }
            QType::Array(elem) => {
                let e = self.name_of(elem());
                json!({"name": name, "meta-type": "array", "element-type": e})
            }
            QType::Enum(def) => {
                let members: Vec<Value> = def.values.iter().map(|v| json!({"name": v})).collect();
                json!({"name": name, "meta-type": "enum", "members": members, "values": def.values})
            }
            QType::Alternate(def) => {
                let members: Vec<Value> =
                    def.choices.iter().map(|c| json!({"type": self.name_of(c())})).collect();
                json!({"name": name, "meta-type": "alternate", "members": members})
            }
            QType::Object(def) => {
                let mut all = Vec::new();
                def.all_members(&mut all);
                let mut members = Vec::new();
                for m in all {
                    let mut e = Map::new();
                    e.insert("name".into(), m.name.into());
                    if m.optional {
                        e.insert("default".into(), Value::Null);
                    }
                    e.insert("type".into(), self.name_of((m.ty)()).into());
                    if !m.features.is_empty() {
                        e.insert("features".into(), json!(m.features));
                    }
                    members.push(Value::Object(e));
                }
                let mut e = Map::new();
                e.insert("name".into(), name.into());
                e.insert("meta-type".into(), "object".into());
                e.insert("members".into(), Value::Array(members));
                if let Some(u) = &def.union {
                    e.insert("tag".into(), u.tag.into());
                    let variants: Vec<Value> = u
                        .variants
                        .iter()
                        .map(|(case, t)| json!({"case": case, "type": self.name_of(t())}))
                        .collect();
                    e.insert("variants".into(), Value::Array(variants));
                }
                Value::Object(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qapi::Qapi;
    use serde::Serialize;

    #[derive(Serialize, Qapi)]
    #[serde(rename_all = "kebab-case")]
    #[allow(dead_code)]
    enum RunState {
        Running,
        Paused,
    }

    #[derive(Serialize, Qapi)]
    #[allow(dead_code)]
    struct StatusInfo {
        running: bool,
        status: RunState,
    }

    #[test]
    fn shapes_follow_qemu() {
        let v = schema_info(
            [CommandIntro {
                name: "query-status",
                args: Empty::qapi_type(),
                ret: StatusInfo::qapi_type(),
                allow_oob: false,
                features: &[],
            }],
            [EventIntro { name: "STOP", data: Empty::qapi_type() }],
        );
        let list = v.as_array().unwrap();
        let by_name = |n: &str| list.iter().find(|e| e["name"] == n).cloned().unwrap();
        let cmd = by_name("query-status");
        assert_eq!(cmd["arg-type"], "0");
        assert_eq!(by_name("0"), json!({"name": "0", "meta-type": "object", "members": []}));
        let ret = by_name(cmd["ret-type"].as_str().unwrap());
        assert_eq!(ret["members"][0], json!({"name": "running", "type": "bool"}));
        let status_ty = by_name(ret["members"][1]["type"].as_str().unwrap());
        assert_eq!(status_ty["values"], json!(["running", "paused"]));
        assert_eq!(by_name("bool")["json-type"], "boolean");
        assert_eq!(by_name("STOP")["arg-type"], "0");
        // every referenced name is defined exactly once
        let names: Vec<&str> = list.iter().map(|e| e["name"].as_str().unwrap()).collect();
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(names.len(), dedup.len());
    }
}
