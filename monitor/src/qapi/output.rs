//! Return values as QEMU sends them: an optional member that is absent is left out, never sent as
//! `null` (unless its type is `null` or `any`). Applied to every command's return value from its
//! declared type, so a Rust `Option` field without `skip_serializing_if` cannot leak a `null`.

use serde_json::Value;

use super::schema::{Builtin, QType};

/// Removes `null`-valued optional members, recursively, following `ty`.
pub fn strip_absent(v: &mut Value, ty: QType) {
    match (ty, v) {
        (QType::Object(def), Value::Object(map)) => {
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
                let mty = (m.ty)();
                let keeps_null =
                    matches!(mty, QType::Builtin(Builtin::Null | Builtin::Any) | QType::Alternate(_));
                if m.optional && !keeps_null && map.get(m.name).is_some_and(Value::is_null) {
                    map.remove(m.name);
                } else if let Some(child) = map.get_mut(m.name) {
                    strip_absent(child, mty);
                }
            }
        }
        (QType::Array(elem), Value::Array(items)) => {
            let ety = elem();
            for item in items {
                strip_absent(item, ety);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qapi::Qapi;
    use serde::Serialize;
    use serde_json::json;

    #[derive(Serialize, Qapi)]
    struct Inner {
        a: Option<i64>,
        b: i64,
    }

    #[derive(Serialize, Qapi)]
    struct Outer {
        name: Option<String>,
        list: Vec<Inner>,
        any: Option<Value>,
    }

    #[test]
    fn absent_members_are_left_out() {
        let o =
            Outer { name: None, list: vec![Inner { a: None, b: 1 }, Inner { a: Some(2), b: 3 }], any: None };
        let mut v = serde_json::to_value(&o).unwrap();
        strip_absent(&mut v, Outer::qapi_type());
        assert_eq!(v, json!({"list": [{"b": 1}, {"a": 2, "b": 3}], "any": null}));
    }
}
