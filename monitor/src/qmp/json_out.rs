//! PLACEHOLDER until the `json` branch lands (ASCII-only encoder).
use serde_json::Value;

pub fn to_qmp_string(v: &Value) -> String {
    let s = serde_json::to_string(v).unwrap_or_default();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for u in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{:04X}", u));
            }
        }
    }
    out
}

pub fn to_qmp_line(v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(to_qmp_string(v).as_bytes());
    out.extend_from_slice(b"\r\n");
}
