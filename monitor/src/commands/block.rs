//! Block device and node commands: blockdev-add, blockdev-del, query-block,
//! query-named-block-nodes, query-blockstats, transaction, blockdev-snapshot-sync, blockdev-snapshot, the internal snapshot
//! commands of one device, block_resize, and the
//! commands that start jobs: block-stream, block-commit. Each sends a
//! [`BlockRequest`](crate::block::BlockRequest) to the VMM's block layer.

use std::sync::Arc;

use crate::Monitor;
use crate::block::stats::{BlockStats, QueryBlockstatsArgs};
use crate::block::types::*;
use crate::block::{BlockRequest, Kick};
use crate::control::{ControlError, ControlRequest, Reply};
use crate::error::QmpError;
use crate::qapi::Empty;
use crate::registry::{Flags, Registry};

/// Sends a block request and waits for its reply.
pub(crate) async fn call<T>(
    m: &Monitor,
    make: impl FnOnce(Reply<T>) -> BlockRequest,
) -> Result<T, ControlError> {
    m.control.call(|reply| ControlRequest::Block(Box::new(make(reply)))).await
}

/// Runs a request that answers with a [`Kick`], and releases it after the reply.
pub(super) async fn call_kick(
    m: &Monitor,
    make: impl FnOnce(Reply<Kick>) -> BlockRequest,
) -> Result<Empty, QmpError> {
    let kick = call(m, make).await?;
    kick.after_reply();
    Ok(Empty {})
}

pub(super) fn register(reg: &mut Registry) {
    reg.add("blockdev-add", Flags::default(), |m: Arc<Monitor>, a: BlockdevOptions| async move {
        call(&m, |reply| BlockRequest::Add { options: Box::new(a), reply }).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("blockdev-del", Flags::default(), |m: Arc<Monitor>, a: BlockdevDelArgs| async move {
        call(&m, |reply| BlockRequest::Del { node_name: a.node_name, reply }).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("query-block", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<Vec<BlockInfo>, QmpError>(call(&m, |reply| BlockRequest::QueryBlock { reply }).await?)
    });
    reg.add(
        "query-named-block-nodes",
        Flags::default(),
        |m: Arc<Monitor>, a: QueryNamedBlockNodesArgs| async move {
            let flat = a.flat.unwrap_or(false);
            Ok::<Vec<BlockDeviceInfo>, QmpError>(
                call(&m, |reply| BlockRequest::QueryNamedNodes { flat, reply }).await?,
            )
        },
    );
    reg.add(
        "block_set_io_throttle",
        Flags::default(),
        |m: Arc<Monitor>, a: BlockIoThrottleArgs| async move {
            call(&m, |reply| BlockRequest::SetIoThrottle { args: Box::new(a), reply }).await?;
            Ok::<_, QmpError>(Empty {})
        },
    );
    reg.add("transaction", Flags::default(), |m: Arc<Monitor>, a: TransactionArgs| async move {
        let mode = a.properties.and_then(|p| p.completion_mode).unwrap_or(ActionCompletionMode::Individual);
        if mode == ActionCompletionMode::Grouped
            && let Some(action) = a.actions.first()
        {
            return Err(QmpError::generic(format!(
                "Action '{}' does not support Transaction property completion-mode = grouped",
                action.kind()
            )));
        }
        call(&m, |reply| BlockRequest::Transaction { actions: a.actions, reply }).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("query-blockstats", Flags::default(), |m: Arc<Monitor>, a: QueryBlockstatsArgs| async move {
        let query_nodes = a.query_nodes.unwrap_or(false);
        Ok::<Vec<BlockStats>, QmpError>(
            call(&m, |reply| BlockRequest::QueryBlockstats { query_nodes, reply }).await?,
        )
    });
    reg.add(
        "blockdev-snapshot-sync",
        Flags::default(),
        |m: Arc<Monitor>, a: BlockdevSnapshotSyncArgs| async move {
            call(&m, |reply| BlockRequest::SnapshotSync { args: a, reply }).await?;
            Ok::<_, QmpError>(Empty {})
        },
    );
    reg.add(
        "blockdev-snapshot",
        Flags { features: &["allow-write-only-overlay"], ..Flags::default() },
        |m: Arc<Monitor>, a: BlockdevSnapshotArgs| async move {
            call(&m, |reply| BlockRequest::Snapshot { args: a, reply }).await?;
            Ok::<_, QmpError>(Empty {})
        },
    );
    reg.add(
        "blockdev-snapshot-internal-sync",
        Flags::default(),
        |m: Arc<Monitor>, a: BlockdevSnapshotInternalArgs| async move {
            call(&m, |reply| BlockRequest::SnapshotInternal { args: a, reply }).await?;
            Ok::<_, QmpError>(Empty {})
        },
    );
    reg.add(
        "blockdev-snapshot-delete-internal-sync",
        Flags::default(),
        |m: Arc<Monitor>, a: BlockdevSnapshotDeleteInternalArgs| async move {
            Ok::<block::SnapshotInfo, QmpError>(
                call(&m, |reply| BlockRequest::SnapshotDeleteInternal { args: a, reply }).await?,
            )
        },
    );
    reg.add("block_resize", Flags::default(), |m: Arc<Monitor>, a: BlockResizeArgs| async move {
        call(&m, |reply| BlockRequest::Resize { args: a, reply }).await?;
        Ok::<_, QmpError>(Empty {})
    });
    reg.add("block-stream", Flags::default(), |m: Arc<Monitor>, a: BlockStreamArgs| async move {
        call_kick(&m, |reply| BlockRequest::Stream { args: a, reply }).await
    });
    reg.add("block-commit", Flags::default(), |m: Arc<Monitor>, a: BlockCommitArgs| async move {
        call_kick(&m, |reply| BlockRequest::Commit { args: a, reply }).await
    });
}
