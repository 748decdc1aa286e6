//! The block commands and job events through the Rust `qapi` crate (a typed client generated from
//! QEMU's schema): its strict types decode our `query-block`, `query-named-block-nodes`,
//! `query-block-jobs`, `query-jobs` and the job events, so a missing or mistyped member fails.

use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use proto_tests::{Server, which};
use qapi::futures::QmpStreamTokio;
use qapi::qmp;
use serde_json::json;

fn tool(name: &str, args: &[&str]) {
    let path = which(name).unwrap_or_else(|| panic!("{name} is not installed (apt-get install qemu-utils)"));
    assert!(Command::new(path).args(args).output().unwrap().status.success(), "{name} {args:?}");
}

type Events = tokio::sync::mpsc::UnboundedReceiver<qmp::Event>;

async fn next(rx: &mut Events) -> qmp::Event {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("event in time")
        .expect("events open")
}

/// Events up to and including the JOB_STATUS_CHANGE of job `id` to `status`.
async fn wait_status(rx: &mut Events, id: &str, status: qmp::JobStatus) -> Vec<qmp::Event> {
    let mut seen = Vec::new();
    loop {
        let ev = next(rx).await;
        let done = matches!(&ev, qmp::Event::JOB_STATUS_CHANGE { data, .. } if data.id == id && data.status == status);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

#[tokio::test]
async fn typed_client_block_flow() {
    let imgs = tempfile::tempdir().unwrap();
    let p = |n: &str| imgs.path().join(n).to_str().unwrap().to_string();
    tool("qemu-img", &["create", "-q", "-f", "qcow2", &p("base.qcow2"), "16M"]);
    tool("qemu-io", &["-c", "write -P 0x11 0 4M", &p("base.qcow2")]);
    tool(
        "qemu-img",
        &["create", "-q", "-f", "qcow2", "-b", &p("base.qcow2"), "-F", "qcow2", &p("top.qcow2")],
    );
    tool("qemu-io", &["-c", "write -P 0x22 8M 2M", &p("top.qcow2")]);
    let drive = format!("file={},if=none,id=drive0,format=qcow2", p("top.qcow2"));
    let mut vmm = Server::vmm(&[
        "-machine",
        "none",
        "-nodefaults",
        "-qmp",
        "unix:{dir}/qmp.sock,server=on,wait=off",
        "-drive",
        &drive,
    ]);
    drop(vmm.connect_unix("qmp.sock"));
    let stream = QmpStreamTokio::open_uds(vmm.path("qmp.sock")).await.expect("connect");
    let (service, mut events) = stream.negotiate().await.expect("negotiate").into_parts();
    let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(ev)) = events.next().await {
            if ev_tx.send(ev).is_err() {
                break;
            }
        }
    });
    let blocks = service.execute(qmp::query_block {}).await.expect("query-block");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].device, "drive0");
    let inserted = blocks[0].inserted.as_ref().expect("inserted");
    assert_eq!(inserted.backing_file_depth, 1);
    assert!(inserted.image.backing_image.is_some(), "query-block nests the chain");
    let nodes = service.execute(qmp::query_named_block_nodes { flat: Some(true) }).await.expect("nodes");
    assert_eq!(nodes.len(), 4, "two format nodes and their file nodes");

    let snap: qmp::blockdev_snapshot_sync = serde_json::from_value(json!({
        "device": "drive0", "snapshot-file": p("snap.qcow2"), "snapshot-node-name": "snap"
    }))
    .unwrap();
    service.execute(snap).await.expect("blockdev-snapshot-sync");

    let st: qmp::block_stream =
        serde_json::from_value(json!({"device": "drive0", "job-id": "st", "base-node": "snap"})).unwrap();
    let err = service.execute(st).await.expect_err("snap is the top");
    assert!(format!("{err:?}").contains("Node 'snap' is not a backing image of 'drive0'"), "{err:?}");
    let st: qmp::block_stream = serde_json::from_value(json!({"device": "drive0", "job-id": "st"})).unwrap();
    service.execute(st).await.expect("block-stream");
    let seen = wait_status(&mut ev_rx, "st", qmp::JobStatus::null).await;
    assert!(
        seen.iter().any(|e| matches!(e, qmp::Event::BLOCK_JOB_COMPLETED { data, .. } if data.device == "st" && data.error.is_none())),
        "{seen:?}"
    );

    let cm: qmp::block_commit =
        serde_json::from_value(json!({"device": "drive0", "job-id": "cm", "auto-dismiss": false})).unwrap();
    // The stream made snap standalone: nothing below it to commit into.
    let err = service.execute(cm).await.expect_err("no backing file left");
    assert!(format!("{err:?}").contains("cannot commit an image into itself"), "{err:?}");
    let snap2: qmp::blockdev_snapshot_sync = serde_json::from_value(json!({
        "device": "drive0", "snapshot-file": p("snap2.qcow2"), "snapshot-node-name": "snap2"
    }))
    .unwrap();
    service.execute(snap2).await.expect("second snapshot");
    let cm: qmp::block_commit =
        serde_json::from_value(json!({"device": "drive0", "job-id": "cm", "auto-dismiss": false})).unwrap();
    service.execute(cm).await.expect("block-commit");
    wait_status(&mut ev_rx, "cm", qmp::JobStatus::ready).await;
    let ready = next(&mut ev_rx).await;
    assert!(matches!(&ready, qmp::Event::BLOCK_JOB_READY { data, .. } if data.device == "cm"), "{ready:?}");
    let jobs = service.execute(qmp::query_block_jobs {}).await.expect("query-block-jobs");
    assert_eq!(jobs.len(), 1);
    let jobs = service.execute(qmp::query_jobs {}).await.expect("query-jobs");
    assert_eq!((jobs[0].id.as_str(), jobs[0].status), ("cm", qmp::JobStatus::ready));
    service.execute(qmp::block_job_complete { device: "cm".into() }).await.expect("complete");
    wait_status(&mut ev_rx, "cm", qmp::JobStatus::concluded).await;
    service.execute(qmp::job_dismiss { id: "cm".into() }).await.expect("dismiss");
    wait_status(&mut ev_rx, "cm", qmp::JobStatus::null).await;
    let blocks = service.execute(qmp::query_block {}).await.expect("query-block");
    assert_eq!(blocks[0].inserted.as_ref().expect("inserted").node_name.as_deref(), Some("snap"));
    service.execute(qmp::quit {}).await.ok();
    assert_eq!(vmm.wait_exit(Duration::from_secs(10)), Some(0));
}
