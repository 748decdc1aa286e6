//! The Rust `qapi` crate (typed QMP client generated from QEMU 9.1's schema) against `vmm`: a
//! second, independent client whose strict types catch shape errors in our replies and events.

use futures::StreamExt;
use proto_tests::Server;
use qapi::futures::QmpStreamTokio;
use qapi::qmp;

#[tokio::test]
async fn typed_client_round_trips() {
    let mut vmm = Server::vmm(&[
        "-machine",
        "none",
        "-S",
        "-nodefaults",
        "-name",
        "typed",
        "-qmp",
        "unix:{dir}/qmp.sock,server=on,wait=off",
    ]);
    drop(vmm.connect_unix("qmp.sock"));
    let negotiation = QmpStreamTokio::open_uds(vmm.path("qmp.sock")).await.expect("connect");
    let stream = negotiation.negotiate().await.expect("negotiate");
    let (service, mut events) = stream.into_parts();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    let _ = ev_tx.send(ev);
                }
                Err(_) => break,
            }
        }
    });

    let status = service.execute(qmp::query_status {}).await.expect("query-status");
    assert_eq!(status.status, qmp::RunState::prelaunch);
    assert!(!status.running);
    let version = service.execute(qmp::query_version {}).await.expect("query-version");
    assert_eq!((version.qemu.major, version.qemu.minor), (7, 2));
    let name = service.execute(qmp::query_name {}).await.expect("query-name");
    assert_eq!(name.name.as_deref(), Some("typed"));
    let kvm = service.execute(qmp::query_kvm {}).await.expect("query-kvm");
    assert!(!kvm.enabled);

    service.execute(qmp::cont {}).await.expect("cont");
    let ev = tokio::time::timeout(std::time::Duration::from_secs(5), ev_rx.recv())
        .await
        .expect("event")
        .expect("open");
    assert!(matches!(ev, qmp::Event::RESUME { .. }), "{ev:?}");

    let out = service
        .execute(qmp::human_monitor_command { command_line: "info status".into(), cpu_index: None })
        .await
        .expect("human-monitor-command");
    assert!(out.is_empty() || out.ends_with("\r\n"), "{out:?}");

    // A typed error: the argument check text reaches the client's error type.
    let err = service
        .execute(qmp::qmp_capabilities { enable: None })
        .await
        .expect_err("second qmp_capabilities must fail");
    assert!(format!("{err:?}").contains("Capabilities negotiation is already complete"), "{err:?}");
}
