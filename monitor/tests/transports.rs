//! Real listeners on temporary unix sockets and loopback ports, with a fake control loop; the tests
//! talk bytes as a client would.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{read_to_eof, read_until, response};
use monitor::Monitor;
use monitor::transport::{self, MonitorSpecs, Running, telnet::NEGOTIATION};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};

const BANNER: &[u8] = b"QEMU 7.2.0 monitor - type 'help' for more information\r\n(qemu) ";

async fn start(monitor: &Arc<Monitor>, options: &[(&str, String)]) -> Running {
    let mut specs = MonitorSpecs::new("vmm-test");
    for (k, v) in options {
        specs.add_option(k, v).unwrap_or_else(|e| panic!("{}", e.report("vmm-test")));
    }
    transport::start(monitor.clone(), specs).await.unwrap_or_else(|e| panic!("{}", e.report("vmm-test")))
}

fn sock(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

fn unix_spec(path: &Path) -> String {
    format!("unix:{},server=on,wait=off", path.display())
}

/// Reads one QMP line (ending in `\r\n`) as JSON.
async fn qmp_line<R: tokio::io::AsyncRead + Unpin>(r: &mut BufReader<R>) -> Value {
    let mut line = Vec::new();
    let n = tokio::time::timeout(common::TIMEOUT, r.read_until(b'\n', &mut line))
        .await
        .expect("timed out")
        .unwrap();
    assert!(n > 0, "EOF");
    assert!(line.ends_with(b"\r\n"));
    serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&line)))
}

async fn qmp_connect(path: &Path) -> BufReader<UnixStream> {
    BufReader::new(UnixStream::connect(path).await.unwrap())
}

#[tokio::test]
async fn hmp_over_unix_socket_banner_prompt_and_info_status() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "hmp.sock");
    let _run = start(&m, &[("monitor", unix_spec(&path))]).await;
    let mut c = UnixStream::connect(&path).await.unwrap();
    assert_eq!(read_until(&mut c, b"(qemu) ").await, BANNER);
    // `\r\n`: the command, then an empty line, so two prompts (as QEMU).
    c.write_all(b"info status\r\n").await.unwrap();
    let got = read_until(&mut c, b"(qemu) \r\n(qemu) ").await;
    let echo = b"i\x1b[K\x1b[Din\x1b[K\x1b[D\x1b[Dinf\x1b[K\x1b[D\x1b[D\x1b[Dinfo\x1b[K\x1b[D\x1b[D\x1b[D\x1b[Dinfo \x1b[K\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dinfo s\x1b[K\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dinfo st\x1b[K\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dinfo sta\x1b[K\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dinfo stat\x1b[K\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dinfo statu\x1b[K\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[D\x1b[Dinfo status\x1b[K\r\n";
    let mut expected = echo.to_vec();
    expected.extend_from_slice(b"VM status: paused (prelaunch)\r\n(qemu) \r\n(qemu) ");
    assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected));
    // A bare `\n` gives one prompt.
    c.write_all(b"\n").await.unwrap();
    assert_eq!(read_until(&mut c, b"(qemu) ").await, b"\r\n(qemu) ");
}

#[tokio::test]
async fn backspace_editing_history_and_quit() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "hmp.sock");
    let _run = start(&m, &[("monitor", unix_spec(&path))]).await;
    let mut c = UnixStream::connect(&path).await.unwrap();
    read_until(&mut c, BANNER).await;
    // Recorded against QEMU: `info` + 4 DEL + `help stop` runs `help stop`.
    c.write_all(b"info\x7f\x7f\x7f\x7fhelp stop\r").await.unwrap();
    let got = read_until(&mut c, b"(qemu) ").await;
    assert_eq!(response(&got), "stop|s  -- stop emulation\r\n");
    c.write_all(b"cont\r").await.unwrap();
    read_until(&mut c, b"(qemu) ").await;
    // Up arrow twice recalls `help stop`; Ctrl-W deletes `stop`; `cont` goes in its place.
    c.write_all(b"\x1b[A\x1b[A\x17info\r").await.unwrap();
    let got = read_until(&mut c, b"(qemu) ").await;
    assert!(
        response(&got).starts_with("info balloon") || response(&got).contains("info status"),
        "{:?}",
        response(&got)
    );
    c.write_all(b"info history\r").await.unwrap();
    let got = read_until(&mut c, b"(qemu) ").await;
    assert_eq!(response(&got), "0: 'help stop'\r\n1: 'cont'\r\n2: 'help info'\r\n3: 'info history'\r\n");
    // `quit` runs the QMP command and closes the connection.
    c.write_all(b"quit\r").await.unwrap();
    let rest = read_to_eof(&mut c).await;
    assert!(!String::from_utf8_lossy(&rest).contains("(qemu)"), "no prompt after quit");
    let status = m.registry.get("query-status").unwrap().call(m.clone(), Default::default()).await.unwrap();
    assert_eq!(status["status"], "shutdown");
}

#[tokio::test]
async fn tab_completion_over_the_wire() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "hmp.sock");
    let _run = start(&m, &[("monitor", unix_spec(&path))]).await;
    let mut c = UnixStream::connect(&path).await.unwrap();
    read_until(&mut c, BANNER).await;
    c.write_all(b"c\t").await.unwrap();
    let got = read_until(&mut c, b"(qemu) c\x1b[K").await;
    assert_eq!(got, b"c\x1b[K\r\nc         commit    cont      cpu       \r\n(qemu) c\x1b[K");
    c.write_all(b"\x15\x7fin\tst\t\r").await.unwrap();
    let got = read_until(&mut c, b"(qemu) ").await;
    assert!(String::from_utf8_lossy(&got).ends_with("VM status: paused (prelaunch)\r\n(qemu) "), "{got:?}");
}

#[tokio::test]
async fn telnet_negotiation_and_session() {
    let m = common::monitor();
    let run = start(&m, &[("monitor", "telnet:127.0.0.1:0,server=on,wait=off".to_string())]).await;
    let port = run.tcp_port("compat_monitor0").unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut expected = NEGOTIATION.to_vec();
    expected.extend_from_slice(BANNER);
    assert_eq!(read_until(&mut c, b"(qemu) ").await, expected);
    // A telnet client's answers, interleaved with typing, are swallowed.
    c.write_all(b"\xff\xfd\x01\xff\xfd\x03info\xff\xfb\x00 status\r\0").await.unwrap();
    let got = read_until(&mut c, b"(qemu) ").await;
    assert_eq!(response(&got), "VM status: paused (prelaunch)\r\n");
    let chardevs = m.chardevs.list();
    assert_eq!(chardevs[0].label, "compat_monitor0");
    assert!(chardevs[0].filename.starts_with(&format!("telnet:127.0.0.1:{port},server=on <-> 127.0.0.1:")));
    drop(c);
}

#[tokio::test]
async fn qmp_over_unix_and_telnet() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "qmp.sock");
    let run = start(&m, &[("qmp", unix_spec(&path)), ("qmp", "telnet::0,server=on,wait=off".into())]).await;
    let mut c = qmp_connect(&path).await;
    let greeting = qmp_line(&mut c).await;
    assert_eq!(greeting["QMP"]["capabilities"], json!(["oob"]));
    c.write_all(br#"{"execute":"qmp_capabilities"}{"execute":"query-status","id":1}"#).await.unwrap();
    assert_eq!(qmp_line(&mut c).await, json!({"return": {}}));
    assert_eq!(qmp_line(&mut c).await["return"]["status"], "prelaunch");

    let port = run.tcp_port("compat_monitor1").unwrap();
    let mut t = BufReader::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    let mut neg = [0u8; 12];
    t.read_exact(&mut neg).await.unwrap();
    assert_eq!(neg, NEGOTIATION);
    assert!(qmp_line(&mut t).await.get("QMP").is_some());
    t.write_all(br#"{"execute":"qmp_capabilities"}{"execute":"query-chardev"}"#).await.unwrap();
    qmp_line(&mut t).await;
    let list = qmp_line(&mut t).await;
    let list = list["return"].as_array().unwrap();
    assert_eq!(list[0]["label"], "compat_monitor1");
    assert_eq!(list[1]["label"], "compat_monitor0");
    assert_eq!(list[1]["filename"], format!("unix:{},server=on", path.display()));
    assert_eq!(list[1]["frontend-open"], true);
    // human-monitor-command reaches HMP.
    t.write_all(
        br#"{"execute":"human-monitor-command","arguments":{"command-line":"info chardev"},"id":"h"}"#,
    )
    .await
    .unwrap();
    let r = qmp_line(&mut t).await;
    let text = r["return"].as_str().unwrap();
    assert!(
        text.contains(&format!("compat_monitor0: filename=unix:{},server=on\r\n", path.display())),
        "{text}"
    );
    drop(c);
    drop(t);
}

#[tokio::test]
async fn many_concurrent_clients_each_independent() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let qmp = sock(&dir, "qmp.sock");
    let hmp = sock(&dir, "hmp.sock");
    let _run = start(&m, &[("qmp", unix_spec(&qmp)), ("monitor", unix_spec(&hmp))]).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let qmp = qmp.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = qmp_connect(&qmp).await;
            qmp_line(&mut c).await;
            let req = format!(
                r#"{{"execute":"qmp_capabilities","id":{i}}}{{"execute":"query-name","id":"n{i}"}}{{"execute":"query-status","id":[{i}]}}"#
            );
            c.write_all(req.as_bytes()).await.unwrap();
            assert_eq!(qmp_line(&mut c).await, json!({"return": {}, "id": i}));
            assert_eq!(qmp_line(&mut c).await, json!({"return": {"name": "probe-vm"}, "id": format!("n{i}")}));
            assert_eq!(qmp_line(&mut c).await["id"], json!([i]));
        }));
    }
    for _ in 0..50 {
        let hmp = hmp.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = UnixStream::connect(&hmp).await.unwrap();
            read_until(&mut c, BANNER).await;
            c.write_all(b"info name\r").await.unwrap();
            assert_eq!(response(&read_until(&mut c, b"(qemu) ").await), "probe-vm\r\n");
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn a_client_that_never_reads_does_not_stall_others() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let qmp = sock(&dir, "qmp.sock");
    let hmp = sock(&dir, "hmp.sock");
    let _run = start(&m, &[("qmp", unix_spec(&qmp)), ("monitor", unix_spec(&hmp))]).await;
    // An HMP client floods `help` and never reads; a QMP client floods schema queries likewise.
    let mut lazy_hmp = UnixStream::connect(&hmp).await.unwrap();
    let flood = b"help\r".repeat(2000);
    let writer = tokio::spawn(async move {
        // Its writes eventually block (we stop reading it); that is the point.
        let _ = tokio::time::timeout(Duration::from_secs(2), lazy_hmp.write_all(&flood)).await;
        lazy_hmp
    });
    let mut lazy_qmp = UnixStream::connect(&qmp).await.unwrap();
    let mut req = br#"{"execute":"qmp_capabilities"}"#.to_vec();
    req.extend(br#"{"execute":"query-qmp-schema"}"#.repeat(200));
    let qwriter = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(2), lazy_qmp.write_all(&req)).await;
        lazy_qmp
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Others are served promptly all along.
    for _ in 0..5 {
        let mut c = UnixStream::connect(&hmp).await.unwrap();
        read_until(&mut c, BANNER).await;
        c.write_all(b"info status\r").await.unwrap();
        assert_eq!(response(&read_until(&mut c, b"(qemu) ").await), "VM status: paused (prelaunch)\r\n");
        let mut q = qmp_connect(&qmp).await;
        qmp_line(&mut q).await;
        q.write_all(br#"{"execute":"qmp_capabilities"}{"execute":"query-kvm"}"#).await.unwrap();
        qmp_line(&mut q).await;
        assert_eq!(qmp_line(&mut q).await["return"]["enabled"], true);
    }
    drop(writer.await.unwrap());
    drop(qwriter.await.unwrap());
}

#[tokio::test]
async fn wait_on_blocks_until_the_first_client() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "w.sock");
    let mut run = start(&m, &[("qmp", format!("unix:{},server=on", path.display()))]).await;
    let waited = tokio::time::timeout(Duration::from_millis(100), run.wait_for_clients()).await;
    assert!(waited.is_err(), "no client yet");
    let mut c = qmp_connect(&path).await;
    tokio::time::timeout(common::TIMEOUT, run.wait_for_clients()).await.unwrap();
    assert!(qmp_line(&mut c).await.get("QMP").is_some());
}

#[tokio::test]
async fn socket_file_mode_stale_replacement_and_removal() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "q.sock");
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    let mut run = start(&m, &[("qmp", unix_spec(&path))]).await;
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(m.chardevs.list()[0].filename, format!("disconnected:unix:{},server=on", path.display()));
    // A live socket is not stolen by a second start.
    let mut specs = MonitorSpecs::new("vmm");
    specs.add_qmp(&unix_spec(&path)).unwrap();
    let err = transport::start(m.clone(), specs).await.err().unwrap();
    assert_eq!(
        err.report("vmm"),
        format!(
            "vmm: -qmp {}: Failed to bind socket to {}: Address already in use",
            unix_spec(&path),
            path.display()
        )
    );
    run.shutdown();
    assert!(!path.exists());
    assert!(m.chardevs.list().is_empty());
}

#[tokio::test]
async fn bind_errors_are_qemus() {
    let m = common::monitor();
    let mut specs = MonitorSpecs::new("vmm");
    specs.add_qmp("unix:/x/y.sock,server=on,wait=off").unwrap();
    let err = transport::start(m.clone(), specs).await.err().unwrap();
    assert_eq!(
        err.report("vmm"),
        "vmm: -qmp unix:/x/y.sock,server=on,wait=off: Failed to bind socket to /x/y.sock: No such file or directory"
    );
    let mut specs = MonitorSpecs::new("vmm");
    specs.add_monitor("tcp:127.0.0.1:1").unwrap();
    let err = transport::start(m.clone(), specs).await.err().unwrap();
    assert_eq!(
        err.report("vmm"),
        "vmm: -monitor tcp:127.0.0.1:1: Failed to connect to '127.0.0.1:1': Connection refused"
    );
}

#[tokio::test]
async fn client_mode_connects_out() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "client.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let _run = start(&m, &[("qmp", format!("unix:{}", path.display()))]).await;
    let (c, _) = listener.accept().await.unwrap();
    let mut c = BufReader::new(c);
    assert!(qmp_line(&mut c).await.get("QMP").is_some());
    assert_eq!(m.chardevs.list()[0].filename, format!("unix:{}", path.display()));
    c.write_all(br#"{"execute":"qmp_capabilities"}"#).await.unwrap();
    assert_eq!(qmp_line(&mut c).await, json!({"return": {}}));
}

#[tokio::test]
async fn chardev_and_mon_options_and_loopback_default() {
    let m = common::monitor();
    let run = start(
        &m,
        &[
            ("chardev", "socket,id=hmp0,host=,port=0,server=on,wait=off".into()),
            ("mon", "chardev=hmp0,mode=readline".into()),
            ("chardev", "null,id=spare".into()),
        ],
    )
    .await;
    let port = run.tcp_port("hmp0").unwrap();
    let list = m.chardevs.list();
    assert_eq!(list[0].label, "spare");
    assert!(!list[0].frontend_open);
    assert_eq!(list[1].filename, format!("disconnected:tcp:127.0.0.1:{port},server=on"));
    assert_eq!(run.unused().len(), 1);
    let mut c = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    assert_eq!(read_until(&mut c, b"(qemu) ").await, BANNER);
}

#[tokio::test]
async fn file_chardev_gets_the_banner() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mon.txt");
    let _run = start(&m, &[("monitor", format!("file:{}", out.display()))]).await;
    let deadline = tokio::time::Instant::now() + common::TIMEOUT;
    loop {
        if std::fs::read(&out).is_ok_and(|b| b == BANNER) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "banner not written");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(m.chardevs.list()[0].filename, "file");
}

#[tokio::test]
async fn sessions_close_when_the_monitor_closes() {
    let m = common::monitor();
    let dir = tempfile::tempdir().unwrap();
    let path = sock(&dir, "hmp.sock");
    let _run = start(&m, &[("monitor", unix_spec(&path))]).await;
    let mut c = UnixStream::connect(&path).await.unwrap();
    read_until(&mut c, BANNER).await;
    m.close();
    read_to_eof(&mut c).await;
    m.wait_sessions_closed(common::TIMEOUT).await;
}
