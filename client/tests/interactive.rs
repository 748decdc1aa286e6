//! The REPL in a real terminal (tmux): completion from the live schema, history recall and
//! persistence, an event printed while a line is being typed, HMP completion, and the
//! block-job progress bar.

mod common;

use common::{Server, Tmux, VMMON, last_line, vmmon};
use std::path::Path;
use std::time::Duration;

fn repl_command(address: &str, state: &Path) -> String {
    format!("env XDG_STATE_HOME={} TERM=xterm {VMMON} {address}", state.display())
}

#[test]
fn completion_history_and_events_while_typing() {
    let s = Server::start();
    let state = tempfile::tempdir().unwrap();
    let t = Tmux::start(&repl_command(&s.unix(), state.path()));
    t.wait_for("the prompt", Duration::from_secs(15), |s| last_line(s) == "(qmp)");

    // A command name from the live schema.
    t.type_text("query-statu");
    t.keys(&["Tab"]);
    t.wait_for("command completion", Duration::from_secs(10), |s| last_line(s) == "(qmp) query-status");
    t.keys(&["Enter"]);
    t.wait_text("\"status\": \"prelaunch\"");

    // An argument name, then an enum value.
    t.type_text("block-stream dev");
    t.keys(&["Tab"]);
    t.wait_for("argument completion", Duration::from_secs(10), |s| {
        last_line(s) == "(qmp) block-stream device="
    });
    t.keys(&["C-u"]);
    // (block-stream's on-error is an enum on QEMU and on vmm alike.)
    t.type_text("block-stream device=d0 on-error=ign");
    t.keys(&["Tab"]);
    t.wait_for("enum value completion", Duration::from_secs(10), |s| {
        last_line(s).starts_with("(qmp) block-stream device=d0 on-error=ignore")
    });
    t.keys(&["C-u"]);

    // History: Up recalls the last command; running it again gives a second reply.
    t.wait_for("an empty prompt", Duration::from_secs(10), |s| last_line(s) == "(qmp)");
    t.keys(&["Up"]);
    t.wait_for("history recall", Duration::from_secs(10), |s| last_line(s) == "(qmp) query-status");
    t.keys(&["Enter"]);
    t.wait_for("the second reply", Duration::from_secs(10), |s| {
        s.matches("\"status\": \"prelaunch\"").count() == 2
    });

    // An event caused by another monitor while a line is half typed.
    t.type_text("query-ver");
    t.wait_for("the typed text", Duration::from_secs(10), |s| last_line(s) == "(qmp) query-ver");
    vmmon(&[&s.unix2(), "-c", "cont", "-c", "stop"], "").expect(0);
    let screen = t.wait_text("event STOP");
    assert!(screen.contains("event RESUME"), "{screen}");
    assert_eq!(last_line(&screen), "(qmp) query-ver", "{screen}");
    // The line is intact: finishing it runs query-version.
    t.type_text("sion");
    t.keys(&["Enter"]);
    t.wait_text("\"micro\":");

    // Leave; the history was saved and is there for the next session.
    t.keys(&["C-d"]);
    let history = state.path().join("vmmon").join("history");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(&history).unwrap_or_default().contains("query-version") {
        assert!(std::time::Instant::now() < deadline, "history not saved in {}", history.display());
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(t);
    let t = Tmux::start(&repl_command(&s.unix(), state.path()));
    t.wait_for("the prompt", Duration::from_secs(15), |s| last_line(s) == "(qmp)");
    t.keys(&["Up"]);
    t.wait_for("history from the previous session", Duration::from_secs(10), |s| {
        last_line(s) == "(qmp) query-version"
    });
}

#[test]
fn hmp_completion_from_the_servers_help() {
    let s = Server::start();
    let state = tempfile::tempdir().unwrap();
    let addr = format!("telnet:127.0.0.1:{}", s.hmp_telnet);
    let t = Tmux::start(&repl_command(&addr, state.path()));
    t.wait_for("the prompt", Duration::from_secs(15), |s| last_line(s) == "(qemu)");
    t.type_text("info statu");
    t.keys(&["Tab"]);
    t.wait_for("info subcommand completion", Duration::from_secs(10), |s| {
        last_line(s) == "(qemu) info status"
    });
    t.keys(&["Enter"]);
    t.wait_text("VM status: paused (prelaunch)");
    t.type_text("system_res");
    t.keys(&["Tab"]);
    t.wait_for("command completion", Duration::from_secs(10), |s| last_line(s) == "(qemu) system_reset");
}

#[test]
fn block_job_progress_bar() {
    let dir = tempfile::tempdir().unwrap();
    let (base, top) = common::block_images(dir.path());
    let s = Server::start_in(dir, &common::blockdev_args(&base, &top));
    let state = tempfile::tempdir().unwrap();
    let t = Tmux::start(&repl_command(&s.unix(), state.path()));
    t.wait_for("the prompt", Duration::from_secs(15), |s| last_line(s) == "(qmp)");
    // 8 MiB at 4 MiB/s: about two seconds of progress.
    t.type_text("block-stream job-id=st0 device=top speed=4194304");
    t.keys(&["Enter"]);
    let screen = t.wait_text("stream st0 [");
    assert!(screen.contains("/8.0 MiB"), "{screen}");
    assert!(screen.contains("(limit 4.0 MiB/s)"), "{screen}");
    // Typing while the bar is live keeps the line.
    t.type_text("query-block-jo");
    let screen = t.wait_text("event BLOCK_JOB_COMPLETED");
    let screen = if screen.contains("stream st0 [") {
        t.wait_for("the bar to go away", Duration::from_secs(10), |s| !s.contains("stream st0 ["))
    } else {
        screen
    };
    assert_eq!(last_line(&screen), "(qmp) query-block-jo", "{screen}");
}
