//! `query-blockstats` types (QEMU 7.2's BlockStats, BlockDeviceStats).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::qapi::Qapi;

/// `BlockDeviceStats`. A drive's counters come from its device (QEMU's `block_acct_*`); a
/// node's are zero except `wr_highest_offset`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct BlockDeviceStats {
    pub rd_bytes: i64,
    pub wr_bytes: i64,
    pub unmap_bytes: i64,
    pub rd_operations: i64,
    pub wr_operations: i64,
    pub flush_operations: i64,
    pub unmap_operations: i64,
    pub rd_total_time_ns: i64,
    pub wr_total_time_ns: i64,
    pub flush_total_time_ns: i64,
    pub unmap_total_time_ns: i64,
    pub wr_highest_offset: i64,
    pub rd_merged: i64,
    pub wr_merged: i64,
    pub unmap_merged: i64,
    /// Nanoseconds since the last request; absent before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_time_ns: Option<i64>,
    pub failed_rd_operations: i64,
    pub failed_wr_operations: i64,
    pub failed_flush_operations: i64,
    pub failed_unmap_operations: i64,
    pub invalid_rd_operations: i64,
    pub invalid_wr_operations: i64,
    pub invalid_flush_operations: i64,
    pub invalid_unmap_operations: i64,
    pub account_invalid: bool,
    pub account_failed: bool,
    /// Statistics over intervals (`stats-intervals`): none are configured here.
    pub timed_stats: Vec<Value>,
}

/// `BlockStatsSpecific` of a `file` node (file-posix's discard counters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct BlockStatsSpecific {
    pub driver: String,
    #[serde(rename = "discard-nb-ok")]
    pub discard_nb_ok: i64,
    #[serde(rename = "discard-nb-failed")]
    pub discard_nb_failed: i64,
    #[serde(rename = "discard-bytes-ok")]
    pub discard_bytes_ok: i64,
}

/// `BlockStats`: a drive (with `device`) or a node, its protocol node (`parent`) and, for
/// drives, its backing chain (`backing`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct BlockStats {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qdev: Option<String>,
    #[serde(rename = "node-name", skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub stats: BlockDeviceStats,
    #[serde(rename = "driver-specific", skip_serializing_if = "Option::is_none")]
    pub driver_specific: Option<BlockStatsSpecific>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<BlockStats>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing: Option<Box<BlockStats>>,
}

/// `query-blockstats` arguments.
#[derive(Debug, Deserialize, Qapi)]
pub struct QueryBlockstatsArgs {
    #[serde(rename = "query-nodes")]
    pub query_nodes: Option<bool>,
}
