//! Tests for the splitter: QMP.md §6/§7, the QEMU 7.2 recordings, chunking, limits, memory and
//! properties.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

/// One item as a short string: the compact JSON of a value, or `E:` and the error text.
fn show(item: Result<Value, JsonError>) -> String {
    match item {
        Ok(v) => serde_json::to_string(&v).unwrap_or_default(),
        Err(e) => format!("E:{e}"),
    }
}

fn drain(s: &mut JsonStreamSplitter) -> Vec<String> {
    std::iter::from_fn(|| s.next_item()).map(show).collect()
}

/// Feeds `input` in one piece with default limits.
fn run(input: &[u8]) -> Vec<String> {
    run_with(Limits::default(), input)
}

fn run_with(limits: Limits, input: &[u8]) -> Vec<String> {
    let mut s = JsonStreamSplitter::new(limits);
    s.feed(input);
    drain(&mut s)
}

/// Feeds `input` in one piece, byte by byte, and split at every position, with and without
/// draining in between; all must give the same items. Returns them.
fn run_all_splits(input: &[u8]) -> Vec<String> {
    let whole = run(input);
    let mut s = JsonStreamSplitter::new(Limits::default());
    let mut bytewise = Vec::new();
    for b in input {
        s.feed(std::slice::from_ref(b));
        bytewise.extend(drain(&mut s));
    }
    assert_eq!(bytewise, whole, "byte by byte: {:?}", String::from_utf8_lossy(input));
    for cut in split_points(input.len()) {
        let mut s = JsonStreamSplitter::new(Limits::default());
        s.feed(&input[..cut]);
        s.feed(&input[cut..]);
        let got = drain(&mut s);
        assert_eq!(got, whole, "split at {cut}: {:?}", String::from_utf8_lossy(input));
    }
    whole
}

/// Every split position of a short input; for a long one, the first and last 128 positions and
/// 256 spread over the middle (keeps the debug-build test time down).
fn split_points(len: usize) -> Vec<usize> {
    if len <= 512 {
        return (0..=len).collect();
    }
    let step = (len / 256).max(1);
    (0..128).chain((128..len - 128).step_by(step)).chain(len - 128..=len).collect()
}

fn v(j: Value) -> String {
    serde_json::to_string(&j).unwrap_or_default()
}

fn e(text: &str) -> String {
    format!("E:{text}")
}

const PROBE: &[u8] = br#"{"execute":"no-such-cmd"}"#;

/// After `input`, a newline and a well-formed command must parse: `input` yields `expected`,
/// then the probe comes out. Checked at every split.
fn assert_recovers(input: &[u8], expected: &[String]) {
    let mut all = input.to_vec();
    all.push(b'\n');
    all.extend_from_slice(PROBE);
    let mut want = expected.to_vec();
    want.push(v(json!({"execute": "no-such-cmd"})));
    assert_eq!(run_all_splits(&all), want, "{:?}", String::from_utf8_lossy(input));
}

// ---------------------------------------------------------------- well-formed input

#[test]
fn values_of_every_type() {
    assert_eq!(
        run_all_splits(br#"{"execute":"query-status","id":1} [1,2] "hello" 42 true false null {}"#),
        [
            v(json!({"execute": "query-status", "id": 1})),
            v(json!([1, 2])),
            v(json!("hello")),
            v(json!(42)),
            v(json!(true)),
            v(json!(false)),
            v(json!(null)),
            v(json!({})),
        ]
    );
}

#[test]
fn back_to_back_and_whitespace() {
    assert_eq!(
        run_all_splits(b"\n\n   \r\n\t\n{\"a\":1}{\"b\":2}\r\n  [ ]\t"),
        [v(json!({"a": 1})), v(json!({"b": 2})), v(json!([]))]
    );
    assert!(run(b" \t\r\n\n ").is_empty());
}

#[test]
fn key_order_is_kept() {
    let items = run(br#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#);
    assert_eq!(items, [r#"{"z":1,"a":2,"m":{"y":1,"b":2}}"#]);
}

#[test]
fn single_quotes_and_apostrophe_escape() {
    assert_eq!(
        run_all_splits(br#"{'execute':'query-status','id':'sq'}"#),
        [v(json!({"execute": "query-status", "id": "sq"}))]
    );
    assert_eq!(
        run_all_splits(br#"["it\'s", 'it\'s', 'say "hi"', "\"q\""]"#),
        [v(json!(["it's", "it's", "say \"hi\"", "\"q\""]))]
    );
}

#[test]
fn escapes_and_unicode() {
    assert_eq!(
        run_all_splits(br#"["\u00e9\u00E9", "\ud83d\ude00", "\n\t\\\/", "\u0000"]"#),
        [v(json!(["éé", "😀", "\n\t\\/", "\0"]))]
    );
    assert_eq!(run_all_splits("\"é😀\"".as_bytes()), [v(json!("é😀"))]);
}

#[test]
fn brackets_inside_strings_do_not_count() {
    assert_eq!(run_all_splits(br#"{"a":"}]{[","b":'"}'}"#), [v(json!({"a": "}]{[", "b": "\"}"}))]);
}

#[test]
fn numbers() {
    assert_eq!(
        run_all_splits(
            b"[0,-0,1,-1,9223372036854775807,9223372036854775808,18446744073709551616,1.5,-2.5e3,1E2,1e-400]"
        ),
        [v(json!([
            0,
            0,
            1,
            -1,
            i64::MAX,
            9_223_372_036_854_775_808u64,
            1.8446744073709552e19,
            1.5,
            -2500.0,
            100.0,
            0.0
        ]))]
    );
    assert_eq!(run(b"[-9223372036854775808]"), [v(json!([i64::MIN]))]);
}

#[test]
fn numbers_are_i64_u64_or_f64() {
    let mut s = JsonStreamSplitter::new(Limits::default());
    s.feed(b"[5, -5, 18446744073709551615, 18446744073709551616, 2.0]");
    let Some(Ok(Value::Array(items))) = s.next_item() else {
        panic!("no array");
    };
    let n = |i: usize| match &items[i] {
        Value::Number(n) => n.clone(),
        other => panic!("{other}"),
    };
    assert_eq!(n(0).as_i64(), Some(5));
    assert_eq!(n(1).as_i64(), Some(-5));
    assert!(n(2).is_u64() && n(2).as_u64() == Some(u64::MAX));
    assert!(n(3).is_f64());
    assert!(n(4).is_f64());
}

#[test]
fn number_at_end_of_input_waits_for_a_delimiter() {
    let mut s = JsonStreamSplitter::new(Limits::default());
    s.feed(b"42");
    assert!(s.next_item().is_none());
    assert!(!s.is_idle());
    s.feed(b"\n");
    assert_eq!(drain(&mut s), [v(json!(42))]);
    assert!(s.is_idle());
}

#[test]
fn greedy_number_then_keyword() {
    // QEMU's lexer ends a number at the first byte that cannot continue it.
    assert_eq!(run(b"[123abc]"), [e("JSON parse error, expected separator in list")]);
    // `0e5` is not a number for QEMU: `0`, then the keyword `e`.
    assert_eq!(run(b"[0e5]"), [e("JSON parse error, expected separator in list")]);
}

#[test]
fn non_finite_numbers_are_rejected() {
    assert_recovers(
        br#"{"execute":"query-status","id":1e400}"#,
        &[e("JSON parse error, number out of range")],
    );
    assert_recovers(b"-1e999", &[e("JSON parse error, number out of range")]);
}

// ---------------------------------------------------------------- QMP.md §6, each row

#[test]
fn expecting_value() {
    for input in [
        &br#"{ "execute": }"#[..],
        br#"{"execute":"query-status",}"#,
        br#"{"execute":}"#,
        b"}",
        b"]",
        b"[1,]",
        b"[,]",
        b",",
        b":",
        b"{]",
        b"[}",
    ] {
        assert_recovers(input, &[e("JSON parse error, expecting value")]);
    }
}

#[test]
fn missing_colon() {
    assert_recovers(br#"{"execute" "query-status"}"#, &[e("JSON parse error, missing : in object pair")]);
    assert_recovers(br#"{"a"]"#, &[e("JSON parse error, missing : in object pair")]);
}

#[test]
fn duplicate_key() {
    assert_recovers(
        br#"{"execute":"query-status", "id":1, "id":2}"#,
        &[e("JSON parse error, duplicate key")],
    );
    // The value is parsed first, so its own error comes first (as in QEMU).
    assert_recovers(br#"{"a":1,"a":nul}"#, &[e("JSON parse error, invalid keyword 'nul'")]);
}

#[test]
fn invalid_keyword() {
    assert_recovers(
        br#"{"execute":"query-status","id":nul}"#,
        &[e("JSON parse error, invalid keyword 'nul'")],
    );
    assert_recovers(b"hello", &[e("JSON parse error, invalid keyword 'hello'")]);
}

#[test]
fn separators_and_keys() {
    assert_recovers(b"[1 2]", &[e("JSON parse error, expected separator in list")]);
    assert_recovers(b"[1:2]", &[e("JSON parse error, expected separator in list")]);
    assert_recovers(br#"{"a":1 "b":2}"#, &[e("JSON parse error, expected separator in dict")]);
    assert_recovers(b"[1,2}", &[e("JSON parse error, expected separator in list")]);
    assert_recovers(br#"{"a":1]"#, &[e("JSON parse error, expected separator in dict")]);
    for input in [&b"{1:2}"[..], b"{true:1}", b"{[1]:2}", br#"{"a":1,{}:2}"#] {
        assert_recovers(input, &[e("JSON parse error, key is not a string in object")]);
    }
    // An error inside a container used as a key comes first.
    assert_recovers(b"{[nul]:1}", &[e("JSON parse error, invalid keyword 'nul'")]);
}

#[test]
fn stray_bytes_outside_strings() {
    assert_recovers(b"\xff", &[e("JSON parse error, stray '\u{FFFD}'")]);
    assert_recovers(b"\x01", &[e("JSON parse error, stray '\u{1}'")]);
    assert_recovers(b"@", &[e("JSON parse error, stray '@'")]);
    assert_recovers(b"%d", &[e("JSON parse error, stray '%'")]);
    assert_recovers(b"A", &[e("JSON parse error, stray 'A'")]);
    // Multi-byte UTF-8 outside a string: one error (QEMU's recovery skips the rest).
    assert_recovers("é".as_bytes(), &[e("JSON parse error, stray '\u{FFFD}'")]);
    // Bad numbers: the token so far plus the offending byte.
    assert_recovers(b"[01]", &[e("JSON parse error, stray '01'")]);
    assert_recovers(b"[-x]", &[e("JSON parse error, stray '-x'")]);
    assert_recovers(b"[1.x]", &[e("JSON parse error, stray '1.x'")]);
    assert_recovers(b"[1e+x]", &[e("JSON parse error, stray '1e+x'")]);
    assert_recovers(b"[1.]", &[e("JSON parse error, stray '1.]'")]);
}

#[test]
fn invalid_utf8_inside_string() {
    // Bytes QEMU's lexer lets through, rejected when the string is decoded: one error.
    assert_recovers(
        b"{\"execute\": \"query-status\", \"id\": \"\xc3(\"}",
        &[e("JSON parse error, invalid UTF-8 sequence in string")],
    );
    // 0xFF inside a string is a lexical error (QEMU 7.2 adds a second error; we do not).
    assert_recovers(
        b"{\"execute\":\"query-status\",\"id\":\"\xff\"}",
        &[e("JSON parse error, stray '\"\u{FFFD}'")],
    );
}

#[test]
fn lone_surrogate() {
    assert_recovers(
        br#"{"execute":"query-status","id":"\ud800"}"#,
        &[e(r"JSON parse error, \ud800 is not a valid Unicode character")],
    );
    assert_recovers(
        br#"["\ud800\u0041"]"#,
        &[e(r"JSON parse error, \ud800 is not a valid Unicode character")],
    );
    assert_recovers(br#"["\uDC00"]"#, &[e(r"JSON parse error, \uDC00 is not a valid Unicode character")]);
}

#[test]
fn invalid_escape() {
    assert_recovers(br#"["\x41"]"#, &[e("JSON parse error, invalid escape sequence in string")]);
    assert_recovers(br#"["\u12"]"#, &[e("JSON parse error, \\u12\" is not a valid Unicode character")]);
}

#[test]
fn control_character_inside_string() {
    // QEMU 7.2 answers `stray '"a\u0001'` and then `expecting value`; we stop at the first.
    assert_recovers(
        b"{\"execute\":\"query-status\",\"id\":\"a\x01b\"}",
        &[e("JSON parse error, stray '\"a\u{1}'")],
    );
    // A raw newline ends an unterminated string: the next line is a fresh message.
    assert_recovers(b"{\"execute\": \"query-status}", &[e("JSON parse error, stray '\"query-status}\n'")]);
    // After a backslash too.
    assert_recovers(b"[\"ab\\\x02\"]", &[e("JSON parse error, stray '\"ab\\\u{2}'")]);
}

#[test]
fn nul_byte_is_cut_from_the_text() {
    // QEMU prints the token with %s, which stops at the NUL.
    assert_recovers(b"\x00", &[e("JSON parse error, stray ''")]);
    assert_recovers(b"[\"ab\x00\"]", &[e("JSON parse error, stray '\"ab'")]);
}

// ---------------------------------------------------------------- recordings (qemu-7.2)

#[test]
fn recording_unquoted_value() {
    // QEMU 7.2: `stray '-s'` then `expecting value`. One error here, then recovery.
    assert_recovers(b"{\"execute\": query-status}\n", &[e("JSON parse error, stray '-s'")]);
}

#[test]
fn recording_garbage_before_object() {
    // QEMU 7.2: `stray ''`, `stray '\uFFFD'`, then the command's answer.
    assert_eq!(
        run_all_splits(b"\x00\xff{\"execute\": \"query-status\"}\n"),
        [e("JSON parse error, stray ''"), v(json!({"execute": "query-status"}))]
    );
}

#[test]
fn recording_split_and_pipelined() {
    let mut s = JsonStreamSplitter::new(Limits::default());
    s.feed(b"{\"execute\": \"query-status\"\n");
    assert!(s.next_item().is_none());
    s.feed(b"}\n");
    assert_eq!(drain(&mut s), [v(json!({"execute": "query-status"}))]);
    s.feed(b"{\"execute\": \"query-status\"}{\"execute\": \"query-version\"}\n");
    assert_eq!(
        drain(&mut s),
        [v(json!({"execute": "query-status"})), v(json!({"execute": "query-version"}))]
    );
}

#[test]
fn recording_t1_malformed_battery() {
    // The malformed-input part of qemu72-t1.txt, write by write. Where QEMU 7.2 sends two
    // errors for one message we send the first; everything else matches.
    let cases: &[(&[u8], &[&str])] = &[
        (b"[1,2]\n", &["[1,2]"]),
        (b"\"hello\"\n", &["\"hello\""]),
        (b"42\n", &["42"]),
        (b"{ \"execute\": }\n", &["E:JSON parse error, expecting value"]),
        (b"{\"execute\":\"query-status\",}\n", &["E:JSON parse error, expecting value"]),
        (b"{\"execute\" \"query-status\"}\n", &["E:JSON parse error, missing : in object pair"]),
        (b"{\"execute\":\"query-status\", \"id\":1, \"id\":2}\n", &["E:JSON parse error, duplicate key"]),
        (b"{'execute':'query-status','id':'sq'}\n", &[r#"{"execute":"query-status","id":"sq"}"#]),
        (b"\xff\n", &["E:JSON parse error, stray '\u{FFFD}'"]),
        (b"{\"execute\":\"query-status\",\"id\":\"\xff\"}\n", &["E:JSON parse error, stray '\"\u{FFFD}'"]),
        (
            b"{\"execute\":\"query-status\",\"id\":\"\xc3\xa9\"}\n",
            &[r#"{"execute":"query-status","id":"é"}"#],
        ),
        (b"{\"execute\":\"query-status\",\"id\":\"\\u00e9\"}\n", &[r#"{"execute":"query-status","id":"é"}"#]),
        (
            b"{\"execute\":\"query-status\",\"id\":\"\\ud800\"}\n",
            &["E:JSON parse error, \\ud800 is not a valid Unicode character"],
        ),
        (b"{\"execute\":\"query-status\",\"id\":\"a\x01b\"}\n", &["E:JSON parse error, stray '\"a\u{1}'"]),
        (
            b"{\"execute\":\"query-status\",\"id\":18446744073709551616}\n",
            &[r#"{"execute":"query-status","id":1.8446744073709552e+19}"#],
        ),
        (b"{\"execute\":\"query-status\",\"id\":-0}\n", &[r#"{"execute":"query-status","id":0}"#]),
        (b"{\"execute\":\"query-status\",\"id\":true}\n", &[r#"{"execute":"query-status","id":true}"#]),
        (b"{\"execute\":\"query-status\",\"id\":nul}\n", &["E:JSON parse error, invalid keyword 'nul'"]),
        (b"\x01", &["E:JSON parse error, stray '\u{1}'"]),
        (b"{\"execute\":\"query-status\"", &[]),
        (b",\"id\":\"split\"}", &[r#"{"execute":"query-status","id":"split"}"#]),
        (
            b"{\"execute\":\"query-status\",\"id\":\"a\"}{\"execute\":\"query-status\",\"id\":\"b\"}",
            &[r#"{"execute":"query-status","id":"a"}"#, r#"{"execute":"query-status","id":"b"}"#],
        ),
        (b"}\n", &["E:JSON parse error, expecting value"]),
        (b"]\n", &["E:JSON parse error, expecting value"]),
        (
            b"{\"execute\":\"query-status\",\"id\":\"after-stray\"}\n",
            &[r#"{"execute":"query-status","id":"after-stray"}"#],
        ),
        (b"\n\n   \r\n\t\n", &[]),
        (b"{\"execute\":\"query-status\",\"id\":\"x\"}\r\n", &[r#"{"execute":"query-status","id":"x"}"#]),
    ];
    let mut s = JsonStreamSplitter::new(Limits::default());
    for (input, want) in cases {
        s.feed(input);
        assert_eq!(drain(&mut s), *want, "{:?}", String::from_utf8_lossy(input));
    }
}

// ---------------------------------------------------------------- recovery

#[test]
fn one_error_per_message_then_resync_on_balance() {
    // Grammar errors deep inside: skipped to the closing brace, strings tracked.
    assert_recovers(
        br#"{"a": [1, 2 3], "b": "}]]", "c": {"d": [}]}"#,
        &[e("JSON parse error, expected separator in list")],
    );
}

#[test]
fn lexical_error_wins_over_earlier_grammar_error() {
    // QEMU parses only complete messages, so a later lexical error is what it reports.
    assert_recovers(br#"{"a" 1, "b": @}"#, &[e("JSON parse error, stray '@'")]);
    assert_recovers(b"{\"a\" 1, \"b\": \"\x01\"}", &[e("JSON parse error, stray '\"\u{1}'")]);
}

#[test]
fn control_character_resets_an_unfinished_message() {
    let mut s = JsonStreamSplitter::new(Limits::default());
    s.feed(br#"{"execute": "stop", "arguments": {"#);
    assert!(s.next_item().is_none());
    s.feed(b"\x1b");
    assert_eq!(drain(&mut s), [e("JSON parse error, stray '\u{1b}'")]);
    s.feed(PROBE);
    assert_eq!(drain(&mut s), [v(json!({"execute": "no-such-cmd"}))]);
}

#[test]
fn control_character_ends_skipping_silently() {
    // The message already had its error; the reset byte only resynchronises.
    let mut s = JsonStreamSplitter::new(Limits::default());
    s.feed(b"{\"a\": [1 2], \"b\": {");
    assert!(s.next_item().is_none()); // grammar error pending until the message ends
    s.feed(b"\x01");
    assert_eq!(drain(&mut s), [e("JSON parse error, stray '\u{1}'")]);
    s.feed(b"[[[[");
    let deep = "[".repeat(1100);
    s.feed(deep.as_bytes());
    assert_eq!(drain(&mut s), [e("JSON nesting depth limit exceeded")]);
    s.feed(b"\x01");
    s.feed(PROBE);
    assert_eq!(drain(&mut s), [v(json!({"execute": "no-such-cmd"}))]);
}

#[test]
fn qmp_test_malformed_cases() {
    // tests/qtest/qmp-test.c test_malformed: every input is followed by a working command.
    for input in [
        &b"{]\n"[..],
        b"{\xff",
        b"{\x01",
        b"{\"execute\":\"\x01\"}",
        b"{\"execute\":\"\\x\"}",
        b"{\"execute\":\"\\u\"}",
        b"{\"execute\":\"\xff\"}",
        b"{\"execute\":\"\xc3(\"}",
    ] {
        let mut all = input.to_vec();
        all.extend_from_slice(PROBE);
        let items = run_all_splits(&all);
        assert_eq!(items.len(), 2, "{:?}: {items:?}", String::from_utf8_lossy(input));
        assert!(items[0].starts_with("E:JSON parse error"), "{items:?}");
        assert_eq!(items[1], v(json!({"execute": "no-such-cmd"})));
    }
}

#[test]
fn reset_discards_the_tail_of_the_broken_message() {
    assert_eq!(
        run_all_splits(b"{\"a\":\"x\x01y\", \"b\": \"c\"}\n[1]"),
        [e("JSON parse error, stray '\"x\u{1}'"), v(json!([1]))]
    );
}

#[test]
fn reset_method() {
    let mut s = JsonStreamSplitter::new(Limits::default());
    s.feed(br#"{"execute": "x", "arguments": {"a": "abc"#);
    s.reset();
    assert!(s.is_idle());
    s.feed(PROBE);
    assert_eq!(drain(&mut s), [v(json!({"execute": "no-such-cmd"}))]);
}

// ---------------------------------------------------------------- QMP.md §7, limits

#[test]
fn default_limits_are_qemus() {
    let l = Limits::default();
    assert_eq!(l.max_message_bytes, 64 << 20);
    assert_eq!(l.max_tokens, 2 << 20);
    assert_eq!(l.max_nesting, 1024);
}

#[test]
fn nesting_1024_accepted_1025_rejected_once() {
    let ok = format!("{}{}", "[".repeat(1024), "]".repeat(1024));
    let items = run(ok.as_bytes());
    assert_eq!(items.len(), 1);
    assert!(items[0].starts_with("[[[["));

    let deep = format!("{}{}", "[".repeat(1025), "]".repeat(1025));
    // QEMU 7.2 sends 1,025 errors for this; exactly one here.
    assert_recovers(deep.as_bytes(), &[e("JSON nesting depth limit exceeded")]);

    let mixed = format!("{}{}", r#"{"a":["#.repeat(513), "]}".repeat(513));
    assert_recovers(mixed.as_bytes(), &[e("JSON nesting depth limit exceeded")]);
}

#[test]
fn token_count_limit() {
    let limits = Limits { max_tokens: 10, ..Limits::default() };
    // [1,2,3,4,5] is 11 tokens, but QEMU only checks unbalanced messages: the 11th closes it.
    assert_eq!(run_with(limits, b"[1,2,3,4,5]"), ["[1,2,3,4,5]"]);
    assert_eq!(
        run_with(limits, b"[1,2,3,4,5,6] {\"a\":1}"),
        [e("JSON token count limit exceeded"), r#"{"a":1}"#.to_owned()]
    );
}

#[test]
fn token_size_limit() {
    let limits = Limits { max_message_bytes: 16, ..Limits::default() };
    // Token bytes only: whitespace between tokens does not count.
    assert_eq!(run_with(limits, b"[ 1 , 2 , 3 ,      4 ]"), ["[1,2,3,4]"]);
    // QEMU checks only unfinished messages: the token that closes one may cross the limit.
    assert_eq!(run_with(limits, br#"["abcdefghijkl"]"#), [r#"["abcdefghijkl"]"#]);
    assert_eq!(
        run_with(limits, br#"["abcdefghijkl"] ["abcdefghijklm"] ["abcdefghijklmn"] [1]"#),
        [
            r#"["abcdefghijkl"]"#.to_owned(),
            r#"["abcdefghijklm"]"#.to_owned(),
            e("JSON token size limit exceeded"),
            "[1]".to_owned()
        ]
    );
    assert_eq!(
        run_with(limits, br#"["aaaaaaaaaaaaaaaaaaaaaaaaa"] [1]"#),
        [e("JSON token size limit exceeded"), "[1]".to_owned()]
    );
    // A string that is too long at the top level.
    assert_eq!(
        run_with(limits, br#""aaaaaaaaaaaaaaaaaaaaaaaaa" [1]"#),
        [e("JSON token size limit exceeded"), "[1]".to_owned()]
    );
    // A limit error wins over an earlier pending grammar error, as in QEMU.
    assert_eq!(
        run_with(limits, br#"{"a" 1, "b": "xxxxxxxxxxxxxxxxxxxxx"} [2]"#),
        [e("JSON token size limit exceeded"), "[2]".to_owned()]
    );
}

#[test]
fn limits_under_every_split() {
    let limits = Limits { max_message_bytes: 40, max_tokens: 20, max_nesting: 3 };
    let input = br#"[[[[]]]] ["a}]","bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"] [1,1,1,1,1,1,1,1,1,1,1,1] {"ok":"]"}"#;
    let want = [
        e("JSON nesting depth limit exceeded"),
        e("JSON token size limit exceeded"),
        e("JSON token count limit exceeded"),
        r#"{"ok":"]"}"#.to_owned(),
    ];
    assert_eq!(run_with(limits, input), want);
    for cut in 0..=input.len() {
        let mut s = JsonStreamSplitter::new(limits);
        s.feed(&input[..cut]);
        s.feed(&input[cut..]);
        assert_eq!(drain(&mut s), want, "split at {cut}");
    }
}

// ---------------------------------------------------------------- memory

/// The token buffers never exceed the size cap plus a constant, and nothing is buffered while
/// skipping, whatever is fed.
fn assert_bounded(limits: Limits, chunks: impl Iterator<Item = Vec<u8>>) -> JsonStreamSplitter {
    let mut s = JsonStreamSplitter::new(limits);
    for chunk in chunks {
        s.feed(&chunk);
        while s.next_item().is_some() {}
        assert!(
            s.buffered_bytes() <= limits.max_message_bytes + 2 * KEEP_CAPACITY,
            "{} buffered",
            s.buffered_bytes()
        );
    }
    s
}

#[test]
fn endless_string_is_not_buffered_past_the_limit() {
    let limits = Limits { max_message_bytes: 1 << 20, ..Limits::default() };
    let mut first = b"{\"execute\": \"x\", \"id\": \"".to_vec();
    first.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let rest = std::iter::repeat_with(|| vec![b'['; 64 * 1024]).take(100);
    let mut s = assert_bounded(limits, std::iter::once(first).chain(rest));
    assert_eq!(s.buffered_bytes(), 0);
    // Still inside that string: brackets do not count. Close it and the object.
    s.feed(b"\"}");
    s.feed(PROBE);
    assert_eq!(drain(&mut s), [v(json!({"execute": "no-such-cmd"}))]);
}

#[test]
fn endless_nesting_and_numbers_and_whitespace() {
    let limits = Limits { max_message_bytes: 1 << 20, ..Limits::default() };
    let s = assert_bounded(limits, std::iter::repeat_with(|| vec![b'['; 64 * 1024]).take(50));
    assert_eq!(s.buffered_bytes(), 0);
    let mut digits = b"[".to_vec();
    digits.extend(std::iter::repeat_n(b'7', 64 * 1024));
    let s = assert_bounded(
        limits,
        std::iter::once(digits).chain(std::iter::repeat_with(|| vec![b'7'; 64 * 1024]).take(40)),
    );
    assert_eq!(s.buffered_bytes(), 0);
    let mut s = assert_bounded(limits, std::iter::repeat_with(|| vec![b' '; 1 << 20]).take(32));
    assert!(s.is_idle());
    s.feed(PROBE);
    assert_eq!(drain(&mut s), [v(json!({"execute": "no-such-cmd"}))]);
}

#[test]
fn big_message_within_limits_is_parsed_and_released() {
    let big = "x".repeat(3 << 20);
    let input = format!(r#"{{"execute":"x","id":"{big}"}}"#);
    let mut s = JsonStreamSplitter::new(Limits::default());
    for chunk in input.as_bytes().chunks(65536) {
        s.feed(chunk);
    }
    let Some(Ok(Value::Object(m))) = s.next_item() else {
        panic!("no object");
    };
    assert_eq!(m.get("id"), Some(&Value::String(big)));
    assert!(s.buffered_bytes() <= KEEP_CAPACITY);
}

// ---------------------------------------------------------------- properties

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "[ -~]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z\"'\\\\]{0,6}", inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Splits `bytes` at the given (sorted, deduplicated) fractions of its length.
fn chunks_at(bytes: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut out = Vec::new();
    let mut prev = 0;
    for p in points.into_iter().chain([bytes.len()]) {
        out.push(bytes[prev..p.max(prev)].to_vec());
        prev = p.max(prev);
    }
    out
}

/// QEMU's noncharacter rule applies to the input; serde_json accepts them. Keep them out of
/// the generated values.
fn has_noncharacter(v: &Value) -> bool {
    let bad = |s: &str| {
        s.chars().any(|c| {
            let cp = u32::from(c);
            (0xFDD0..=0xFDEF).contains(&cp) || cp & 0xFFFE == 0xFFFE
        })
    };
    match v {
        Value::String(s) => bad(s),
        Value::Array(a) => a.iter().any(has_noncharacter),
        Value::Object(m) => m.iter().any(|(k, v)| bad(k) || has_noncharacter(v)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn serde_json_output_round_trips_in_any_chunks(
        values in prop::collection::vec(arb_value(), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        ascii in any::<bool>(),
    ) {
        prop_assume!(!values.iter().any(has_noncharacter));
        let mut bytes = Vec::new();
        for value in &values {
            if ascii {
                crate::qmp::json_out::to_qmp_line(value, &mut bytes);
            } else {
                bytes.extend(serde_json::to_vec(value).map_err(|e| TestCaseError::fail(e.to_string()))?);
                bytes.push(b'\n');
            }
        }
        let mut s = JsonStreamSplitter::new(Limits::default());
        let mut got = Vec::new();
        for chunk in chunks_at(&bytes, &cuts) {
            s.feed(&chunk);
            got.extend(std::iter::from_fn(|| s.next_item()));
        }
        let want: Vec<Result<Value, JsonError>> = values.into_iter().map(Ok).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn garbage_never_panics_and_a_reset_byte_recovers(
        garbage in prop::collection::vec(any::<u8>(), 0..200),
        cuts in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut bytes = garbage;
        bytes.push(0x01);
        bytes.extend_from_slice(br#"{"execute":"x"}"#);
        let limits = Limits { max_message_bytes: 64, max_tokens: 32, max_nesting: 8 };
        let mut s = JsonStreamSplitter::new(limits);
        let mut got = Vec::new();
        for chunk in chunks_at(&bytes, &cuts) {
            s.feed(&chunk);
            // Each byte ends at most one token or error, plus a number or keyword left open before.
            prop_assert!(s.queued_items() <= chunk.len() + 1);
            prop_assert!(s.buffered_bytes() <= limits.max_message_bytes + 2 * KEEP_CAPACITY);
            got.extend(std::iter::from_fn(|| s.next_item()));
        }
        prop_assert_eq!(got.last(), Some(&Ok(json!({"execute": "x"}))));
        prop_assert!(s.is_idle());
    }

    #[test]
    fn garbage_gives_the_same_items_in_any_chunks(
        garbage in prop::collection::vec(
            prop_oneof![
                Just(b'{'), Just(b'}'), Just(b'['), Just(b']'), Just(b'"'), Just(b'\''),
                Just(b'\\'), Just(b':'), Just(b','), Just(b'1'), Just(b'a'), Just(b' '),
                Just(0x01), Just(0xff), any::<u8>(),
            ],
            0..120,
        ),
        cuts in prop::collection::vec(any::<usize>(), 1..6),
    ) {
        let limits = Limits { max_message_bytes: 48, max_tokens: 24, max_nesting: 6 };
        let whole = run_with(limits, &garbage);
        let mut s = JsonStreamSplitter::new(limits);
        let mut got = Vec::new();
        for chunk in chunks_at(&garbage, &cuts) {
            s.feed(&chunk);
            got.extend(drain(&mut s));
        }
        prop_assert_eq!(got, whole);
    }
}

// ---------------------------------------------------------------- throughput

/// CPU time of the calling thread, so that the figure does not depend on other load.
fn thread_cpu_secs() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

/// 100,000 `{"execute":"query-status","id":N}` messages, 3.7 MB.
fn throughput_input() -> Vec<u8> {
    let mut input = Vec::new();
    for n in 0..100_000 {
        input.extend_from_slice(format!("{{\"execute\":\"query-status\",\"id\":{n}}}").as_bytes());
    }
    input
}

const ROUNDS: usize = 20;

fn report_throughput(what: &str, input: &[u8], count: usize, cpu: f64, wall: f64) {
    assert_eq!(count, 100_000 * ROUNDS);
    println!(
        "{what}: {:.2} M messages/s, {:.0} MB/s (CPU time {cpu:.3}s, wall {wall:.3}s)",
        count as f64 / cpu / 1e6,
        (input.len() * ROUNDS) as f64 / cpu / 1e6,
    );
}

/// The messages of [`throughput_input`] fed in 64 KiB chunks, 20 rounds.
///
/// `cargo test -p monitor --release -- --ignored --nocapture throughput`
#[test]
#[ignore = "measurement, run with --release --ignored --nocapture"]
fn splitter_throughput() {
    let input = throughput_input();
    let (cpu0, wall0) = (thread_cpu_secs(), std::time::Instant::now());
    let mut count = 0usize;
    for _ in 0..ROUNDS {
        let mut s = JsonStreamSplitter::new(Limits::default());
        for chunk in input.chunks(64 * 1024) {
            s.feed(chunk);
            while let Some(item) = s.next_item() {
                count += usize::from(item.is_ok());
            }
        }
    }
    let (cpu, wall) = (thread_cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    report_throughput("JsonStreamSplitter", &input, count, cpu, wall);
}

/// serde_json's streaming deserializer on the same bytes (whole buffer), for comparison.
#[test]
#[ignore = "measurement, run with --release --ignored --nocapture"]
fn serde_json_throughput_for_comparison() {
    let input = throughput_input();
    let (cpu0, wall0) = (thread_cpu_secs(), std::time::Instant::now());
    let mut count = 0usize;
    for _ in 0..ROUNDS {
        for item in serde_json::Deserializer::from_slice(&input).into_iter::<Value>() {
            count += usize::from(item.is_ok());
        }
    }
    let (cpu, wall) = (thread_cpu_secs() - cpu0, wall0.elapsed().as_secs_f64());
    report_throughput("serde_json::StreamDeserializer", &input, count, cpu, wall);
}
