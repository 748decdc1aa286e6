//! I/O accounting of drives (QEMU's `BlockAcctStats`) and `query-blockstats`.
//!
//! Devices account each guest request once, when it ends: done (bytes and time), failed, or
//! invalid (rejected before reaching the image). Counters are atomics: the device's I/O
//! threads update them, the block service reads them. Nodes carry only `wr_highest_offset`
//! (the block crate tracks it per format node and per file), as in QEMU.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use monitor::block::stats::{BlockDeviceStats, BlockStats, BlockStatsSpecific};

use super::BlockBackend;
use super::graph::{BlockGraph, NodeDriver, NodeEntry};

/// The kinds of request QEMU accounts (`BlockAcctType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctType {
    Read = 0,
    Write = 1,
    Flush = 2,
    Unmap = 3,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcctOutcome {
    /// Served: `bytes` moved in `ns` nanoseconds.
    Done { bytes: u64, ns: u64 },
    /// The image operation failed and the guest was told.
    Failed { ns: u64 },
    /// Rejected before any I/O (beyond the end, not a whole number of sectors).
    Invalid,
}

#[derive(Debug, Default)]
struct PerType {
    bytes: AtomicU64,
    ops: AtomicU64,
    failed: AtomicU64,
    invalid: AtomicU64,
    total_ns: AtomicU64,
}

/// One drive's counters.
#[derive(Debug, Default)]
pub struct AcctStats {
    per_type: [PerType; 4],
    /// [`now_ns`] of the last accounted request, plus one (0: none yet).
    last_access: AtomicU64,
}

/// Nanoseconds on a process-wide monotonic clock (so that a time fits in an atomic).
fn now_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

impl AcctStats {
    pub fn account(&self, kind: AcctType, outcome: AcctOutcome) {
        let t = &self.per_type[kind as usize];
        match outcome {
            AcctOutcome::Done { bytes, ns } => {
                t.bytes.fetch_add(bytes, Ordering::Relaxed);
                t.ops.fetch_add(1, Ordering::Relaxed);
                t.total_ns.fetch_add(ns, Ordering::Relaxed);
            }
            AcctOutcome::Failed { ns } => {
                t.failed.fetch_add(1, Ordering::Relaxed);
                t.total_ns.fetch_add(ns, Ordering::Relaxed);
            }
            AcctOutcome::Invalid => {
                t.invalid.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.last_access.store(now_ns().saturating_add(1), Ordering::Relaxed);
    }

    /// The counters in QEMU's shape (`wr_highest_offset` is the node's, filled by the caller).
    pub fn snapshot(&self) -> BlockDeviceStats {
        let get = |k: AcctType, f: fn(&PerType) -> &AtomicU64| {
            i64::try_from(f(&self.per_type[k as usize]).load(Ordering::Relaxed)).unwrap_or(i64::MAX)
        };
        let last = self.last_access.load(Ordering::Relaxed);
        let idle = (last > 0).then(|| i64::try_from(now_ns().saturating_sub(last - 1)).unwrap_or(i64::MAX));
        use AcctType::*;
        BlockDeviceStats {
            rd_bytes: get(Read, |t| &t.bytes),
            wr_bytes: get(Write, |t| &t.bytes),
            unmap_bytes: get(Unmap, |t| &t.bytes),
            rd_operations: get(Read, |t| &t.ops),
            wr_operations: get(Write, |t| &t.ops),
            flush_operations: get(Flush, |t| &t.ops),
            unmap_operations: get(Unmap, |t| &t.ops),
            rd_total_time_ns: get(Read, |t| &t.total_ns),
            wr_total_time_ns: get(Write, |t| &t.total_ns),
            flush_total_time_ns: get(Flush, |t| &t.total_ns),
            unmap_total_time_ns: get(Unmap, |t| &t.total_ns),
            idle_time_ns: idle,
            failed_rd_operations: get(Read, |t| &t.failed),
            failed_wr_operations: get(Write, |t| &t.failed),
            failed_flush_operations: get(Flush, |t| &t.failed),
            failed_unmap_operations: get(Unmap, |t| &t.failed),
            invalid_rd_operations: get(Read, |t| &t.invalid),
            invalid_wr_operations: get(Write, |t| &t.invalid),
            invalid_flush_operations: get(Flush, |t| &t.invalid),
            invalid_unmap_operations: get(Unmap, |t| &t.invalid),
            account_invalid: true,
            account_failed: true,
            ..Default::default()
        }
    }
}

/// Times a request for [`AcctStats::account`].
pub struct AcctTimer(Instant);

impl AcctTimer {
    pub fn start() -> Self {
        AcctTimer(Instant::now())
    }

    pub fn ns(&self) -> u64 {
        u64::try_from(self.0.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A node's own statistics: `wr_highest_offset`, and for a file node its discard counters.
fn node_stats(graph: &BlockGraph, e: &NodeEntry, with_backing: bool) -> BlockStats {
    let mut s = BlockStats { node_name: Some(e.name.clone()), ..Default::default() };
    match e.driver {
        NodeDriver::File => {
            let f = e.node.file().stats();
            s.stats.wr_highest_offset = as_i64(f.wr_highest_offset);
            s.driver_specific = Some(BlockStatsSpecific {
                driver: "file".into(),
                discard_nb_ok: as_i64(f.discard_nb_ok),
                discard_nb_failed: as_i64(f.discard_nb_failed),
                discard_bytes_ok: as_i64(f.discard_bytes_ok),
            });
        }
        _ => {
            s.stats.wr_highest_offset = as_i64(e.node.wr_highest_offset());
            s.parent = graph.file_of(e).map(|f| Box::new(node_stats(graph, &f, false)));
            if with_backing {
                s.backing = e
                    .node
                    .backing()
                    .and_then(|b| graph.entry_of(&b))
                    .map(|b| Box::new(node_stats(graph, &b, true)));
            }
        }
    }
    s
}

/// One drive: its counters over its top node's statistics, with the chain below.
fn drive_stats(graph: &BlockGraph, b: &BlockBackend) -> BlockStats {
    let root = b.root();
    let mut s = graph.entry_of(&root).map(|e| node_stats(graph, &e, true)).unwrap_or_default();
    let wr_highest_offset = s.stats.wr_highest_offset;
    s.stats = BlockDeviceStats { wr_highest_offset, ..b.acct().snapshot() };
    s.device = Some(b.name().to_string());
    s.qdev = b.attached_to();
    s
}

/// `query-blockstats`: drives with a name or a device (QEMU's order: creation), or with
/// `query_nodes` every node, oldest first.
pub fn query_blockstats(graph: &BlockGraph, query_nodes: bool) -> Vec<BlockStats> {
    if query_nodes {
        let mut entries = graph.entries();
        entries.reverse();
        return entries.iter().map(|e| node_stats(graph, e, false)).collect();
    }
    graph
        .backends()
        .iter()
        .filter(|b| !b.name().is_empty() || b.attached_to().is_some())
        .map(|b| drive_stats(graph, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_kind_and_outcome() {
        let a = AcctStats::default();
        assert_eq!(a.snapshot().idle_time_ns, None);
        a.account(AcctType::Read, AcctOutcome::Done { bytes: 4096, ns: 10 });
        a.account(AcctType::Read, AcctOutcome::Done { bytes: 512, ns: 5 });
        a.account(AcctType::Write, AcctOutcome::Failed { ns: 7 });
        a.account(AcctType::Unmap, AcctOutcome::Invalid);
        a.account(AcctType::Flush, AcctOutcome::Done { bytes: 0, ns: 3 });
        let s = a.snapshot();
        assert_eq!((s.rd_bytes, s.rd_operations, s.rd_total_time_ns), (4608, 2, 15));
        assert_eq!((s.wr_operations, s.failed_wr_operations, s.wr_total_time_ns), (0, 1, 7));
        assert_eq!((s.invalid_unmap_operations, s.flush_operations), (1, 1));
        assert!(s.idle_time_ns.is_some());
        assert!(s.account_invalid && s.account_failed);
    }
}
