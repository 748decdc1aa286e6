//! `transaction`: several snapshot actions that all happen or none does (QEMU's
//! `qmp_transaction` with `completion-mode: individual`).
//!
//! Each action runs in order, as QEMU's `prepare` does (an external snapshot is in place when
//! the next action runs); the first failure takes back every action done so far, newest
//! first ([`snapshot::undo`]), and its error is the command's. The caller holds the ops lock,
//! so no other block command interleaves.

use monitor::block::types::TransactionAction;

use super::graph::BlockGraph;
use super::jobs::JobManager;
use super::snapshot::{self, Undo};

/// Runs `actions`; on error nothing of them remains.
pub fn run(graph: &BlockGraph, jobs: &JobManager, actions: &[TransactionAction]) -> Result<(), String> {
    let mut done: Vec<Undo> = Vec::new();
    for action in actions {
        let result = match action {
            TransactionAction::Abort(_) => Err("Transaction aborted using Abort action".to_string()),
            TransactionAction::BlockdevSnapshot(a) => snapshot::snapshot(graph, jobs, &a.data),
            TransactionAction::BlockdevSnapshotSync(a) => snapshot::snapshot_sync(graph, jobs, &a.data),
            TransactionAction::BlockdevSnapshotInternalSync(a) => {
                snapshot::snapshot_internal(graph, jobs, &a.data)
            }
        };
        match result {
            Ok(undo) => done.push(undo),
            Err(e) => {
                for undo in done.into_iter().rev() {
                    snapshot::undo(graph, jobs, undo);
                }
                return Err(e);
            }
        }
    }
    Ok(())
}
