//! `-blockdev`: QEMU's two spellings turned into the [`BlockdevOptions`] `blockdev-add` takes.
//!
//! - JSON: `-blockdev '{"driver": "qcow2", "node-name": "top", "file": {...}}'`;
//! - dotted keys: `-blockdev driver=qcow2,node-name=top,file.driver=file,file.filename=/x`. Every
//!   value is a string there; the schema says what each member is, so `read-only=on` becomes a
//!   boolean and `backing=` (empty) or `backing=null` becomes `null`, as QEMU's keyval visitor
//!   does.
//!
//! Both go through the same argument check as QMP, with QEMU's texts.

use monitor::block::types::BlockdevOptions;
use monitor::qapi::check::check_value;
use monitor::qapi::{Builtin, QType, Qapi};
use serde_json::{Map, Value};

use crate::cli::keyval::KeyVal;

/// Parses one `-blockdev` argument.
pub fn parse_blockdev(arg: &str) -> Result<BlockdevOptions, String> {
    let mut v = if arg.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(arg).map_err(|e| format!("JSON parse error, {e}"))?
    } else {
        let mut v = dotted_to_tree(arg)?;
        coerce(&mut v, BlockdevOptions::qapi_type());
        v
    };
    if !v.is_object() {
        return Err("Invalid parameter type, expected: object".into());
    }
    check_value(&v, BlockdevOptions::qapi_type(), "").map_err(|e| e.desc)?;
    let v = std::mem::take(&mut v);
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// `a=1,b.c=2` → `{"a": "1", "b": {"c": "2"}}`.
fn dotted_to_tree(arg: &str) -> Result<Value, String> {
    let mut root = Map::new();
    for (key, value) in KeyVal::parse(arg, None).items {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(format!("Invalid parameter '{key}'"));
        }
        let mut cur = &mut root;
        for (i, p) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                if cur.get(*p).is_some_and(Value::is_object) {
                    return Err(format!("Parameter '{key}' used inconsistently"));
                }
                cur.insert(p.to_string(), Value::String(value.clone()));
            } else {
                let next = cur.entry(p.to_string()).or_insert_with(|| Value::Object(Map::new()));
                match next {
                    Value::Object(m) => cur = m,
                    _ => return Err(format!("Parameter '{}' used inconsistently", parts[..=i].join("."))),
                }
            }
        }
    }
    Ok(Value::Object(root))
}

/// Turns the strings of a dotted-key tree into the types the schema asks for.
fn coerce(v: &mut Value, ty: QType) {
    match ty {
        QType::Builtin(b) => {
            let Value::String(s) = v else { return };
            let new = match b {
                Builtin::Bool => match s.as_str() {
                    "on" | "yes" | "true" | "y" => Some(Value::Bool(true)),
                    "off" | "no" | "false" | "n" => Some(Value::Bool(false)),
                    _ => None,
                },
                Builtin::Int(_) => {
                    s.parse::<i64>().ok().map(Value::from).or_else(|| s.parse::<u64>().ok().map(Value::from))
                }
                Builtin::Number => {
                    s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number)
                }
                Builtin::Null if s.is_empty() || s == "null" => Some(Value::Null),
                _ => None,
            };
            if let Some(n) = new {
                *v = n;
            }
        }
        QType::Object(def) => {
            let Value::Object(map) = v else { return };
            let mut members = Vec::new();
            def.all_members(&mut members);
            if let Some(u) = &def.union {
                let tag = map.get(u.tag).and_then(Value::as_str).unwrap_or_default().to_string();
                if let Some(QType::Object(vdef)) =
                    u.variants.iter().find(|(c, _)| *c == tag).map(|(_, t)| t())
                {
                    vdef.all_members(&mut members);
                }
            }
            for m in members {
                if let Some(child) = map.get_mut(m.name) {
                    coerce(child, (m.ty)());
                }
            }
        }
        QType::Alternate(def) => {
            let choices: Vec<QType> = def.choices.iter().map(|c| c()).collect();
            match v {
                Value::Object(_) => {
                    if let Some(c) = choices.iter().find(|c| matches!(c, QType::Object(_))) {
                        coerce(v, *c);
                    }
                }
                Value::String(s)
                    if (s.is_empty() || s == "null")
                        && choices.iter().any(|c| matches!(c, QType::Builtin(Builtin::Null))) =>
                {
                    *v = Value::Null;
                }
                _ => {}
            }
        }
        QType::Enum(_) | QType::Array(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monitor::block::types::{BlockdevRef, BlockdevRefOrNull};

    #[test]
    fn dotted_keys_become_typed_options() {
        let o = parse_blockdev(
            "driver=qcow2,node-name=top,read-only=on,file.driver=file,file.filename=/a,,b,backing=",
        )
        .unwrap();
        let BlockdevOptions::Qcow2(q) = o else { panic!("qcow2 expected") };
        assert_eq!(q.base.read_only, Some(true));
        assert!(matches!(q.backing, Some(BlockdevRefOrNull::Null(()))));
        let BlockdevRef::Definition(f) = q.file else { panic!("nested file expected") };
        let BlockdevOptions::File(f) = *f else { panic!("file expected") };
        assert_eq!(f.filename, "/a,b");
        let o = parse_blockdev("driver=raw,node-name=r,file=f0").unwrap();
        assert!(
            matches!(o, BlockdevOptions::Raw(ref r) if matches!(r.file, BlockdevRef::Reference(ref s) if s == "f0"))
        );
    }

    #[test]
    fn json_form_and_errors() {
        let o = parse_blockdev(r#"{"driver": "file", "node-name": "f", "filename": "/x"}"#).unwrap();
        assert!(matches!(o, BlockdevOptions::File(_)));
        assert_eq!(
            parse_blockdev("driver=bogus,node-name=x").unwrap_err(),
            "Parameter 'driver' does not accept value 'bogus'"
        );
        assert_eq!(
            parse_blockdev("driver=file,node-name=x,filename=/a,read-only=maybe").unwrap_err(),
            "Invalid parameter type for 'read-only', expected: boolean"
        );
        assert_eq!(parse_blockdev("driver=file,node-name=x").unwrap_err(), "Parameter 'filename' is missing");
        assert_eq!(
            parse_blockdev("driver=qcow2,node-name=t,file.driver=file,file.bogus=1,file.filename=/a")
                .unwrap_err(),
            "Parameter 'file.bogus' is unexpected"
        );
    }
}
