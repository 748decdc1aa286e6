//! Argument checking against a QAPI type, in the order QEMU's input visitor checks and with its
//! texts: members in declaration order (bases first), each one missing / of the wrong type / out of
//! range, then the first member nobody declared. Nothing is executed before this passes.

use serde_json::{Map, Value};

use super::schema::{Builtin, IntKind, ObjectDef, QType};
use crate::error::QmpError;

/// Checks a command's `arguments` object against the command's argument type.
pub fn check_arguments(args: &Map<String, Value>, ty: QType) -> Result<(), QmpError> {
    match ty {
        QType::Object(def) => check_object(args, def, ""),
        // A command whose arguments are an alternate or a builtin does not exist in QAPI.
        _ => Ok(()),
    }
}

/// Checks any value against a type; `name` is the member's full name (`a.b`, `a[0]`).
pub fn check_value(v: &Value, ty: QType, name: &str) -> Result<(), QmpError> {
    match ty {
        QType::Builtin(b) => check_builtin(v, b, name),
        QType::Enum(def) => {
            let s = v.as_str().ok_or_else(|| QmpError::invalid_type(name, "string"))?;
            if def.values.contains(&s) {
                Ok(())
            } else {
                Err(QmpError::bad_enum_value(enum_error_name(name), s))
            }
        }
        QType::Array(elem) => {
            let items = v.as_array().ok_or_else(|| QmpError::invalid_type(name, "array"))?;
            let elem = elem();
            for (i, item) in items.iter().enumerate() {
                check_value(item, elem, &format!("{name}[{i}]"))?;
            }
            Ok(())
        }
        QType::Object(def) => {
            let map = v.as_object().ok_or_else(|| QmpError::invalid_type(name, "object"))?;
            check_object(map, def, name)
        }
        QType::Alternate(def) => {
            let chosen = def.choices.iter().map(|c| c()).find(|c| json_kind_matches(v, *c));
            match chosen {
                Some(c) => check_value(v, c, name),
                None => Err(QmpError::invalid_type(name, def.name)),
            }
        }
    }
}

fn check_builtin(v: &Value, b: Builtin, name: &str) -> Result<(), QmpError> {
    let ok = match b {
        Builtin::Str => v.is_string(),
        Builtin::Bool => v.is_boolean(),
        Builtin::Number => v.is_number(),
        Builtin::Any => true,
        Builtin::Null => v.is_null(),
        Builtin::Int(kind) => return check_int(v, kind, name),
    };
    if ok {
        return Ok(());
    }
    let expected = match b {
        Builtin::Str => "string",
        Builtin::Bool => "boolean",
        Builtin::Number => "number",
        Builtin::Null => "null",
        Builtin::Any | Builtin::Int(_) => "value",
    };
    Err(QmpError::invalid_type(name, expected))
}

fn check_int(v: &Value, kind: IntKind, name: &str) -> Result<(), QmpError> {
    let range = |lo: i64, hi: i64, label: &str| -> Result<(), QmpError> {
        match v.as_i64() {
            None => Err(QmpError::invalid_type(name, "integer")),
            Some(n) if n < lo || n > hi => Err(QmpError::invalid_value(name, label)),
            Some(_) => Ok(()),
        }
    };
    match kind {
        IntKind::I64 => v.as_i64().map(|_| ()).ok_or_else(|| QmpError::invalid_type(name, "integer")),
        // QEMU accepts negative numbers here and wraps them; we reject them (a negative byte count or
        // uint64 is always a client bug).
        IntKind::U64 | IntKind::Size => {
            v.as_u64().map(|_| ()).ok_or_else(|| QmpError::invalid_value(name, "uint64"))
        }
        IntKind::I32 => range(i32::MIN.into(), i32::MAX.into(), "int32_t"),
        IntKind::U32 => range(0, u32::MAX.into(), "uint32_t"),
        IntKind::U16 => range(0, u16::MAX.into(), "uint16_t"),
        IntKind::U8 => range(0, u8::MAX.into(), "uint8_t"),
    }
}

/// Whether an alternate may pick `ty` for this JSON value (QEMU decides by the JSON type alone).
fn json_kind_matches(v: &Value, ty: QType) -> bool {
    match ty {
        QType::Builtin(Builtin::Str) | QType::Enum(_) => v.is_string(),
        QType::Builtin(Builtin::Bool) => v.is_boolean(),
        QType::Builtin(Builtin::Number) | QType::Builtin(Builtin::Int(_)) => v.is_number(),
        QType::Builtin(Builtin::Null) => v.is_null(),
        QType::Builtin(Builtin::Any) => true,
        QType::Array(_) => v.is_array(),
        QType::Object(_) => v.is_object(),
        QType::Alternate(_) => false,
    }
}

/// QEMU names an enum member by its own name, not its path (`'driver'` for `file.driver`); for a
/// list element, where QEMU prints `'null'`, we keep the path (`'enable[0]'`).
fn enum_error_name(full: &str) -> &str {
    if full.ends_with(']') {
        return full;
    }
    full.rsplit('.').next().unwrap_or(full)
}

fn full_name(prefix: &str, member: &str) -> String {
    if prefix.is_empty() { member.to_string() } else { format!("{prefix}.{member}") }
}

fn check_object(map: &Map<String, Value>, def: &'static ObjectDef, prefix: &str) -> Result<(), QmpError> {
    let mut members = Vec::new();
    def.all_members(&mut members);
    check_members(map, &members, prefix)?;
    if let Some(union) = &def.union {
        // The tag member was checked above (it is an enum member of the object).
        let tag = map.get(union.tag).and_then(Value::as_str).unwrap_or_default();
        let variant = union.variants.iter().find(|(case, _)| *case == tag).map(|(_, t)| t());
        if let Some(QType::Object(vdef)) = variant {
            let mut vmembers = Vec::new();
            vdef.all_members(&mut vmembers);
            // Members the variant repeats from the base (serde needs them there) are checked once.
            vmembers.retain(|m| !members.iter().any(|b| b.name == m.name));
            check_members(map, &vmembers, prefix)?;
            members.extend(vmembers);
        }
    }
    if let Some(key) = map.keys().find(|k| !members.iter().any(|m| m.name == k.as_str())) {
        return Err(QmpError::unexpected_parameter(&full_name(prefix, key)));
    }
    Ok(())
}

fn check_members(
    map: &Map<String, Value>,
    members: &[&'static super::schema::Member],
    prefix: &str,
) -> Result<(), QmpError> {
    for m in members {
        match map.get(m.name) {
            None if m.optional => {}
            None => return Err(QmpError::missing_parameter(&full_name(prefix, m.name))),
            Some(v) => check_value(v, (m.ty)(), &full_name(prefix, m.name))?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qapi::Qapi;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Deserialize, Qapi)]
    #[serde(rename_all = "kebab-case")]
    #[allow(dead_code)]
    enum OnError {
        Report,
        Ignore,
    }

    #[derive(Deserialize, Qapi)]
    #[allow(dead_code)]
    struct Fwd {
        str: String,
    }

    #[derive(Deserialize, Qapi)]
    #[allow(dead_code)]
    struct Args {
        device: String,
        #[serde(rename = "on-error")]
        on_error: Option<OnError>,
        speed: Option<i64>,
        size: Option<u64>,
        hostfwd: Option<Vec<Fwd>>,
        enable: Option<bool>,
    }

    fn check(v: Value) -> Result<(), String> {
        check_arguments(v.as_object().unwrap(), Args::qapi_type()).map_err(|e| e.desc)
    }

    #[test]
    fn texts_match_qemu() {
        assert_eq!(check(json!({})), Err("Parameter 'device' is missing".into()));
        assert_eq!(
            check(json!({"device": 1})),
            Err("Invalid parameter type for 'device', expected: string".into())
        );
        assert_eq!(
            check(json!({"device": "d", "speed": 1.5})),
            Err("Invalid parameter type for 'speed', expected: integer".into())
        );
        assert_eq!(
            check(json!({"device": "d", "speed": 18446744073709551615u64})),
            Err("Invalid parameter type for 'speed', expected: integer".into())
        );
        assert_eq!(check(json!({"device": "d", "size": -1})), Err("Parameter 'size' expects uint64".into()));
        assert_eq!(
            check(json!({"device": "d", "on-error": "bogus"})),
            Err("Parameter 'on-error' does not accept value 'bogus'".into())
        );
        assert_eq!(
            check(json!({"device": "d", "hostfwd": ["tcp::1-:2"]})),
            Err("Invalid parameter type for 'hostfwd[0]', expected: object".into())
        );
        assert_eq!(
            check(json!({"device": "d", "hostfwd": [{"str": "x", "bogus": 1}]})),
            Err("Parameter 'hostfwd[0].bogus' is unexpected".into())
        );
        assert_eq!(check(json!({"device": "d", "bogus": 1})), Err("Parameter 'bogus' is unexpected".into()));
        assert_eq!(
            check(json!({"device": "d", "enable": null})),
            Err("Invalid parameter type for 'enable', expected: boolean".into())
        );
        assert_eq!(check(json!({"device": "d", "on-error": "ignore", "size": 5})), Ok(()));
    }

    #[test]
    fn enum_errors_name_the_member_as_qemu() {
        assert_eq!(enum_error_name("file.driver"), "driver");
        assert_eq!(enum_error_name("instances[0].type"), "type");
        assert_eq!(enum_error_name("enable[0]"), "enable[0]");
        assert_eq!(enum_error_name("mode"), "mode");
    }

    #[test]
    fn declaration_order_before_unexpected() {
        // A missing required member is reported before an unknown one, as QEMU does.
        assert_eq!(check(json!({"bogus": 1})), Err("Parameter 'device' is missing".into()));
    }
}
