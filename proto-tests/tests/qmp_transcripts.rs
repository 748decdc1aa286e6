//! Golden QMP transcripts (`transcripts/qmp/*.qmp`), each against a fresh
//! `vmm -machine none -S -qmp unix:...` over a real unix socket.

use proto_tests::{Server, run_transcript};

fn run(name: &str) {
    let path = format!("{}/transcripts/qmp/{name}.qmp", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut vmm = Server::vmm(&[
        "-machine",
        "none",
        "-S",
        "-nodefaults",
        "-qmp",
        "unix:{dir}/qmp.sock,server=on,wait=off",
    ]);
    let mut conn = vmm.connect_unix("qmp.sock");
    run_transcript(&mut conn, name, &text);
}

#[test]
fn negotiation() {
    run("negotiation");
}

#[test]
fn envelope() {
    run("envelope");
}

#[test]
fn arguments() {
    run("arguments");
}

#[test]
fn run_state() {
    run("run_state");
}

#[test]
fn ids() {
    run("ids");
}

#[test]
fn oob() {
    run("oob");
}

#[test]
fn qom() {
    run("qom");
}

#[test]
fn client_queries() {
    run("client_queries");
}
