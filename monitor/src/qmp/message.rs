//! The request envelope: `{"execute" | "exec-oob": name, "arguments": {...}, "id": any}`.
//!
//! Checked in QEMU's order and with its texts (QMP.md §4). Once the input is known to be an object,
//! its `id` (any JSON value, `null` included) is kept so that even envelope errors echo it.

use serde_json::{Map, Value};

use crate::error::QmpError;

/// A well-formed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub command: String,
    /// `exec-oob` rather than `execute`.
    pub oob: bool,
    pub arguments: Map<String, Value>,
    pub id: Option<Value>,
}

/// An envelope error, with the `id` if the input was an object that had one.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvelopeError {
    pub error: QmpError,
    pub id: Option<Value>,
}

/// Checks the envelope. `oob_enabled`: whether this session negotiated the `oob` capability.
pub fn parse_request(input: Value, oob_enabled: bool) -> Result<Request, EnvelopeError> {
    let Value::Object(mut obj) = input else {
        return Err(EnvelopeError { error: QmpError::generic("QMP input must be a JSON object"), id: None });
    };
    let id = obj.remove("id");
    let fail = |desc: String, id: Option<Value>| Err(EnvelopeError { error: QmpError::generic(desc), id });
    let mut execute = None;
    let mut exec_oob = None;
    let mut arguments = None;
    for (key, value) in obj {
        match key.as_str() {
            "execute" | "exec-oob" => {
                if key == "exec-oob" && !oob_enabled {
                    return fail("QMP input member 'exec-oob' is unexpected".into(), id);
                }
                let Value::String(name) = value else {
                    return fail(format!("QMP input member '{key}' must be a string"), id);
                };
                if key == "execute" { execute = Some(name) } else { exec_oob = Some(name) }
            }
            "arguments" => {
                let Value::Object(args) = value else {
                    return fail("QMP input member 'arguments' must be an object".into(), id);
                };
                arguments = Some(args);
            }
            _ => return fail(format!("QMP input member '{key}' is unexpected"), id),
        }
    }
    let (command, oob) = match (execute, exec_oob) {
        (Some(_), Some(_)) => return fail("QMP input member 'execute' clashes with 'exec-oob'".into(), id),
        (Some(c), None) => (c, false),
        (None, Some(c)) => (c, true),
        (None, None) => return fail("QMP input lacks member 'execute'".into(), id),
    };
    Ok(Request { command, oob, arguments: arguments.unwrap_or_default(), id })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn desc(v: Value, oob: bool) -> (String, Option<Value>) {
        let e = parse_request(v, oob).unwrap_err();
        (e.error.desc, e.id)
    }

    #[test]
    fn envelope_errors_match_qemu() {
        assert_eq!(desc(json!([1, 2]), false), ("QMP input must be a JSON object".into(), None));
        assert_eq!(desc(json!(null), false).0, "QMP input must be a JSON object");
        assert_eq!(
            desc(json!({"execute": 1, "id": 7}), false),
            ("QMP input member 'execute' must be a string".into(), Some(json!(7)))
        );
        assert_eq!(
            desc(json!({"exec-oob": "x", "id": "a"}), false).0,
            "QMP input member 'exec-oob' is unexpected"
        );
        assert_eq!(
            desc(json!({"execute": "x", "exec-oob": "y", "id": 1}), true).0,
            "QMP input member 'execute' clashes with 'exec-oob'"
        );
        assert_eq!(desc(json!({"execute": "x", "foo": 1}), false).0, "QMP input member 'foo' is unexpected");
        assert_eq!(
            desc(json!({"execute": "x", "control": 1}), false).0,
            "QMP input member 'control' is unexpected"
        );
        assert_eq!(
            desc(json!({"execute": "x", "arguments": [1]}), false).0,
            "QMP input member 'arguments' must be an object"
        );
        assert_eq!(
            desc(json!({"id": null}), false),
            ("QMP input lacks member 'execute'".into(), Some(Value::Null))
        );
        assert_eq!(desc(json!({}), false), ("QMP input lacks member 'execute'".into(), None));
    }

    #[test]
    fn good_requests() {
        let r = parse_request(json!({"execute": "stop", "id": {"a": [1]}}), false).unwrap();
        assert_eq!(r.command, "stop");
        assert!(!r.oob);
        assert_eq!(r.id, Some(json!({"a": [1]})));
        let r = parse_request(json!({"exec-oob": "yank", "arguments": {"instances": []}}), true).unwrap();
        assert!(r.oob);
        assert_eq!(r.arguments["instances"], json!([]));
    }
}
