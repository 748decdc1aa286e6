//! `wait-event`: events caused by another monitor, filters, and events that arrive before the
//! wait starts.

mod common;

use common::{Server, vmmon};
use std::thread;
use std::time::Duration;

#[test]
fn waits_for_an_event_caused_by_another_monitor() {
    let s = Server::start();
    let other = s.unix2();
    let t = thread::spawn(move || {
        thread::sleep(Duration::from_millis(500));
        vmmon(&[&other, "-c", "cont", "-c", "stop"], "").expect(0);
    });
    let r = vmmon(
        &[
            &s.unix(),
            "--json",
            "-c",
            "wait-event RESUME 20",
            "-c",
            "wait-event STOP 20",
            "-c",
            "query-status",
        ],
        "",
    )
    .expect(0);
    t.join().unwrap();
    let msgs: Vec<serde_json::Value> = r.stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = msgs.iter().filter_map(|m| m["event"].as_str()).collect();
    assert_eq!(names, ["RESUME", "STOP"]);
    assert_eq!(msgs.last().unwrap()["return"]["status"], "paused");
}

#[test]
fn events_that_came_before_the_wait_are_not_missed() {
    let s = Server::start();
    // QEMU sends RESUME before the reply to cont: the wait must still see it.
    let r = vmmon(&[&s.unix(), "-c", "cont", "-c", "wait-event RESUME 5", "-c", "echo got it"], "").expect(0);
    assert!(r.stdout.contains("got it"), "{}", r.stdout);
}

#[test]
fn filters_select_the_event() {
    let (dir, base, top) = {
        let dir = tempfile::tempdir().unwrap();
        let (b, t) = common::block_images(dir.path());
        (dir, b, t)
    };
    let s = Server::start_in(dir, &common::blockdev_args(&base, &top));
    let r = vmmon(
        &[
            &s.unix(),
            "-c",
            "block-stream job-id=st0 device=top",
            "-c",
            "wait-event JOB_STATUS_CHANGE 20 id=st0 status=concluded",
            "-c",
            "query-block-jobs",
        ],
        "",
    )
    .expect(0);
    assert!(r.stdout.contains("event BLOCK_JOB_COMPLETED"), "{}", r.stdout);
    assert!(r.stdout.trim_end().ends_with("[]"), "{}", r.stdout);
    // A filter that never matches times out.
    let r = vmmon(&[&s.unix(), "-c", "cont", "-c", "wait-event RESUME 0.3 reason=nope"], "").expect(2);
    assert!(r.stderr.contains("RESUME reason=nope"), "{}", r.stderr);
}
