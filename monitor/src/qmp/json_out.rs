//! Encoder for server → client QMP messages.
//!
//! QEMU writes every message as one line of compact JSON terminated by `\r\n`, always with double
//! quotes and in pure ASCII: every character outside `0x20..=0x7E` is written as `\uXXXX` with
//! upper-case hex (a surrogate pair above the BMP), except the short escapes `\b \f \n \r \t`
//! (qobject/json-writer.c). Keys keep the order of the [`Value`] (the workspace builds serde_json
//! with `preserve_order`).
//!
//! The encoder is a custom [`serde_json::ser::Formatter`]: serde_json walks the value and formats
//! numbers without allocating, and this formatter only changes how string contents are escaped.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// Appends `v` as one compact, ASCII-only JSON line terminated by `\r\n`.
pub fn to_qmp_line(v: &Value, out: &mut Vec<u8>) {
    write_compact(v, out);
    out.extend_from_slice(b"\r\n");
}

/// `v` as compact, ASCII-only JSON without the line terminator.
pub fn to_qmp_string(v: &Value) -> String {
    let mut out = Vec::new();
    write_compact(v, &mut out);
    // The formatter only ever writes ASCII.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn write_compact(v: &Value, out: &mut Vec<u8>) {
    let start = out.len();
    let mut ser = Serializer::with_formatter(&mut *out, AsciiFormatter);
    if v.serialize(&mut ser).is_err() {
        // Unreachable: a `Value` always serialises (its keys are strings, its numbers finite)
        // and writing into a `Vec` cannot fail. Never leave half a message behind.
        out.truncate(start);
        out.extend_from_slice(b"null");
    }
}

/// Compact output with QEMU's escaping rules.
struct AsciiFormatter;

impl Formatter for AsciiFormatter {
    fn write_string_fragment<W>(&mut self, w: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + Write,
    {
        // serde_json hands over runs without `"`, `\` or control characters; anything from DEL
        // (0x7F) up still has to become `\uXXXX`.
        let bytes = fragment.as_bytes();
        let mut pos = 0;
        while pos < bytes.len() {
            let run_end = bytes[pos..].iter().position(|&b| b >= 0x7F).map_or(bytes.len(), |p| pos + p);
            w.write_all(&bytes[pos..run_end])?;
            if run_end == bytes.len() {
                break;
            }
            // `run_end` is a char boundary: it holds DEL or the lead byte of a sequence.
            let Some(ch) = fragment[run_end..].chars().next() else {
                break;
            };
            write_u_escape(w, ch)?;
            pos = run_end + ch.len_utf8();
        }
        Ok(())
    }

    fn write_char_escape<W>(&mut self, w: &mut W, escape: CharEscape) -> io::Result<()>
    where
        W: ?Sized + Write,
    {
        let short: &[u8] = match escape {
            CharEscape::Quote => b"\\\"",
            CharEscape::ReverseSolidus => b"\\\\",
            CharEscape::Solidus => b"\\/",
            CharEscape::Backspace => b"\\b",
            CharEscape::FormFeed => b"\\f",
            CharEscape::LineFeed => b"\\n",
            CharEscape::CarriageReturn => b"\\r",
            CharEscape::Tab => b"\\t",
            CharEscape::AsciiControl(b) => return write_u_escape(w, char::from(b)),
        };
        w.write_all(short)
    }
}

/// `\uXXXX` (upper-case hex), as a surrogate pair above U+FFFF.
fn write_u_escape<W: ?Sized + Write>(w: &mut W, ch: char) -> io::Result<()> {
    let mut units = [0u16; 2];
    for unit in ch.encode_utf16(&mut units) {
        write_u16_escape(w, *unit)?;
    }
    Ok(())
}

fn write_u16_escape<W: ?Sized + Write>(w: &mut W, unit: u16) -> io::Result<()> {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let nibble = |shift: u16| HEX[usize::from((unit >> shift) & 0xF)];
    w.write_all(&[b'\\', b'u', nibble(12), nibble(8), nibble(4), nibble(0)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn compact_line_with_crlf() {
        let mut out = Vec::new();
        to_qmp_line(&json!({"return": {}, "id": 5}), &mut out);
        assert_eq!(out, b"{\"return\":{},\"id\":5}\r\n");
    }

    #[test]
    fn appends_to_existing_buffer() {
        let mut out = b"x".to_vec();
        to_qmp_line(&json!([1, "a"]), &mut out);
        to_qmp_line(&json!(null), &mut out);
        assert_eq!(out, b"x[1,\"a\"]\r\nnull\r\n");
    }

    #[test]
    fn key_order_is_insertion_order() {
        let mut m = serde_json::Map::new();
        m.insert("z".into(), json!(1));
        m.insert("a".into(), json!(2));
        m.insert("m".into(), json!(3));
        assert_eq!(to_qmp_string(&Value::Object(m)), r#"{"z":1,"a":2,"m":3}"#);
    }

    #[test]
    fn non_ascii_is_upper_case_u_escape() {
        // Observed on QEMU 7.2: request id "é" comes back as "\u00E9".
        assert_eq!(to_qmp_string(&json!("é")), r#""\u00E9""#);
        assert_eq!(to_qmp_string(&json!("日本")), r#""\u65E5\u672C""#);
        assert_eq!(to_qmp_string(&json!("\u{FFFD}")), r#""\uFFFD""#);
    }

    #[test]
    fn astral_plane_is_surrogate_pair() {
        assert_eq!(to_qmp_string(&json!("😀")), r#""\uD83D\uDE00""#);
        assert_eq!(to_qmp_string(&json!("a\u{10FFFF}b")), r#""a\uDBFF\uDFFFb""#);
    }

    #[test]
    fn control_characters_and_del() {
        assert_eq!(
            to_qmp_string(&json!("\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{0}\u{7f}")),
            r#""\b\f\n\r\t\u0001\u001F\u0000\u007F""#
        );
        assert_eq!(to_qmp_string(&json!("\"\\/")), r#""\"\\/""#);
    }

    #[test]
    fn keys_are_escaped_too() {
        assert_eq!(to_qmp_string(&json!({"ké\n": "v"})), r#"{"k\u00E9\n":"v"}"#);
    }

    #[test]
    fn numbers() {
        assert_eq!(to_qmp_string(&json!(-0)), "0");
        assert_eq!(to_qmp_string(&json!(u64::MAX)), "18446744073709551615");
        assert_eq!(to_qmp_string(&json!(i64::MIN)), "-9223372036854775808");
        assert_eq!(to_qmp_string(&json!(1.5)), "1.5");
        assert_eq!(to_qmp_string(&json!(1.8446744073709552e19)), "1.8446744073709552e+19");
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            // serde_json's own float parser (used to read the output back) is not exact for
            // every f64; short binary fractions round-trip exactly.
            any::<i16>().prop_map(|i| Value::from(f64::from(i) / 8.0)),
            any::<String>().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((any::<String>(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn output_is_ascii_and_round_trips(v in arb_value()) {
            let mut line = Vec::new();
            to_qmp_line(&v, &mut line);
            prop_assert!(line.ends_with(b"\r\n"));
            let body = &line[..line.len() - 2];
            prop_assert!(body.iter().all(|&b| (0x20..0x7F).contains(&b)));
            let back: Value = serde_json::from_slice(body).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back, v);
        }

        #[test]
        fn hex_escapes_are_upper_case(s in any::<String>()) {
            let out = to_qmp_string(&Value::String(s));
            let b = out.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\' {
                    if b[i + 1] == b'u' {
                        let hex = &b[i + 2..i + 6];
                        prop_assert!(hex.iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
                        i += 6;
                    } else {
                        i += 2;
                    }
                } else {
                    i += 1;
                }
            }
        }
    }
}
