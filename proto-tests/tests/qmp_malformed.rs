//! The malformed-input battery (QEMU's qmp-test `test_malformed` idiom; inputs and texts from the
//! QEMU 7.2 recordings): every bad input gets exactly one error with QEMU's text and no id, and the
//! session recovers: the next well-formed command is answered normally. Where QEMU sends several
//! errors for one bad message (a lexical error mid-object, an over-deep array) we send one.

use std::time::Duration;

use proto_tests::{Conn, Server};
use serde_json::json;

fn start() -> (Server, Conn) {
    let mut vmm = Server::vmm(&[
        "-machine",
        "none",
        "-S",
        "-nodefaults",
        "-qmp",
        "unix:{dir}/qmp.sock,server=on,wait=off",
    ]);
    let mut conn = vmm.connect_unix("qmp.sock");
    conn.negotiate();
    (vmm, conn)
}

/// Sends `input`, expects exactly one error with `desc` (no id), then checks recovery.
fn one_error_then_recovered(conn: &mut Conn, input: &[u8], desc: &str) {
    conn.send_raw(input);
    let got = conn.recv();
    assert_eq!(
        got,
        json!({"error": {"class": "GenericError", "desc": desc}}),
        "input {:?}",
        String::from_utf8_lossy(input)
    );
    assert_recovered(conn, input);
}

/// The next command is answered normally, and nothing else is waiting before it.
fn assert_recovered(conn: &mut Conn, after: &[u8]) {
    conn.send_raw(b"{\"execute\": \"no-such-cmd\", \"id\": \"r\"}\n");
    let got = conn.recv();
    assert_eq!(
        got,
        json!({"error": {"class": "CommandNotFound", "desc": "The command no-such-cmd has not been found"}, "id": "r"}),
        "not recovered after {:?}",
        String::from_utf8_lossy(after)
    );
}

#[test]
fn syntax_errors_one_reply_each_and_recovery() {
    let (_vmm, mut c) = start();
    let cases: &[(&[u8], &str)] = &[
        (b"{ \"execute\": }\n", "JSON parse error, expecting value"),
        (b"{\"execute\":\"query-status\",}\n", "JSON parse error, expecting value"),
        (b"{\"execute\" \"query-status\"}\n", "JSON parse error, missing : in object pair"),
        (b"{\"execute\":\"query-status\", \"id\":1, \"id\":2}\n", "JSON parse error, duplicate key"),
        (b"{\"execute\":\"query-status\",\"id\":nul}\n", "JSON parse error, invalid keyword 'nul'"),
        (b"hello\n", "JSON parse error, invalid keyword 'hello'"),
        (b"}\n", "JSON parse error, expecting value"),
        (b"]\n", "JSON parse error, expecting value"),
        (b"\xff\n", "JSON parse error, stray '\u{FFFD}'"),
        (
            b"{\"execute\":\"query-status\",\"id\":\"\\ud800\"}\n",
            "JSON parse error, \\ud800 is not a valid Unicode character",
        ),
        // QEMU answers these two with a second `expecting value` error; we answer once.
        (b"{\"execute\":\"query-status\",\"id\":\"\xff\"}\n", "JSON parse error, stray '\"\u{FFFD}'"),
        (b"{\"execute\":\"query-status\",\"id\":\"a\x01b\"}\n", "JSON parse error, stray '\"a\u{1}'"),
        (b"{\"execute\": query-status}\n", "JSON parse error, stray '-s'"),
    ];
    for (input, desc) in cases {
        one_error_then_recovered(&mut c, input, desc);
    }
}

#[test]
fn not_objects() {
    let (_vmm, mut c) = start();
    for input in [
        &b"[1,2]\n"[..],
        b"\"hello\"\n",
        b"42\n",
        b"null\n",
        b"true\n",
        b"[{\"execute\":\"query-status\"}]\n",
    ] {
        one_error_then_recovered(&mut c, input, "QMP input must be a JSON object");
    }
}

#[test]
fn control_character_resets_the_parser() {
    let (_vmm, mut c) = start();
    // A client abandons a half-sent object and forces a reset with 0x01 (QMP spec).
    c.send_raw(b"{\"execute\": \"query-st");
    c.send_raw(b"\x01");
    let got = c.recv();
    assert_eq!(got["error"]["class"], "GenericError", "{got}");
    assert!(got["error"]["desc"].as_str().unwrap().starts_with("JSON parse error"), "{got}");
    assert!(got.get("id").is_none());
    assert_recovered(&mut c, b"{...\\x01");
    // Garbage then a command in one write: one error, then the command is answered.
    c.send_raw(b"\x00\xff{\"execute\":\"query-status\",\"id\":\"after\"}\n");
    let first = c.recv();
    assert!(first.get("error").is_some(), "{first}");
    let second = c.recv();
    assert_eq!(second["id"], "after", "{second}");
    assert_eq!(second["return"]["status"], "prelaunch");
}

#[test]
fn nesting_limit_one_error() {
    let (_vmm, mut c) = start();
    let ok = format!("{}{}\n", "[".repeat(1024), "]".repeat(1024));
    one_error_then_recovered(&mut c, ok.as_bytes(), "QMP input must be a JSON object");
    // QEMU sends 1,025 errors for this; we send one and resynchronise.
    let deep = format!("{}{}\n", "[".repeat(1025), "]".repeat(1025));
    one_error_then_recovered(&mut c, deep.as_bytes(), "JSON nesting depth limit exceeded");
    c.expect_quiet(200);
}

#[test]
fn non_finite_number_is_rejected_not_echoed_as_inf() {
    let (_vmm, mut c) = start();
    c.send_raw(b"{\"execute\": \"query-status\", \"id\": 1e999}\n");
    let got = c.recv();
    assert!(got.get("error").is_some(), "{got}");
    assert_recovered(&mut c, b"1e999");
}

#[test]
fn splits_and_batches() {
    let (_vmm, mut c) = start();
    // One object over several writes.
    for part in [&b"{\"exe"[..], b"cute\": \"query-st", b"atus\", \"id\"", b": 1}"] {
        c.send_raw(part);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(c.recv()["id"], 1);
    // Several objects in one write, with whitespace between and \r\n after.
    c.send_raw(b"{\"execute\":\"query-status\",\"id\":2}{\"execute\":\"query-version\",\"id\":3} \t\r\n\r\n{\"execute\":\"query-name\",\"id\":4}\r\n");
    for id in [2, 3, 4] {
        let r = c.recv();
        assert_eq!(r["id"], id, "{r}");
        assert!(r.get("return").is_some(), "{r}");
    }
    // Blank lines alone get no reply.
    c.send_raw(b"   \r\n\n\t\n");
    c.expect_quiet(200);
    // Single quotes are accepted; output is double-quoted ASCII.
    c.send_raw(b"{'execute':'query-status','id':'sq\\u00e9'}\n");
    let line = c.recv_line_timeout(Duration::from_secs(5)).unwrap().unwrap();
    assert!(line.contains("\"id\":\"sq\\u00E9\""), "{line}");
}

#[test]
fn hostile_input_does_not_stall_the_server() {
    let (mut vmm, mut c) = start();
    // A second client keeps being served while the first streams an endless string.
    let mut other = vmm.connect_unix("qmp.sock");
    other.negotiate();
    c.send_raw(b"{\"execute\": \"");
    let chunk = vec![b'a'; 1 << 20];
    for _ in 0..16 {
        c.send_raw(&chunk);
        let r = other.execute("query-status", None);
        assert!(r.get("return").is_some(), "{r}");
    }
    c.send_raw(b"\x01");
    let got = c.recv();
    assert!(got.get("error").is_some(), "{got}");
    assert_recovered(&mut c, b"16 MiB string");
}
