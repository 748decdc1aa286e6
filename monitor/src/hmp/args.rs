//! The `args_type` mini-language of HMP commands and the parser that turns the rest of a command
//! line into a JSON object, with QEMU's error texts (monitor/hmp.c `monitor_parse_arguments`).
//!
//! An `args_type` is a list of `name:TYPE` entries separated by commas; `?` after a type makes it
//! optional:
//!
//! | type | reads | JSON value |
//! |---|---|---|
//! | `s` | one word or a `"quoted string"` (`\n \r \\ \' \"` escapes) | string |
//! | `B`, `F` | the same, named a block device / a file in errors | string |
//! | `S` | the rest of the line | string |
//! | `O` | a `key=value,...` list (QemuOpts), merged into the object | strings |
//! | `i`, `l` | an integer expression (`i`: 32 bits) | integer |
//! | `M` | an integer expression in MiB, scaled to bytes | integer |
//! | `o` | a size with suffix, MiB when there is none | integer |
//! | `T` | a decimal number with optional `ms`/`us`/`ns` suffix, in seconds | number |
//! | `b` | `on` or `off` | boolean |
//! | `-x` | the flag `-x`, present or not (`-xs`: the flag takes a string value) | boolean / string |
//! | `/` | a memory-dump format `/[count][format][size]` | `count`, `format`, `size` |
//!
//! `i?`, `l?`, `M?` may be omitted at the end of the line; `i.` and friends take a value only after
//! a `.`. Flags must be given in the order the type string lists them (as in QEMU).

use serde_json::{Map, Value};

use super::context::HmpState;
use super::expr::get_expr;
use super::numbers::{strtod, strtosz_mib};
use crate::transport::opts;

/// The longest string argument; longer ones are cut, as QEMU's 1024-byte buffer does.
const MAX_STR: usize = 1023;
/// The most words `help` and completion split a line into (QEMU's `MAX_ARGS`).
pub const MAX_ARGS: usize = 16;

/// C's `isspace` in the C locale.
pub fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

pub fn skip_spaces(s: &[u8], pos: &mut usize) {
    while s.get(*pos).is_some_and(|&c| is_space(c)) {
        *pos += 1;
    }
}

fn at(s: &[u8], pos: usize) -> u8 {
    s.get(pos).copied().unwrap_or(0)
}

/// Reads one word or quoted string (QEMU's `get_str`). `None` at the end of input, for an unknown
/// escape or an unterminated quote.
pub fn get_str(s: &[u8], pos: &mut usize) -> Option<Vec<u8>> {
    skip_spaces(s, pos);
    if *pos >= s.len() {
        return None;
    }
    let mut out = Vec::new();
    let push = |out: &mut Vec<u8>, c: u8| {
        if out.len() < MAX_STR {
            out.push(c);
        }
    };
    if s[*pos] == b'"' {
        *pos += 1;
        loop {
            match at(s, *pos) {
                0 if *pos >= s.len() => {
                    tracing::debug!("HMP: unterminated string");
                    return None;
                }
                b'"' => break,
                b'\\' => {
                    let c = match at(s, *pos + 1) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        c @ (b'\\' | b'\'' | b'"') => c,
                        c => {
                            tracing::debug!("HMP: unsupported escape code: '\\{}'", char::from(c));
                            *pos += 2;
                            return None;
                        }
                    };
                    push(&mut out, c);
                    *pos += 2;
                }
                c => {
                    push(&mut out, c);
                    *pos += 1;
                }
            }
        }
        *pos += 1;
    } else {
        while *pos < s.len() && !is_space(s[*pos]) {
            push(&mut out, s[*pos]);
            *pos += 1;
        }
    }
    Some(out)
}

/// Splits a line into at most [`MAX_ARGS`] words (QEMU's `parse_cmdline`); `None` if a word is
/// malformed or there are too many.
pub fn split_words(line: &[u8]) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut pos = 0;
    loop {
        skip_spaces(line, &mut pos);
        if pos >= line.len() {
            return Some(words);
        }
        if words.len() >= MAX_ARGS {
            return None;
        }
        let w = get_str(line, &mut pos)?;
        words.push(String::from_utf8_lossy(&w).into_owned());
    }
}

/// The implied first key of an `O` argument's option list (QEMU finds it from the list's name).
fn implied_key(list: &str) -> Option<&'static str> {
    match list {
        "netdev" | "net" => Some("type"),
        "device" => Some("driver"),
        "object" => Some("qom-type"),
        "drive" => None,
        _ => None,
    }
}

/// One `name:TYPE` step of an args_type string.
struct TypeCursor<'a> {
    t: &'a [u8],
    pos: usize,
}

impl<'a> TypeCursor<'a> {
    /// The next key, leaving the cursor on its type character (QEMU's `key_get_info`).
    fn next_key(&mut self) -> Option<&'a str> {
        if at(self.t, self.pos) == b',' {
            self.pos += 1;
        }
        let rest = &self.t[self.pos..];
        let colon = rest.iter().position(|&c| c == b':')?;
        let key = std::str::from_utf8(&rest[..colon]).ok()?;
        self.pos += colon + 1;
        Some(key)
    }

    fn peek(&self) -> u8 {
        at(self.t, self.pos)
    }

    fn bump(&mut self) -> u8 {
        let c = self.peek();
        if self.pos < self.t.len() {
            self.pos += 1;
        }
        c
    }

    /// Whether `-c` appears in the rest of the type string (QEMU's `is_valid_option`).
    fn has_option(&self, c: u8) -> bool {
        let needle: &[u8] = if c == 0 { b"-" } else { &[b'-', c] };
        self.t[self.pos..].windows(needle.len()).any(|w| w == needle)
    }
}

/// Parses the arguments of `cmd_name` (its full `names`, as QEMU's messages show it) from
/// `line[pos..]` according to `args_type`. Errors are the text QEMU prints (possibly empty when
/// QEMU prints nothing); the caller adds `Try "help ..."`.
pub fn parse_args(
    cmd_name: &str,
    args_type: &str,
    line: &[u8],
    mut pos: usize,
    state: &mut HmpState,
) -> Result<Map<String, Value>, String> {
    let p = &mut pos;
    let mut map = Map::new();
    let mut ty = TypeCursor { t: args_type.as_bytes(), pos: 0 };
    while let Some(key) = ty.next_key() {
        let c = ty.bump();
        match c {
            b'F' | b'B' | b's' => {
                skip_spaces(line, p);
                if ty.peek() == b'?' {
                    ty.bump();
                    if *p >= line.len() {
                        continue;
                    }
                }
                let Some(s) = get_str(line, p) else {
                    return Err(match c {
                        b'F' => format!("{cmd_name}: filename expected"),
                        b'B' => format!("{cmd_name}: block device name expected"),
                        _ => format!("{cmd_name}: string expected"),
                    });
                };
                map.insert(key.into(), String::from_utf8_lossy(&s).into_owned().into());
            }
            b'O' => {
                skip_spaces(line, p);
                if *p >= line.len() {
                    continue;
                }
                let s = get_str(line, p).ok_or_else(String::new)?;
                let parsed = opts::parse(&String::from_utf8_lossy(&s), implied_key(key));
                if let Some(id) = parsed.id.as_deref() {
                    if !opts::id_wellformed(id) {
                        return Err("Parameter 'id' expects an identifier\nIdentifiers consist of letters, digits, '-', '.', '_', starting with a letter.".into());
                    }
                    map.insert("id".into(), id.into());
                }
                for (k, v) in parsed.pairs() {
                    map.insert(k.into(), v.into());
                }
            }
            b'/' => parse_format(line, p, state, &mut map)?,
            b'i' | b'l' | b'M' => {
                skip_spaces(line, p);
                match ty.peek() {
                    b'?' => {
                        ty.bump();
                        if *p >= line.len() {
                            continue;
                        }
                    }
                    b'.' => {
                        ty.bump();
                        if at(line, *p) != b'.' {
                            continue;
                        }
                        *p += 1;
                        skip_spaces(line, p);
                    }
                    _ => {}
                }
                let mut val = get_expr(line, p)?;
                if c == b'i' && (val >> 32) & 0xffff_ffff != 0 {
                    return Err(format!("'{cmd_name}' has failed: integer is for 32-bit values"));
                }
                if c == b'M' {
                    if val < 0 {
                        return Err("enter a positive value".into());
                    }
                    val = val.checked_mul(1 << 20).ok_or_else(|| "invalid size".to_string())?;
                }
                map.insert(key.into(), val.into());
            }
            b'o' => {
                skip_spaces(line, p);
                if ty.peek() == b'?' {
                    ty.bump();
                    if *p >= line.len() {
                        continue;
                    }
                }
                match strtosz_mib(&line[*p..]) {
                    Some((v, used)) if i64::try_from(v).is_ok() => {
                        map.insert(key.into(), v.into());
                        *p += used;
                    }
                    _ => return Err("invalid size".into()),
                }
            }
            b'T' => {
                skip_spaces(line, p);
                if ty.peek() == b'?' {
                    ty.bump();
                    if *p >= line.len() {
                        continue;
                    }
                }
                let Some((mut val, used)) = strtod(&line[*p..]) else {
                    return Err("Number expected".into());
                };
                if !val.is_finite() {
                    return Err("Bad number".into());
                }
                *p += used;
                if at(line, *p) != 0 && at(line, *p + 1) == b's' {
                    let div = match at(line, *p) {
                        b'm' => Some(1e3),
                        b'u' => Some(1e6),
                        b'n' => Some(1e9),
                        _ => None,
                    };
                    if let Some(d) = div {
                        val /= d;
                        *p += 2;
                    }
                }
                if *p < line.len() && !is_space(line[*p]) {
                    return Err("Unknown unit suffix".into());
                }
                map.insert(key.into(), serde_json::Number::from_f64(val).map_or(Value::Null, Value::Number));
            }
            b'b' => {
                skip_spaces(line, p);
                let beg = *p;
                while line.get(*p).is_some_and(|&c| (0x21..=0x7e).contains(&c)) {
                    *p += 1;
                }
                let val = match &line[beg..*p] {
                    b"on" => true,
                    b"off" => false,
                    _ => return Err("Expected 'on' or 'off'".into()),
                };
                map.insert(key.into(), val.into());
            }
            b'-' => {
                let flag = ty.bump();
                if flag == 0 {
                    return Err(format!("{cmd_name}: unknown type '-'"));
                }
                let before = *p;
                skip_spaces(line, p);
                if at(line, *p) == b'-' {
                    *p += 1;
                    let given = at(line, *p);
                    if given != flag {
                        if !ty.has_option(given) {
                            return Err(format!("{cmd_name}: unsupported option -{}", char::from(given)));
                        }
                        // A later flag: leave it for its own entry (QEMU forgets to skip a
                        // string flag's `s` here and misreads the next key; we do not).
                        *p = before;
                        if ty.peek() == b's' {
                            ty.bump();
                        }
                    } else if ty.peek() == b's' {
                        ty.bump();
                        *p += 1;
                        let Some(s) = get_str(line, p) else {
                            return Err(format!("{cmd_name}: value expected for -{}", char::from(flag)));
                        };
                        map.insert(key.into(), String::from_utf8_lossy(&s).into_owned().into());
                    } else {
                        *p += 1;
                        map.insert(key.into(), true.into());
                    }
                } else if ty.peek() == b's' {
                    ty.bump();
                }
            }
            b'S' => {
                skip_spaces(line, p);
                if ty.peek() == b'?' {
                    ty.bump();
                    if *p >= line.len() {
                        continue;
                    }
                }
                if *p >= line.len() {
                    return Err(format!("{cmd_name}: string expected"));
                }
                map.insert(key.into(), String::from_utf8_lossy(&line[*p..]).into_owned().into());
                *p = line.len();
            }
            other => return Err(format!("{cmd_name}: unknown type '{}'", char::from(other))),
        }
    }
    skip_spaces(line, p);
    if *p < line.len() {
        return Err(format!("{cmd_name}: extraneous characters at the end of line"));
    }
    Ok(map)
}

/// `/[count][format][size]` of memory-dump commands; remembers the format for the next command.
fn parse_format(
    line: &[u8],
    p: &mut usize,
    state: &mut HmpState,
    map: &mut Map<String, Value>,
) -> Result<(), String> {
    skip_spaces(line, p);
    let (count, format, size);
    if at(line, *p) == b'/' {
        *p += 1;
        let mut n: i64 = 1;
        if at(line, *p).is_ascii_digit() {
            n = 0;
            while at(line, *p).is_ascii_digit() {
                n = n.saturating_mul(10).saturating_add(i64::from(at(line, *p) - b'0'));
                *p += 1;
            }
        }
        let mut sz: i64 = -1;
        let mut fmt: Option<u8> = None;
        loop {
            match at(line, *p) {
                c @ (b'o' | b'd' | b'u' | b'x' | b'i' | b'c') => fmt = Some(c),
                b'b' => sz = 1,
                b'h' => sz = 2,
                b'w' => sz = 4,
                b'g' | b'L' => sz = 8,
                _ => break,
            }
            *p += 1;
        }
        if *p < line.len() && !is_space(line[*p]) {
            return Err(format!("invalid char in format: '{}'", char::from(line[*p])));
        }
        let f = fmt.unwrap_or(state.dump_format);
        if f != b'i' {
            if sz < 0 {
                sz = state.dump_size;
            }
            state.dump_size = sz;
        }
        state.dump_format = f;
        (count, format, size) = (n, f, sz);
    } else {
        count = 1;
        format = state.dump_format;
        size = if format == b'i' { -1 } else { state.dump_size };
    }
    map.insert("count".into(), count.into());
    map.insert("format".into(), i64::from(format).into());
    map.insert("size".into(), size.into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(args_type: &str, line: &str) -> Result<Value, String> {
        parse_args("cmd|c", args_type, line.as_bytes(), 0, &mut HmpState::default()).map(Value::Object)
    }

    #[test]
    fn strings_and_optional_arguments() {
        assert_eq!(parse("device:B,speed:o?,base:s?", "drive0").unwrap(), json!({"device": "drive0"}));
        assert_eq!(
            parse("device:B,speed:o?,base:s?", " drive0  1k  \"my base\"").unwrap(),
            json!({"device": "drive0", "speed": 1024, "base": "my base"})
        );
        assert_eq!(parse("name:S?", "").unwrap(), json!({}));
        assert_eq!(parse("name:S?", "info  status ").unwrap(), json!({"name": "info  status "}));
        assert_eq!(parse("s:s", r#""a\"b\n""#).unwrap(), json!({"s": "a\"b\n"}));
        assert_eq!(parse("", "  ").unwrap(), json!({}));
    }

    #[test]
    fn errors_match_qemu() {
        assert_eq!(parse("device:B", "").unwrap_err(), "cmd|c: block device name expected");
        assert_eq!(parse("f:F", "").unwrap_err(), "cmd|c: filename expected");
        assert_eq!(parse("s:s", "\"open").unwrap_err(), "cmd|c: string expected");
        assert_eq!(parse("s:s", r#""a\qb""#).unwrap_err(), "cmd|c: string expected");
        assert_eq!(parse("s:S", "").unwrap_err(), "cmd|c: string expected");
        assert_eq!(parse("", "x").unwrap_err(), "cmd|c: extraneous characters at the end of line");
        assert_eq!(parse("size:o", "-1").unwrap_err(), "invalid size");
        assert_eq!(parse("size:o", "8E").unwrap_err(), "invalid size");
        assert_eq!(parse("size:o", "5X").unwrap_err(), "cmd|c: extraneous characters at the end of line");
        assert_eq!(parse("up:b", "yes").unwrap_err(), "Expected 'on' or 'off'");
        assert_eq!(parse("n:M", "-1").unwrap_err(), "enter a positive value");
        assert_eq!(parse("n:i", "-1").unwrap_err(), "'cmd|c' has failed: integer is for 32-bit values");
        assert_eq!(parse("n:i", "").unwrap_err(), "unexpected end of expression");
        assert_eq!(parse("t:T", "x").unwrap_err(), "Number expected");
        assert_eq!(parse("t:T", "1xs").unwrap_err(), "Unknown unit suffix");
        assert_eq!(parse("f:-f,d:B", "-x d").unwrap_err(), "cmd|c: unsupported option -x");
        assert_eq!(parse("x:q", "").unwrap_err(), "cmd|c: unknown type 'q'");
        assert_eq!(parse("v:-vs", "-v").unwrap_err(), "cmd|c: value expected for -v");
    }

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(parse("n:i", "0x10+1").unwrap(), json!({"n": 17}));
        assert_eq!(parse("n:l", "-1").unwrap(), json!({"n": -1}));
        assert_eq!(parse("n:M", "2").unwrap(), json!({"n": 2097152}));
        assert_eq!(parse("n:i?", "").unwrap(), json!({}));
        assert_eq!(parse("n:i.", "").unwrap(), json!({}));
        assert_eq!(parse("n:i.", ".5").unwrap(), json!({"n": 5}));
        assert_eq!(parse("size:o", "2").unwrap(), json!({"size": 2097152}));
        assert_eq!(parse("t:T", "1.5ms").unwrap(), json!({"t": 0.0015}));
        assert_eq!(parse("name:s,up:b", "net0 off").unwrap(), json!({"name": "net0", "up": false}));
    }

    #[test]
    fn flags_in_declared_order() {
        let t = "nodes:-n,verbose:-v,device:B?";
        assert_eq!(parse(t, "-n -v d0").unwrap(), json!({"nodes": true, "verbose": true, "device": "d0"}));
        assert_eq!(parse(t, "-v").unwrap(), json!({"verbose": true}));
        // QEMU reads `-v -n` as the -v flag then a device named "-n".
        assert_eq!(parse(t, "-v -n").unwrap(), json!({"verbose": true, "device": "-n"}));
        assert_eq!(
            parse("cpustate_all:-a,vcpu:i?", "-a 1").unwrap(),
            json!({"cpustate_all": true, "vcpu": 1})
        );
        assert_eq!(parse("r:-rs,x:s", "-r val x").unwrap(), json!({"r": "val", "x": "x"}));
    }

    #[test]
    fn option_lists() {
        assert_eq!(
            parse("netdev:O", "user,id=n1,hostfwd=tcp::2222-:22").unwrap(),
            json!({"type": "user", "id": "n1", "hostfwd": "tcp::2222-:22"})
        );
        assert!(
            parse("netdev:O", "user,id=1bad")
                .unwrap_err()
                .starts_with("Parameter 'id' expects an identifier")
        );
    }

    #[test]
    fn memory_dump_format_is_remembered() {
        let mut st = HmpState::default();
        let p = |st: &mut HmpState, l: &str| {
            parse_args("x", "fmt:/,addr:l", l.as_bytes(), 0, st).map(Value::Object)
        };
        assert_eq!(
            p(&mut st, "/4xb 0x100").unwrap(),
            json!({"count": 4, "format": 120, "size": 1, "addr": 256})
        );
        assert_eq!(p(&mut st, "0x100").unwrap(), json!({"count": 1, "format": 120, "size": 1, "addr": 256}));
        assert_eq!(p(&mut st, "/2d 0").unwrap(), json!({"count": 2, "format": 100, "size": 1, "addr": 0}));
        assert_eq!(p(&mut st, "/2q 0").unwrap_err(), "invalid char in format: 'q'");
    }

    #[test]
    fn words() {
        assert_eq!(split_words(b"  info  \"a b\" c").unwrap(), vec!["info", "a b", "c"]);
        assert_eq!(split_words(b"\"open"), None);
        assert_eq!(split_words(&b"a ".repeat(17)), None);
        let long = "x".repeat(5000);
        assert_eq!(split_words(long.as_bytes()).unwrap()[0].len(), MAX_STR);
    }
}
