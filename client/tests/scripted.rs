//! Scripted sessions (-c, script files, stdin) over unix, tcp and telnet, against the server
//! chosen by VMMON_TEST_SERVER (default qemu-system-x86_64).

mod common;

use common::{Server, vmmon};

#[test]
fn qmp_over_unix_socket() {
    let s = Server::start();
    let r = vmmon(&[&s.unix(), "-c", "query-status", "-c", "query-version"], "").expect(0);
    assert!(r.stdout.contains("\"status\": \"prelaunch\""), "{}", r.stdout);
    assert!(r.stdout.contains("\"major\""), "{}", r.stdout);
    // A bare path works too.
    let path = s.qmp.to_str().unwrap();
    let r = vmmon(&[path, "-c", "query-status"], "").expect(0);
    assert!(r.stdout.contains("prelaunch"));
}

#[test]
fn qmp_over_tcp_with_events_and_compact_output() {
    let s = Server::start();
    let addr = format!("tcp:127.0.0.1:{}", s.qmp_tcp);
    let r = vmmon(&[&addr, "--compact", "-c", "cont", "-c", "query-status"], "").expect(0);
    assert!(r.stdout.contains("event RESUME"), "{}", r.stdout);
    assert!(r.stdout.contains("\"status\":\"running\""), "{}", r.stdout);
}

#[test]
fn hmp_over_telnet() {
    let s = Server::start();
    let addr = format!("telnet:127.0.0.1:{}", s.hmp_telnet);
    let r = vmmon(&[&addr, "-c", "info status", "-c", "stop", "-c", "info status"], "").expect(0);
    assert_eq!(r.stdout, "VM status: paused (prelaunch)\nVM status: paused (prelaunch)\n");
    // The same port as plain tcp: the telnet negotiation is recognised and stripped.
    let addr = format!("tcp:127.0.0.1:{}", s.hmp_telnet);
    let r = vmmon(&[&addr, "-c", "help stop"], "").expect(0);
    assert!(r.stdout.starts_with("stop"), "{}", r.stdout);
}

#[test]
fn hmp_over_unix_socket_and_hmp_errors() {
    let s = Server::start();
    let addr = format!("unix:{}", s.hmp.display());
    let r = vmmon(&[&addr, "-c", "cont", "-c", "info status"], "").expect(0);
    assert_eq!(r.stdout, "VM status: running\n");
    // An unknown HMP command is a failed command: exit 1, the rest is not run.
    let r = vmmon(&[&addr, "-c", "bogus", "-c", "echo not reached"], "").expect(1);
    assert!(r.stdout.contains("unknown command: 'bogus'"), "{}", r.stdout);
    assert!(!r.stdout.contains("not reached"));
}

#[test]
fn hmp_through_qmp_with_prefix_and_mode() {
    let s = Server::start();
    let r = vmmon(&[&s.unix(), "-c", "!info status"], "").expect(0);
    assert_eq!(r.stdout, "VM status: paused (prelaunch)\n");
    let r = vmmon(&[&s.unix(), "--hmp", "-c", "info status"], "").expect(0);
    assert_eq!(r.stdout, "VM status: paused (prelaunch)\n");
    let r = vmmon(
        &[&s.unix(), "-c", "mode hmp", "-c", "info status", "-c", "mode qmp", "-c", "query-status"],
        "",
    )
    .expect(0);
    assert!(r.stdout.starts_with("VM status: paused (prelaunch)\n{"), "{}", r.stdout);
    let r = vmmon(&[&s.unix(), "-c", "!bogus"], "").expect(1);
    assert!(r.stdout.contains("unknown command"), "{}", r.stdout);
}

#[test]
fn script_file_with_comments_and_multiline_json() {
    let s = Server::start();
    let script = s.dir.path().join("test.vmm");
    std::fs::write(
        &script,
        "# start the guest\ncont\n\n{\"execute\": \"query-status\",\n \"id\": \"mine\"}\necho done\n",
    )
    .unwrap();
    let r = vmmon(&[&s.unix(), script.to_str().unwrap()], "").expect(0);
    assert!(r.stdout.contains("\"status\": \"running\""), "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with("done"), "{}", r.stdout);
}

#[test]
fn commands_on_stdin_and_json_output() {
    let s = Server::start();
    let r = vmmon(
        &[&s.unix(), "--json"],
        "stop\nquery-status\n{\"execute\": \"query-name\", \"id\": 42}\nnope\n",
    )
    .expect(1);
    let lines: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    // stop on a paused guest: no event; the replies come with their ids.
    assert_eq!(lines[0]["return"], serde_json::json!({}));
    assert_eq!(lines[1]["return"]["status"], "prelaunch");
    assert_eq!(lines[2]["id"], 42);
    assert_eq!(lines[3]["error"]["class"], "CommandNotFound");
    assert_eq!(lines.len(), 4);
}

#[test]
fn qmp_shell_arguments_are_typed_from_the_schema() {
    let s = Server::start();
    // `command-line` is a str: 123 must reach the server as the string "123" (a number would get
    // "Invalid parameter type for 'command-line', expected: string"). Both servers answer an
    // unknown HMP command with a returned text, not an error.
    let r = vmmon(&[&s.unix(), "-c", "human-monitor-command command-line=123"], "").expect(0);
    assert!(r.stdout.contains("unknown command: '123'"), "{}", r.stdout);
    assert!(!r.stderr.contains("Invalid parameter type"), "{}", r.stderr);
    // `property` is a str too: 123 stays a string, and the server looks it up.
    let r = vmmon(&[&s.unix(), "-c", "qom-get path=/machine property=123"], "").expect(1);
    assert!(r.stderr.contains("Error (GenericError): Property 'none-machine.123' not found"), "{}", r.stderr);
    let r = vmmon(&[&s.unix(), "-c", "qom-get path=/machine property=type"], "").expect(0);
    assert_eq!(r.stdout, "none-machine\n");
    // A bool-typed argument given as `true` reaches the server as JSON true (a string would get
    // "Invalid parameter type for 'flat', expected: boolean").
    let r = vmmon(&[&s.unix(), "--compact", "-c", "query-named-block-nodes flat=true"], "");
    assert!(!r.stderr.contains("Invalid parameter type"), "{}", r.stderr);
    let r = r.expect(0);
    assert_eq!(r.stdout.trim(), "[]", "{}", r.stdout);
    // Nested keys and JSON values.
    let r = vmmon(
        &[
            &s.unix(),
            "--compact",
            "-c",
            "query-cpu-model-expansion type=static model.name=max model.props={}",
        ],
        "",
    );
    assert!(!r.stderr.contains("Invalid parameter type"), "{}", r.stderr);
    assert!(!r.stderr.contains("is missing"), "{}", r.stderr);
}

#[test]
fn help_for_client_and_schema() {
    let s = Server::start();
    let r = vmmon(&[&s.unix(), "-c", "help", "-c", "help block-stream"], "").expect(0);
    assert!(r.stdout.contains("wait-event NAME [TIMEOUT]"), "{}", r.stdout);
    assert!(r.stdout.contains("  device=str\n"), "{}", r.stdout);
    assert!(r.stdout.contains("  speed=int (optional)\n"), "{}", r.stdout);
    let r = vmmon(&[&s.unix(), "-c", "help no-such-command"], "").expect(1);
    assert!(r.stderr.contains("No command 'no-such-command'"), "{}", r.stderr);
}

#[test]
fn quit_ends_the_server_cleanly() {
    let mut s = Server::start();
    let r = vmmon(&[&s.unix(), "-c", "quit"], "").expect(0);
    assert!(r.stdout.contains("event SHUTDOWN"), "{}", r.stdout);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while s.running() {
        assert!(std::time::Instant::now() < deadline, "server still running after quit");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
