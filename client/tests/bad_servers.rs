//! Misbehaving servers: garbage, a connection closed in the middle of a reply, silence. vmmon
//! must print one clear line, exit with 2, never hang and never panic.

mod common;

use common::{FakeServer, GREETING, negotiate, read_request, reply, vmmon};
use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

fn run_fast(address: &str, extra: &[&str]) -> common::Run {
    let mut args = vec![address, "--timeout", "2"];
    args.extend_from_slice(extra);
    let start = Instant::now();
    let r = vmmon(&args, "");
    assert!(start.elapsed() < Duration::from_secs(15), "took {:?}", start.elapsed());
    r
}

#[test]
fn text_garbage_instead_of_a_greeting() {
    let fake = FakeServer::start(|mut c| {
        let _ = c.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        thread::sleep(Duration::from_secs(5));
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(r.stderr.contains("neither a QMP greeting nor an HMP banner: \"HTTP/1.1 400"), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
}

#[test]
fn binary_garbage_instead_of_a_greeting() {
    let fake = FakeServer::start(|mut c| {
        let _ = c.write_all(&[0x00, 0x01, 0x02, 0xfe, 0x80]);
        thread::sleep(Duration::from_secs(5));
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(r.stderr.contains("\\x00\\x01\\x02"), "{}", r.stderr);
}

#[test]
fn json_that_is_not_a_greeting() {
    let fake = FakeServer::start(|mut c| {
        let _ = c.write_all(b"{\"hello\": \"world\"}\r\n");
        thread::sleep(Duration::from_secs(5));
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(r.stderr.contains("expected a QMP greeting"), "{}", r.stderr);
}

#[test]
fn malformed_json_in_a_reply() {
    let fake = FakeServer::start(|mut c| {
        negotiate(&mut c);
        let _ = read_request(&mut c);
        let _ = c.write_all(b"{\"return\": {\"status\" \"running\"}}\r\n");
        thread::sleep(Duration::from_secs(5));
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(r.stderr.contains("malformed JSON"), "{}", r.stderr);
}

#[test]
fn a_message_that_is_neither_reply_nor_event() {
    let fake = FakeServer::start(|mut c| {
        negotiate(&mut c);
        let _ = read_request(&mut c);
        let _ = c.write_all(b"{\"surprise\": 1}\r\n");
        thread::sleep(Duration::from_secs(5));
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(r.stderr.contains("neither a reply nor an event"), "{}", r.stderr);
}

#[test]
fn connection_closed_in_the_middle_of_a_reply() {
    let fake = FakeServer::start(|mut c| {
        negotiate(&mut c);
        let _ = read_request(&mut c);
        let _ = c.write_all(b"{\"return\": {\"status\": \"runn");
        let _ = c.shutdown(std::net::Shutdown::Write);
        thread::sleep(Duration::from_secs(1));
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(r.stderr.contains("in the middle of a message"), "{}", r.stderr);
}

#[test]
fn connection_closed_in_the_middle_of_the_greeting() {
    let fake = FakeServer::start(|mut c| {
        let _ = c.write_all(&GREETING.as_bytes()[..20]);
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(
        r.stderr.contains("Connection closed by the server in the middle of its greeting"),
        "{}",
        r.stderr
    );
}

#[test]
fn connection_closed_before_any_reply() {
    let fake = FakeServer::start(|mut c| {
        negotiate(&mut c);
        let _ = read_request(&mut c);
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(2);
    assert!(r.stderr.contains("Connection closed by the server"), "{}", r.stderr);
}

#[test]
fn a_server_that_never_greets() {
    let fake = FakeServer::start(|_c| {
        thread::sleep(Duration::from_secs(8));
    });
    let r = vmmon(&[&fake.address(), "--timeout", "1", "-c", "query-status"], "").expect(2);
    assert!(r.stderr.contains("Timed out after 1s waiting for a QMP greeting or HMP banner"), "{}", r.stderr);
}

#[test]
fn a_server_that_never_finishes_negotiation() {
    let fake = FakeServer::start(|mut c| {
        let _ = c.write_all(GREETING.as_bytes());
        thread::sleep(Duration::from_secs(8));
    });
    let r = vmmon(&[&fake.address(), "--timeout", "1", "-c", "query-status"], "").expect(2);
    assert!(r.stderr.contains("waiting for the reply to qmp_capabilities"), "{}", r.stderr);
}

#[test]
fn hmp_server_that_stops_before_the_prompt() {
    let fake = FakeServer::start(|mut c| {
        let _ = c.write_all(b"QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) ");
        let mut buf = [0u8; 256];
        let _ = std::io::Read::read(&mut c, &mut buf);
        let _ = c.write_all(b"VM status: runn");
        thread::sleep(Duration::from_secs(8));
    });
    let r = vmmon(&[&fake.address(), "--timeout", "1", "-c", "info status"], "").expect(2);
    assert!(r.stderr.contains("waiting for the '(qemu)' prompt after 'info status'"), "{}", r.stderr);
}

#[test]
fn hmp_server_that_closes_mid_output() {
    let fake = FakeServer::start(|mut c| {
        let _ = c.write_all(b"QEMU 7.2.22 monitor - type 'help' for more information\r\n(qemu) ");
        let mut buf = [0u8; 256];
        let _ = std::io::Read::read(&mut c, &mut buf);
        let _ = c.write_all(b"info status\r\nVM status: runn");
    });
    let r = run_fast(&fake.address(), &["-c", "info status"]).expect(2);
    assert!(r.stderr.contains("Connection closed by the server after sending"), "{}", r.stderr);
}

/// A well-behaved but unusual server: messages split across writes with pauses, several
/// messages in one write, no line breaks at all, keys in another order.
#[test]
fn framing_does_not_depend_on_lines_or_writes() {
    let fake = FakeServer::start(|mut c| {
        let (a, b) = GREETING.as_bytes().split_at(30);
        let _ = c.write_all(a);
        thread::sleep(Duration::from_millis(100));
        let _ = c.write_all(b);
        let Some(req) = read_request(&mut c) else {
            return;
        };
        reply(&mut c, &req, "{}");
        let Some(req) = read_request(&mut c) else {
            return;
        };
        let id = req["id"].to_string();
        let both = format!(
            "{{\"event\": \"STOP\", \"timestamp\": {{\"seconds\": 1, \"microseconds\": 2}}}}{{\"id\": {id}, \"return\": {{\"status\": \"pa"
        );
        let _ = c.write_all(both.as_bytes());
        thread::sleep(Duration::from_millis(100));
        let _ = c.write_all(b"used\", \"running\": false}}");
        while read_request(&mut c).is_some() {}
    });
    let r = run_fast(&fake.address(), &["--json", "-c", "stop"]).expect(0);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines[0].contains("\"event\":\"STOP\""));
    assert!(lines[1].contains("\"status\":\"paused\""));
}

#[test]
fn an_error_reply_without_class_or_desc() {
    let fake = FakeServer::start(|mut c| {
        negotiate(&mut c);
        let _ = read_request(&mut c);
        let _ = c.write_all(b"{\"error\": 5}\r\n");
        while read_request(&mut c).is_some() {}
    });
    let r = run_fast(&fake.address(), &["-c", "query-status"]).expect(1);
    assert!(r.stderr.contains("Error ("), "{}", r.stderr);
}
