//! Exit status for each failure class: 0 success, 1 the first failed command (unless
//! --keep-going), 2 connection failure or timeout.

mod common;

use common::{FakeServer, Server, vmmon};
use std::time::{Duration, Instant};

#[test]
fn success_is_zero() {
    let s = Server::start();
    vmmon(&[&s.unix(), "-c", "query-status", "-c", "echo ok"], "").expect(0);
}

#[test]
fn first_qmp_error_stops_with_one() {
    let s = Server::start();
    let r =
        vmmon(&[&s.unix(), "-c", "query-status", "-c", "no-such-command", "-c", "echo after"], "").expect(1);
    assert!(
        r.stderr.contains("Error (CommandNotFound): The command no-such-command has not been found"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains("after"), "{}", r.stdout);
    // A wrong argument is a QMP error too.
    let r = vmmon(&[&s.unix(), "-c", "query-status bogus=1"], "").expect(1);
    assert!(r.stderr.contains("Parameter 'bogus' is unexpected"), "{}", r.stderr);
}

#[test]
fn keep_going_runs_everything_and_still_fails() {
    let s = Server::start();
    let r = vmmon(
        &[&s.unix(), "--keep-going", "-c", "no-such-command", "-c", "echo after", "-c", "also-bad"],
        "",
    )
    .expect(1);
    assert!(r.stdout.contains("after"), "{}", r.stdout);
    assert_eq!(r.stderr.matches("CommandNotFound").count(), 2, "{}", r.stderr);
}

#[test]
fn unparsable_input_is_a_failed_command() {
    let s = Server::start();
    let r = vmmon(&[&s.unix(), "-c", "query-status novalue"], "").expect(1);
    assert!(r.stderr.contains("Expected key=value, got 'novalue'"), "{}", r.stderr);
}

#[test]
fn missing_socket_is_two() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing.sock");
    let r = vmmon(&[path.to_str().unwrap(), "-c", "query-status"], "").expect(2);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("vmmon: Cannot connect to unix:"), "{}", r.stderr);
    assert!(r.stderr.contains("No such file or directory"), "{}", r.stderr);
}

#[test]
fn refused_socket_is_two() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dead.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let r = vmmon(&[path.to_str().unwrap(), "-c", "query-status"], "").expect(2);
    assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
    let port = common::free_port();
    let r = vmmon(&[&format!("tcp:127.0.0.1:{port}"), "-c", "query-status"], "").expect(2);
    assert!(r.stderr.contains("Connection refused"), "{}", r.stderr);
}

#[test]
fn bad_usage_is_two() {
    let r = vmmon(&["tcp:nohost", "-c", "x"], "").expect(2);
    assert!(r.stderr.contains("HOST:PORT"), "{}", r.stderr);
    let r = vmmon(&["/tmp/x.sock", "/nonexistent/script.vmm"], "").expect(2);
    assert!(r.stderr.contains("Cannot open script"), "{}", r.stderr);
}

#[test]
fn server_gone_mid_script_is_two() {
    let s = Server::start();
    let r = vmmon(&[&s.unix(), "-c", "quit", "-c", "query-status"], "").expect(2);
    assert!(r.stderr.contains("Connection closed by the server"), "{}", r.stderr);
}

#[test]
fn wait_event_timeout_is_two() {
    let s = Server::start();
    let start = Instant::now();
    let r = vmmon(&[&s.unix(), "-c", "wait-event RESUME 0.5"], "").expect(2);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(r.stderr.contains("Timed out after 500ms waiting for event RESUME"), "{}", r.stderr);
}

#[test]
fn retry_waits_for_a_starting_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("later.sock");
    let p2 = path.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let listener = std::os::unix::net::UnixListener::bind(&p2).unwrap();
        let (mut c, _) = listener.accept().unwrap();
        common::negotiate(&mut c);
        let req = common::read_request(&mut c).unwrap();
        common::reply(&mut c, &req, "{\"status\": \"running\", \"running\": true}");
        std::thread::sleep(Duration::from_millis(200));
    });
    let addr = path.to_str().unwrap();
    let r = vmmon(&[addr, "--retry", "10", "--compact", "-c", "query-status"], "").expect(0);
    assert!(r.stdout.contains("\"running\":true"), "{}", r.stdout);
    t.join().unwrap();
    // Without --retry the same situation fails at once.
    let dir2 = tempfile::tempdir().unwrap();
    let r = vmmon(&[dir2.path().join("x.sock").to_str().unwrap(), "-c", "query-status"], "");
    assert_eq!(r.code, 2);
}

#[test]
fn a_server_that_never_replies_times_out_with_two() {
    let fake = FakeServer::start(|mut c| {
        common::negotiate(&mut c);
        // Read commands, answer nothing.
        while common::read_request(&mut c).is_some() {}
    });
    let start = Instant::now();
    let r = vmmon(&[&fake.address(), "--timeout", "1", "-c", "query-status"], "").expect(2);
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(r.stderr.contains("Timed out after 1s waiting for the reply to query-status"), "{}", r.stderr);
}
