//! Many clients on one socket (QEMU serves one at a time; we serve all): each gets its own
//! greeting and negotiation, replies stay per client and in order, events reach every negotiated
//! client and no un-negotiated one, and a client that stops reading neither stalls the others nor
//! makes the server's memory grow without bound.

use std::time::{Duration, Instant};

use proto_tests::{Conn, Server};
use serde_json::{Value, json};

fn start() -> Server {
    Server::vmm(&["-machine", "none", "-S", "-nodefaults", "-qmp", "unix:{dir}/qmp.sock,server=on,wait=off"])
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS")
}

#[test]
fn concurrent_pipelining_clients_keep_their_order() {
    let mut vmm = start();
    let clients = 50;
    let per_client = 200;
    let mut conns: Vec<Conn> = (0..clients).map(|_| vmm.connect_unix("qmp.sock")).collect();
    // Every client gets its own greeting before anyone negotiates.
    for c in &mut conns {
        assert!(c.recv().get("QMP").is_some());
    }
    for c in &mut conns {
        assert_eq!(c.execute("qmp_capabilities", None), json!({"return": {}}));
    }
    let handles: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(n, mut c)| {
            std::thread::spawn(move || {
                let mut batch = Vec::new();
                for i in 0..per_client {
                    batch.extend_from_slice(
                        format!("{{\"execute\":\"query-status\",\"id\":[{n},{i}]}}").as_bytes(),
                    );
                }
                c.send_raw(&batch);
                for i in 0..per_client {
                    let r = c.recv_reply();
                    assert_eq!(r["id"], json!([n, i]), "client {n} reply {i} out of order: {r}");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread");
    }
}

#[test]
fn events_reach_every_negotiated_client_only() {
    let mut vmm = start();
    let mut a = vmm.connect_unix("qmp.sock");
    let mut b = vmm.connect_unix("qmp.sock");
    let mut unnegotiated = vmm.connect_unix("qmp.sock");
    a.negotiate();
    b.negotiate();
    assert!(unnegotiated.recv().get("QMP").is_some());
    assert_eq!(a.execute("cont", None), json!({"return": {}}));
    let ev = b.recv();
    assert_eq!(ev["event"], "RESUME", "{ev}");
    assert!(ev.get("data").is_none());
    unnegotiated.expect_quiet(300);
    // After negotiating it gets the next event but not the old one.
    assert_eq!(unnegotiated.execute("qmp_capabilities", None), json!({"return": {}}));
    a.send(&json!({"execute": "stop"}));
    assert_eq!(a.recv()["event"], "STOP");
    assert_eq!(a.recv(), json!({"return": {}}));
    assert_eq!(unnegotiated.recv()["event"], "STOP");
    assert_eq!(b.recv()["event"], "STOP");
}

#[test]
fn a_client_that_never_reads_does_not_stall_others_or_grow_memory() {
    let mut vmm = start();
    let pid = vmm.child.id();
    let mut slow = vmm.connect_unix("qmp.sock");
    slow.negotiate();
    let mut fast = vmm.connect_unix("qmp.sock");
    fast.negotiate();
    let before = rss_kib(pid);
    // Each reply is several KB; the slow client asks for far more than any socket buffer holds.
    let mut batch = Vec::new();
    for _ in 0..2000 {
        batch.extend_from_slice(b"{\"execute\":\"query-qmp-schema\"}");
    }
    let writer = std::thread::spawn(move || {
        // The server stops reading this client once its replies back up: this write blocks.
        slow.send_raw(&batch);
        slow
    });
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    for i in 0..200 {
        let r = fast.execute("query-status", Some(json!({})));
        assert!(r.get("return").is_some(), "fast client reply {i}: {r}");
    }
    let elapsed = t.elapsed();
    assert!(elapsed < Duration::from_secs(10), "fast client was stalled: {elapsed:?}");
    // Events still reach the fast client (the event precedes the reply).
    fast.send(&json!({"execute": "cont"}));
    assert_eq!(fast.recv()["event"], "RESUME");
    assert_eq!(fast.recv(), json!({"return": {}}));
    let after = rss_kib(pid);
    assert!(after < before + 64 * 1024, "server RSS grew from {before} KiB to {after} KiB");
    drop(writer);
}

#[test]
fn second_client_gets_its_own_negotiation_state() {
    let mut vmm = start();
    let mut a = vmm.connect_unix("qmp.sock");
    a.negotiate();
    let mut b = vmm.connect_unix("qmp.sock");
    assert!(b.recv().get("QMP").is_some());
    let r = b.execute("query-status", None);
    assert_eq!(r["error"]["class"], "CommandNotFound", "{r}");
    let r: Value = a.execute("query-status", None);
    assert_eq!(r["return"]["status"], "prelaunch");
}

#[test]
fn yank_closes_every_connection_of_a_chardev() {
    let mut vmm = start();
    let mut a = vmm.connect_unix("qmp.sock");
    a.negotiate();
    let mut b = vmm.connect_unix("qmp.sock");
    b.negotiate();
    b.send(&json!({"execute": "yank", "arguments": {"instances": [{"type": "chardev", "id": "compat_monitor0"}]}}));
    // Both connections are closed; the listener keeps accepting.
    a.expect_eof();
    let mut c = vmm.connect_unix("qmp.sock");
    c.negotiate();
    assert_eq!(c.execute("query-status", None)["return"]["status"], "prelaunch");
}
