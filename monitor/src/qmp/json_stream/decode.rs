//! Scalar tokens to values, with QEMU's rules (qobject/json-parser.c, util/unicode.c).
//!
//! * Strings are "modified UTF-8": the overlong `C0 80` stands for U+0000. Code points beyond
//!   U+10FFFF, surrogates, overlong forms and the 66 Unicode noncharacters are rejected, both as
//!   raw bytes (`invalid UTF-8 sequence in string`) and as `\u` escapes
//!   (`\uXXXX is not a valid Unicode character`). Errors are reported in string order.
//! * Integers that fit i64 become i64, bigger positive ones that fit u64 become u64, the rest
//!   f64. Unlike QEMU (which then prints `inf`, invalid JSON), a number whose f64 value is not
//!   finite is rejected with [`JsonError::NumberOutOfRange`].

use serde_json::{Number, Value};

use super::JsonError;

/// Decodes the raw contents (between the quotes) of a string token.
///
/// `escaped`: the contents hold a backslash; `non_ascii`: they hold a byte >= 0x80. The fast
/// path (neither) reuses `raw`'s allocation for the result and leaves `raw` empty.
pub(super) fn string(
    raw: &mut Vec<u8>,
    quote: u8,
    escaped: bool,
    non_ascii: bool,
) -> Result<String, JsonError> {
    if !escaped {
        if !non_ascii || is_strict_qemu_utf8(raw) {
            return String::from_utf8(std::mem::take(raw)).map_err(|_| JsonError::InvalidUtf8);
        }
        let mut out = Vec::with_capacity(raw.len());
        push_mod_utf8(raw, &mut out)?;
        return String::from_utf8(out).map_err(|_| JsonError::InvalidUtf8);
    }
    let out = unescape(raw, quote)?;
    String::from_utf8(out).map_err(|_| JsonError::InvalidUtf8)
}

/// Valid standard UTF-8 without noncharacters: what QEMU accepts, minus the `C0 80` spelling.
fn is_strict_qemu_utf8(raw: &[u8]) -> bool {
    match std::str::from_utf8(raw) {
        Ok(s) => !s.chars().any(is_noncharacter),
        Err(_) => false,
    }
}

fn is_noncharacter(c: char) -> bool {
    let cp = u32::from(c);
    (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE
}

/// QEMU's `is_valid_codepoint()`.
fn is_valid_codepoint(cp: u32) -> bool {
    cp <= 0x10FFFF
        && !(0xD800..=0xDFFF).contains(&cp)
        && !(0xFDD0..=0xFDEF).contains(&cp)
        && cp & 0xFFFE != 0xFFFE
}

/// Appends a run of raw (unescaped) string bytes to `out` as standard UTF-8, checking it the way
/// `mod_utf8_codepoint()` does.
fn push_mod_utf8(seg: &[u8], out: &mut Vec<u8>) -> Result<(), JsonError> {
    const MIN_CP: [u32; 5] = [0x80, 0x800, 0x1_0000, 0x20_0000, 0x400_0000];
    let mut i = 0;
    while i < seg.len() {
        let lead = seg[i];
        if lead < 0x80 {
            out.push(lead);
            i += 1;
            continue;
        }
        if lead & 0x40 == 0 || lead >= 0xFE {
            return Err(JsonError::InvalidUtf8); // continuation or impossible byte
        }
        let len = lead.leading_ones() as usize; // 2..=6
        let mut cp = u32::from(lead) & (0x7F >> len);
        for k in 1..len {
            match seg.get(i + k) {
                Some(&b) if b & 0xC0 == 0x80 => cp = (cp << 6) | u32::from(b & 0x3F),
                _ => return Err(JsonError::InvalidUtf8),
            }
        }
        if cp == 0 && len == 2 {
            out.push(0); // modified UTF-8 spelling of U+0000
        } else if !is_valid_codepoint(cp) || cp < MIN_CP[len - 2] {
            return Err(JsonError::InvalidUtf8);
        } else {
            out.extend_from_slice(&seg[i..i + len]);
        }
        i += len;
    }
    Ok(())
}

/// Slow path: contents with escapes, decoded left to right so that the first error wins.
fn unescape(raw: &[u8], quote: u8) -> Result<Vec<u8>, JsonError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut seg_start = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] != b'\\' {
            i += 1;
            continue;
        }
        push_mod_utf8(&raw[seg_start..i], &mut out)?;
        // The lexer guarantees a byte after every backslash.
        let Some(&esc) = raw.get(i + 1) else {
            return Err(JsonError::InvalidEscape);
        };
        let simple = match esc {
            b'"' => Some(b'"'),
            b'\'' => Some(b'\''),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0C),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(JsonError::InvalidEscape),
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
        } else {
            let (ch, end) = unicode_escape(raw, i, quote)?;
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            i = end;
        }
        seg_start = i;
    }
    push_mod_utf8(&raw[seg_start..], &mut out)?;
    Ok(out)
}

/// Decodes the `\uXXXX` escape at `raw[at]` (with a following low surrogate escape when the
/// first one is a high surrogate). Returns the char and the index after the escape(s).
fn unicode_escape(raw: &[u8], at: usize, quote: u8) -> Result<(char, usize), JsonError> {
    let mut cp = hex4(raw, at + 2);
    let mut end = at + 6;
    if let Some(high @ 0xD800..=0xDBFF) = cp
        && raw.get(end) == Some(&b'\\')
        && raw.get(end + 1) == Some(&b'u')
    {
        cp = match hex4(raw, end + 2) {
            Some(low @ 0xDC00..=0xDFFF) => {
                end += 6;
                Some(0x1_0000 + ((high & 0x3FF) << 10) + (low & 0x3FF))
            }
            _ => None,
        };
    }
    match cp.filter(|&c| is_valid_codepoint(c)).and_then(char::from_u32) {
        Some(ch) => Ok((ch, end)),
        None => Err(JsonError::InvalidUnicodeEscape(escape_text(raw, at, quote))),
    }
}

/// The four hex digits at `raw[at..at + 4]`, if they are all there.
fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        Some((acc << 4) | v)
    })
}

/// QEMU prints the six bytes from the backslash on, cut at the end of the token (whose last
/// byte is the closing quote).
fn escape_text(raw: &[u8], at: usize, quote: u8) -> String {
    let mut text: Vec<u8> = raw[at..].iter().copied().chain([quote]).take(6).collect();
    if let Some(nul) = text.iter().position(|&b| b == 0) {
        text.truncate(nul);
    }
    String::from_utf8_lossy(&text).into_owned()
}

/// Converts a number token (`-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?`).
pub(super) fn number(text: &[u8], float: bool) -> Result<Value, JsonError> {
    let s = std::str::from_utf8(text).map_err(|_| JsonError::NumberOutOfRange)?;
    if !float {
        if let Ok(i) = s.parse::<i64>() {
            return Ok(Value::Number(i.into()));
        }
        if !s.starts_with('-')
            && let Ok(u) = s.parse::<u64>()
        {
            return Ok(Value::Number(u.into()));
        }
    }
    s.parse::<f64>().ok().and_then(Number::from_f64).map(Value::Number).ok_or(JsonError::NumberOutOfRange)
}

/// Converts a keyword token (`[a-z]+`).
pub(super) fn keyword(text: &[u8]) -> Result<Value, JsonError> {
    match text {
        b"null" => Ok(Value::Null),
        b"true" => Ok(Value::Bool(true)),
        b"false" => Ok(Value::Bool(false)),
        _ => Err(JsonError::InvalidKeyword(String::from_utf8_lossy(text).into_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dq(raw: &[u8]) -> Result<String, JsonError> {
        let escaped = raw.contains(&b'\\');
        let non_ascii = raw.iter().any(|&b| b >= 0x80);
        string(&mut raw.to_vec(), b'"', escaped, non_ascii)
    }

    fn bad_escape(text: &str) -> JsonError {
        JsonError::InvalidUnicodeEscape(text.to_owned())
    }

    #[test]
    fn plain_and_simple_escapes() {
        assert_eq!(dq(b"abc").unwrap(), "abc");
        assert_eq!(dq(br#"\"\'\\\/\b\f\n\r\t"#).unwrap(), "\"'\\/\u{8}\u{c}\n\r\t");
        assert_eq!(dq(br"\x"), Err(JsonError::InvalidEscape));
        assert_eq!(dq(b"\\\xc3\xa9"), Err(JsonError::InvalidEscape));
    }

    #[test]
    fn unicode_escapes() {
        assert_eq!(dq(br"\u00e9\u00E9").unwrap(), "éé");
        assert_eq!(dq(br"\u0000").unwrap(), "\0");
        assert_eq!(dq(br"\ud83d\ude00").unwrap(), "😀");
        assert_eq!(dq(br"a\ud800"), Err(bad_escape(r"\ud800")));
        assert_eq!(dq(br"\ud800\u0041"), Err(bad_escape(r"\ud800")));
        assert_eq!(dq(br"\ud800\n"), Err(bad_escape(r"\ud800")));
        assert_eq!(dq(br"\udc00"), Err(bad_escape(r"\udc00")));
        assert_eq!(dq(br"\uFFFE"), Err(bad_escape(r"\uFFFE")));
        assert_eq!(dq(br"\ufdd0"), Err(bad_escape(r"\ufdd0")));
        // Short or non-hex escapes: six bytes from the backslash, cut after the closing quote.
        assert_eq!(dq(br"\u12"), Err(bad_escape("\\u12\"")));
        assert_eq!(dq(br"\u12zzzz"), Err(bad_escape(r"\u12zz")));
        assert_eq!(dq(br"\u12\u0041"), Err(bad_escape(r"\u12\u")));
    }

    #[test]
    fn first_error_wins() {
        assert_eq!(dq(b"\xc3(\\x"), Err(JsonError::InvalidUtf8));
        assert_eq!(dq(b"\\x\xc3("), Err(JsonError::InvalidEscape));
    }

    #[test]
    fn modified_utf8() {
        assert_eq!(dq("é😀".as_bytes()).unwrap(), "é😀");
        assert_eq!(dq(b"a\xc0\x80b").unwrap(), "a\0b");
        assert_eq!(dq(b"\\n\xc0\x80").unwrap(), "\n\0");
        for bad in [
            &b"\xc3("[..],
            b"\xc3",
            b"\x80",
            b"\xc1\xbf",         // overlong
            b"\xe0\x80\xaf",     // overlong
            b"\xed\xa0\x80",     // surrogate
            b"\xef\xbf\xbf",     // U+FFFF noncharacter
            b"\xef\xb7\x90",     // U+FDD0 noncharacter
            b"\xf4\x90\x80\x80", // beyond U+10FFFF
            b"\xf8\x88\x80\x80\x80",
            b"\xfd\xbf\xbf\xbf\xbf\xbf",
        ] {
            assert_eq!(dq(bad), Err(JsonError::InvalidUtf8), "{bad:x?}");
        }
    }

    #[test]
    fn fast_path_takes_the_buffer() {
        let mut raw = b"hello".to_vec();
        assert_eq!(string(&mut raw, b'"', false, false).unwrap(), "hello");
        assert!(raw.is_empty());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"0", false).unwrap(), Value::from(0));
        assert_eq!(number(b"-0", false).unwrap(), Value::from(0));
        assert_eq!(number(b"-42", false).unwrap(), Value::from(-42));
        assert_eq!(number(b"9223372036854775807", false).unwrap(), Value::from(i64::MAX));
        assert_eq!(number(b"9223372036854775808", false).unwrap(), Value::from(9_223_372_036_854_775_808u64));
        assert_eq!(number(b"18446744073709551615", false).unwrap(), Value::from(u64::MAX));
        assert_eq!(number(b"18446744073709551616", false).unwrap(), Value::from(1.8446744073709552e19));
        assert_eq!(number(b"-9223372036854775809", false).unwrap(), Value::from(-9.223372036854776e18));
        assert_eq!(number(b"1.5e3", true).unwrap(), Value::from(1500.0));
        assert_eq!(number(b"1e-400", true).unwrap(), Value::from(0.0));
        assert_eq!(number(b"1e400", true), Err(JsonError::NumberOutOfRange));
        assert_eq!(number(b"-1e400", true), Err(JsonError::NumberOutOfRange));
        let huge = format!("1{}", "0".repeat(400));
        assert_eq!(number(huge.as_bytes(), false), Err(JsonError::NumberOutOfRange));
    }

    #[test]
    fn keywords() {
        assert_eq!(keyword(b"null").unwrap(), Value::Null);
        assert_eq!(keyword(b"true").unwrap(), Value::Bool(true));
        assert_eq!(keyword(b"false").unwrap(), Value::Bool(false));
        assert_eq!(keyword(b"nul"), Err(JsonError::InvalidKeyword("nul".into())));
    }
}
