//! External snapshots: `blockdev-snapshot-sync` (create or reuse an overlay file, put it on top)
//! and `blockdev-snapshot` (an overlay already added with `"backing": null`); and the internal
//! snapshots of one device (`blockdev-snapshot-internal-sync`,
//! `blockdev-snapshot-delete-internal-sync`); with QEMU's checks
//! and texts (`blockdev.c`: `external_snapshot_prepare`). The drives over the old top are drained
//! while their top changes, so no request sees half the change; the old top becomes the
//! overlay's read-only backing file and new writes go to the overlay.
//!
//! Unlike QEMU 7.2, an overlay put over a node that only the monitor holds (a `-blockdev` node no
//! device uses) is kept, owned by the monitor, instead of being dropped at once.

use std::path::Path;
use std::sync::Arc;

use block::{Backing, BlockNode, Format, OpenOptions};
use monitor::block::types::{
    BlockdevSnapshotArgs, BlockdevSnapshotDeleteInternalArgs, BlockdevSnapshotInternalArgs,
    BlockdevSnapshotSyncArgs, NewImageMode,
};

use super::graph::{BlockGraph, NodeCache, NodeEntry};
use super::jobs::JobManager;
use super::start::blocker;

/// How to take back a snapshot that a failed `transaction` had already made.
pub enum Undo {
    /// An overlay was put on top of `old` (`created`: by `blockdev-snapshot-sync`, which opened
    /// it; otherwise `blockdev-snapshot` linked a node the monitor added).
    Overlay { old: NodeEntry, overlay: Arc<BlockNode>, created: bool },
    /// An internal snapshot `name` was created in `node`.
    Internal { node: NodeEntry, name: String },
}

/// QEMU's `*_abort` of the snapshot actions: the drives go back to the old top, which is
/// writable again as before; an overlay opened by the snapshot is closed (its file stays, as in
/// QEMU); an internal snapshot is deleted. The caller holds the ops lock.
pub fn undo(graph: &BlockGraph, jobs: &JobManager, u: Undo) {
    match u {
        Undo::Overlay { old, overlay, created } => {
            let backends = graph.backends_of(&overlay);
            let mut guards = graph.drain(&backends);
            for g in guards.iter_mut() {
                *g.root = old.node.clone();
            }
            drop(guards);
            graph.set_read_only(&old.node, old.read_only);
            graph.update_entry(&old.node, |e| e.monitor_owned = old.monitor_owned);
            if created {
                graph.update_entry(&overlay, |e| e.monitor_owned = false);
            } else {
                overlay.set_backing_node(None);
            }
            graph.collect_garbage(&jobs.covered_nodes());
        }
        Undo::Internal { node, name } => {
            if let Some(q) = node.node.qcow2()
                && let Ok(snaps) = q.snapshots()
                && let Some(sn) = snaps.iter().find(|s| s.name == name)
            {
                let backends = graph.backends_of(&node.node);
                let _drained = graph.drain(&backends);
                if let Err(e) = q.snapshot_delete(&sn.id) {
                    tracing::warn!("transaction abort: deleting snapshot '{name}': {e}");
                }
            }
        }
    }
}

/// Common checks on the node being snapshotted, then a flush of it.
fn prepare_old(graph: &BlockGraph, jobs: &JobManager, old: &NodeEntry) -> Result<(), String> {
    if !old.is_format() {
        return Err(format!("Node '{}' is a protocol node and cannot be snapshotted", old.name));
    }
    if let Some(msg) = blocker(graph, jobs, old, true) {
        return Err(msg);
    }
    old.node.flush().map_err(|_| "An IO error has occurred".to_string())
}

/// Puts `overlay` on top of `old`: drives over `old` now use `overlay`; `old` is reported
/// read-only. `overlay`'s backing link must already be `old`.
fn switch_top(graph: &BlockGraph, old: &NodeEntry, overlay: &Arc<BlockNode>) {
    let backends = graph.backends_of(&old.node);
    let mut guards = graph.drain(&backends);
    for g in guards.iter_mut() {
        *g.root = overlay.clone();
    }
    drop(guards);
    let owned = old.monitor_owned && backends.is_empty();
    graph.set_read_only(&old.node, true);
    if owned {
        graph.update_entry(overlay, |e| e.monitor_owned = true);
    }
}

/// `blockdev-snapshot-sync` (and HMP `snapshot_blkdev`). The caller holds the ops lock.
pub fn snapshot_sync(
    graph: &BlockGraph,
    jobs: &JobManager,
    a: &BlockdevSnapshotSyncArgs,
) -> Result<Undo, String> {
    let old = graph.lookup(a.device.as_deref(), a.node_name.as_deref())?;
    prepare_old(graph, jobs, &old)?;
    let format_name = a.format.as_deref().unwrap_or("qcow2");
    if a.node_name.is_some() && a.snapshot_node_name.is_none() {
        return Err("New overlay node-name missing".into());
    }
    if let Some(n) = &a.snapshot_node_name {
        if graph.entry(n).is_some() || graph.backend(n).is_some() {
            return Err("New overlay node-name already in use".into());
        }
        graph.check_new_name(n)?;
    }
    let format = Format::parse(format_name).map_err(|_| format!("Unknown file format '{format_name}'"))?;
    let mode = a.mode.unwrap_or(NewImageMode::AbsolutePaths);
    if mode != NewImageMode::Existing {
        if format == Format::Raw {
            return Err("Backing file not supported for file format 'raw'".into());
        }
        let backing_name = old.node.filename().to_string();
        let same = a.snapshot_file == backing_name
            || matches!(
                (std::fs::canonicalize(&a.snapshot_file), std::fs::canonicalize(&backing_name)),
                (Ok(x), Ok(y)) if x == y
            );
        if same {
            return Err("Error: Trying to create an image with the same filename as the backing file".into());
        }
        block::jobs::create_overlay(Path::new(&a.snapshot_file), &old.node, &backing_name, old.node.format())
            .map_err(|e| e.to_string())?;
    }
    let opts =
        OpenOptions { format: Some(format), read_only: false, backing: Backing::Node(old.node.clone()) };
    let overlay = graph.open_chain(
        &a.snapshot_file,
        &opts,
        a.snapshot_node_name.as_deref(),
        NodeCache::default(),
        Default::default(),
    )?;
    switch_top(graph, &old, &overlay);
    Ok(Undo::Overlay { old, overlay, created: true })
}

/// `blockdev-snapshot`: `overlay` (added with no backing file) goes on top of `node`. The link
/// is made in memory only; the overlay's header keeps whatever backing file name it has, as
/// with QEMU. The caller holds the ops lock.
pub fn snapshot(graph: &BlockGraph, jobs: &JobManager, a: &BlockdevSnapshotArgs) -> Result<Undo, String> {
    let old = graph.lookup(Some(&a.node), Some(&a.node))?;
    prepare_old(graph, jobs, &old)?;
    let new = graph.lookup(Some(&a.overlay), Some(&a.overlay))?;
    if !new.is_format() {
        return Err("The overlay does not support backing images".into());
    }
    if !graph.backends_of(&new.node).is_empty() {
        return Err("The overlay is already in use".into());
    }
    if let Some(msg) = blocker(graph, jobs, &new, true) {
        return Err(msg);
    }
    if new.node.backing().is_some() {
        return Err("The overlay already has a backing image".into());
    }
    if new.node.qcow2().is_none() {
        return Err("The overlay does not support backing images".into());
    }
    if old.node.chain().iter().any(|n| Arc::ptr_eq(n, &new.node)) {
        return Err(format!("Making '{}' a backing child of '{}' would create a cycle", old.name, new.name));
    }
    if new.read_only {
        return Err(format!("Block node '{}' is read-only", new.name));
    }
    new.node.set_backing_node(Some(old.node.clone()));
    switch_top(graph, &old, &new.node);
    Ok(Undo::Overlay { old, overlay: new.node, created: false })
}

/// The root node a per-device internal snapshot command names (`qmp_get_root_bs`), writable and
/// able to hold internal snapshots.
fn internal_target(graph: &BlockGraph, jobs: &JobManager, device: &str) -> Result<NodeEntry, String> {
    let e = graph.lookup(Some(device), Some(device))?;
    if !e.is_format() || !graph.is_root(&e) {
        return Err("Need a root block node".into());
    }
    if let Some(msg) = blocker(graph, jobs, &e, true) {
        return Err(msg);
    }
    Ok(e)
}

/// `blockdev-snapshot-internal-sync` (HMP `snapshot_blkdev_internal`): an internal snapshot of
/// one device, without VM state. The drives over it are drained meanwhile. The VM clock recorded
/// is 0 (the block service has no guest clock). The caller holds the ops lock.
pub fn snapshot_internal(
    graph: &BlockGraph,
    jobs: &JobManager,
    a: &BlockdevSnapshotInternalArgs,
) -> Result<Undo, String> {
    let e = internal_target(graph, jobs, &a.device)?;
    if e.read_only || e.node.read_only() {
        return Err(format!("Device '{}' is read only", a.device));
    }
    let Some(q) = e.node.qcow2() else {
        return Err(format!(
            "Block format '{}' used by device '{}' does not support internal snapshots",
            e.driver.name(),
            a.device
        ));
    };
    if a.name.is_empty() {
        return Err("Name is empty".into());
    }
    let snaps = q.snapshots().map_err(|x| x.to_string())?;
    if snaps.iter().any(|s| s.name == a.name) {
        return Err(format!("Snapshot with name '{}' already exists on device '{}'", a.name, a.device));
    }
    let backends = graph.backends_of(&e.node);
    let _drained = graph.drain(&backends);
    e.node.flush().map_err(|x| x.to_string())?;
    q.snapshot_create_live(&a.name, 0).map_err(|x| {
        let text = match x.errno() {
            Some(n) => block::error::os_text(&std::io::Error::from_raw_os_error(n)),
            None => x.to_string(),
        };
        format!("Failed to create snapshot '{}' on device '{}': {text}", a.name, a.device)
    })?;
    Ok(Undo::Internal { node: e, name: a.name.clone() })
}

/// `blockdev-snapshot-delete-internal-sync` (HMP `snapshot_delete_blkdev_internal`): returns the
/// deleted snapshot. The caller holds the ops lock.
pub fn snapshot_delete_internal(
    graph: &BlockGraph,
    jobs: &JobManager,
    a: &BlockdevSnapshotDeleteInternalArgs,
) -> Result<block::SnapshotInfo, String> {
    let e = graph.lookup(Some(&a.device), Some(&a.device))?;
    if !e.is_format() || !graph.is_root(&e) {
        return Err("Need a root block node".into());
    }
    if a.id.is_none() && a.name.is_none() {
        return Err("Name or id must be provided".into());
    }
    if let Some(msg) = blocker(graph, jobs, &e, true) {
        return Err(msg);
    }
    let Some(q) = e.node.qcow2() else {
        return Err(format!(
            "Block format '{}' used by device '{}' does not support internal snapshots",
            e.driver.name(),
            a.device
        ));
    };
    let snaps = q.snapshots().map_err(|x| x.to_string())?;
    let found = snaps.iter().find(|s| {
        a.id.as_deref().is_none_or(|id| s.id == id) && a.name.as_deref().is_none_or(|n| s.name == n)
    });
    let Some(sn) = found else {
        return Err(format!(
            "Snapshot with id '{}' and name '{}' does not exist on device '{}'",
            a.id.as_deref().unwrap_or("null"),
            a.name.as_deref().unwrap_or("null"),
            a.device
        ));
    };
    let info = block::SnapshotInfo::from(sn);
    let backends = graph.backends_of(&e.node);
    let _drained = graph.drain(&backends);
    q.snapshot_delete(&sn.id).map_err(|x| x.to_string())?;
    Ok(info)
}
