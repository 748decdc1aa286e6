//! The QAPI types of the block commands (QEMU 7.2's `block-core.json` and `job.json`), as serde
//! types with `#[derive(Qapi)]`: arguments are checked with QEMU's texts before anything runs,
//! return values and events have QEMU's member names.
//!
//! `ImageInfo` and `SnapshotInfo` are the block crate's own types (they serialise to exactly
//! QEMU's JSON); their QAPI description is written out here.

use serde::{Deserialize, Deserializer, Serialize};

use crate::qapi::{Builtin, IntKind, Member, ObjectDef, QType, Qapi};

/// `Some(value)` for a member that is present, even when the value is `null` (serde maps a
/// present `null` to `None` otherwise; `backing: null` must stay distinguishable from no
/// `backing`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

// ---------------------------------------------------------------------------------------------
// blockdev-add

/// `BlockdevDiscardOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum BlockdevDiscardOptions {
    Ignore,
    Unmap,
}

/// `BlockdevDetectZeroesOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum BlockdevDetectZeroesOptions {
    #[default]
    Off,
    On,
    Unmap,
}

impl BlockdevDetectZeroesOptions {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockdevDetectZeroesOptions::Off => "off",
            BlockdevDetectZeroesOptions::On => "on",
            BlockdevDetectZeroesOptions::Unmap => "unmap",
        }
    }
}

/// `BlockdevCacheOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Qapi)]
pub struct BlockdevCacheOptions {
    pub direct: Option<bool>,
    #[serde(rename = "no-flush")]
    pub no_flush: Option<bool>,
}

/// The members every driver has (QEMU's union base).
#[derive(Debug, Clone, Default, Serialize, Deserialize, Qapi)]
#[qapi(name = "BlockdevOptionsBase")]
pub struct BlockdevOptionsBase {
    #[serde(rename = "node-name")]
    pub node_name: Option<String>,
    pub discard: Option<BlockdevDiscardOptions>,
    pub cache: Option<BlockdevCacheOptions>,
    #[serde(rename = "read-only")]
    pub read_only: Option<bool>,
    #[serde(rename = "auto-read-only")]
    pub auto_read_only: Option<bool>,
    #[serde(rename = "force-share")]
    pub force_share: Option<bool>,
    #[serde(rename = "detect-zeroes")]
    pub detect_zeroes: Option<BlockdevDetectZeroesOptions>,
}

/// `OnOffAuto` (the file driver's `locking`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum OnOffAuto {
    Auto,
    On,
    Off,
}

/// `BlockdevAioOptions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "snake_case")]
pub enum BlockdevAioOptions {
    Threads,
    Native,
    IoUring,
}

/// `BlockdevOptionsFile`: a host file (protocol node).
#[derive(Debug, Clone, Serialize, Deserialize, Qapi)]
pub struct BlockdevOptionsFile {
    #[serde(flatten)]
    pub base: BlockdevOptionsBase,
    pub filename: String,
    #[serde(rename = "pr-manager")]
    pub pr_manager: Option<String>,
    pub locking: Option<OnOffAuto>,
    pub aio: Option<BlockdevAioOptions>,
    #[serde(rename = "aio-max-batch")]
    pub aio_max_batch: Option<i64>,
    #[serde(rename = "drop-cache")]
    pub drop_cache: Option<bool>,
}

/// `BlockdevOptionsRaw`.
#[derive(Debug, Clone, Serialize, Deserialize, Qapi)]
pub struct BlockdevOptionsRaw {
    #[serde(flatten)]
    pub base: BlockdevOptionsBase,
    pub file: BlockdevRef,
    pub offset: Option<i64>,
    pub size: Option<i64>,
}

/// `BlockdevOptionsQcow2` (the members we act on; cache tuning members are accepted).
#[derive(Debug, Clone, Serialize, Deserialize, Qapi)]
pub struct BlockdevOptionsQcow2 {
    #[serde(flatten)]
    pub base: BlockdevOptionsBase,
    pub file: BlockdevRef,
    #[serde(default, deserialize_with = "present")]
    pub backing: Option<BlockdevRefOrNull>,
    #[serde(rename = "lazy-refcounts")]
    pub lazy_refcounts: Option<bool>,
    #[serde(rename = "pass-discard-request")]
    pub pass_discard_request: Option<bool>,
    #[serde(rename = "pass-discard-snapshot")]
    pub pass_discard_snapshot: Option<bool>,
    #[serde(rename = "pass-discard-other")]
    pub pass_discard_other: Option<bool>,
    #[serde(rename = "cache-size")]
    pub cache_size: Option<i64>,
    #[serde(rename = "l2-cache-size")]
    pub l2_cache_size: Option<i64>,
    #[serde(rename = "l2-cache-entry-size")]
    pub l2_cache_entry_size: Option<i64>,
    #[serde(rename = "refcount-cache-size")]
    pub refcount_cache_size: Option<i64>,
    #[serde(rename = "cache-clean-interval")]
    pub cache_clean_interval: Option<i64>,
}

/// `BlockdevOptions`: a flat union on `driver`. Drivers other than these three are refused by
/// the argument check (`Parameter 'driver' does not accept value 'vmdk'`).
#[derive(Debug, Clone, Serialize, Deserialize, Qapi)]
#[serde(tag = "driver", rename_all = "kebab-case")]
pub enum BlockdevOptions {
    File(BlockdevOptionsFile),
    Qcow2(BlockdevOptionsQcow2),
    Raw(BlockdevOptionsRaw),
}

impl BlockdevOptions {
    pub fn base(&self) -> &BlockdevOptionsBase {
        match self {
            BlockdevOptions::File(o) => &o.base,
            BlockdevOptions::Qcow2(o) => &o.base,
            BlockdevOptions::Raw(o) => &o.base,
        }
    }

    pub fn driver(&self) -> &'static str {
        match self {
            BlockdevOptions::File(_) => "file",
            BlockdevOptions::Qcow2(_) => "qcow2",
            BlockdevOptions::Raw(_) => "raw",
        }
    }
}

/// `BlockdevRef`: nested options, or the node-name of an existing node.
#[derive(Debug, Clone, Serialize, Deserialize, Qapi)]
#[serde(untagged)]
pub enum BlockdevRef {
    Definition(Box<BlockdevOptions>),
    Reference(String),
}

/// `BlockdevRefOrNull`: as [`BlockdevRef`], or `null` for "no backing file".
#[derive(Debug, Clone, Serialize, Deserialize, Qapi)]
#[serde(untagged)]
pub enum BlockdevRefOrNull {
    Definition(Box<BlockdevOptions>),
    Reference(String),
    Null(()),
}

/// `blockdev-del`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevDelArgs {
    #[serde(rename = "node-name")]
    pub node_name: String,
}

// ---------------------------------------------------------------------------------------------
// queries

/// `query-named-block-nodes`.
#[derive(Debug, Clone, Default, Deserialize, Qapi)]
pub struct QueryNamedBlockNodesArgs {
    pub flat: Option<bool>,
}

/// `BlockdevCacheInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct BlockdevCacheInfo {
    pub writeback: bool,
    pub direct: bool,
    #[serde(rename = "no-flush")]
    pub no_flush: bool,
}

/// `BlockDeviceInfo`: one node (`inserted` of query-block, elements of
/// query-named-block-nodes). The throttling members are the drive's limits in query-block
/// (zero for nodes and unthrottled drives); the optional ones appear when limits are set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Qapi)]
pub struct BlockDeviceInfo {
    pub file: String,
    #[serde(rename = "node-name", skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    pub ro: bool,
    pub drv: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    pub backing_file_depth: i64,
    pub encrypted: bool,
    pub detect_zeroes: BlockdevDetectZeroesOptions,
    pub bps: i64,
    pub bps_rd: i64,
    pub bps_wr: i64,
    pub iops: i64,
    pub iops_rd: i64,
    pub iops_wr: i64,
    pub image: block::ImageInfo,
    #[serde(flatten)]
    pub throttle: ThrottleInfo,
    pub cache: BlockdevCacheInfo,
    pub write_threshold: i64,
}

/// The optional throttling members of `BlockDeviceInfo` (QEMU sets `*_max` and `*_max_length`
/// when the burst rate is set, `iops_size` when not zero, `group` whenever limits are on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, Qapi)]
pub struct ThrottleInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps_max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps_rd_max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps_wr_max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_rd_max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_wr_max: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps_max_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps_rd_max_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bps_wr_max_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_max_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_rd_max_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_wr_max_length: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iops_size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// `block_set_io_throttle` (`BlockIOThrottle`).
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockIoThrottleArgs {
    #[qapi(feature = "deprecated")]
    pub device: Option<String>,
    pub id: Option<String>,
    pub bps: i64,
    pub bps_rd: i64,
    pub bps_wr: i64,
    pub iops: i64,
    pub iops_rd: i64,
    pub iops_wr: i64,
    pub bps_max: Option<i64>,
    pub bps_rd_max: Option<i64>,
    pub bps_wr_max: Option<i64>,
    pub iops_max: Option<i64>,
    pub iops_rd_max: Option<i64>,
    pub iops_wr_max: Option<i64>,
    pub bps_max_length: Option<i64>,
    pub bps_rd_max_length: Option<i64>,
    pub bps_wr_max_length: Option<i64>,
    pub iops_max_length: Option<i64>,
    pub iops_rd_max_length: Option<i64>,
    pub iops_wr_max_length: Option<i64>,
    pub iops_size: Option<i64>,
    pub group: Option<String>,
}

/// `BlockDeviceIoStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum BlockDeviceIoStatus {
    Ok,
    Failed,
    Nospace,
}

impl BlockDeviceIoStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockDeviceIoStatus::Ok => "ok",
            BlockDeviceIoStatus::Failed => "failed",
            BlockDeviceIoStatus::Nospace => "nospace",
        }
    }
}

/// `BlockInfo`: one drive (BlockBackend) of `query-block`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Qapi)]
pub struct BlockInfo {
    pub device: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qdev: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub removable: bool,
    pub locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inserted: Option<BlockDeviceInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tray_open: Option<bool>,
    #[serde(rename = "io-status", skip_serializing_if = "Option::is_none")]
    pub io_status: Option<BlockDeviceIoStatus>,
}

// ---------------------------------------------------------------------------------------------
// external snapshots, resize

/// `NewImageMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum NewImageMode {
    Existing,
    AbsolutePaths,
}

/// `blockdev-snapshot-sync`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevSnapshotSyncArgs {
    pub device: Option<String>,
    #[serde(rename = "node-name")]
    pub node_name: Option<String>,
    #[serde(rename = "snapshot-file")]
    pub snapshot_file: String,
    #[serde(rename = "snapshot-node-name")]
    pub snapshot_node_name: Option<String>,
    pub format: Option<String>,
    pub mode: Option<NewImageMode>,
}

/// `blockdev-snapshot`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevSnapshotArgs {
    pub node: String,
    pub overlay: String,
}

/// `blockdev-snapshot-internal-sync`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevSnapshotInternalArgs {
    pub device: String,
    pub name: String,
}

/// `transaction`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct TransactionArgs {
    pub actions: Vec<TransactionAction>,
    pub properties: Option<TransactionProperties>,
}

/// `TransactionProperties`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct TransactionProperties {
    #[serde(rename = "completion-mode")]
    pub completion_mode: Option<ActionCompletionMode>,
}

/// `ActionCompletionMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum ActionCompletionMode {
    Individual,
    Grouped,
}

/// `TransactionAction`: a flat union on `type`, each action's arguments under `data`. The
/// snapshot actions and `abort`; the backup and dirty-bitmap actions QEMU also has are refused
/// by the argument check (their jobs do not exist here).
#[derive(Debug, Clone, Deserialize, Qapi)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum TransactionAction {
    Abort(AbortWrapper),
    BlockdevSnapshot(BlockdevSnapshotWrapper),
    BlockdevSnapshotInternalSync(BlockdevSnapshotInternalWrapper),
    BlockdevSnapshotSync(BlockdevSnapshotSyncWrapper),
}

impl TransactionAction {
    /// QEMU's TransactionActionKind name.
    pub fn kind(&self) -> &'static str {
        match self {
            TransactionAction::Abort(_) => "abort",
            TransactionAction::BlockdevSnapshot(_) => "blockdev-snapshot",
            TransactionAction::BlockdevSnapshotInternalSync(_) => "blockdev-snapshot-internal-sync",
            TransactionAction::BlockdevSnapshotSync(_) => "blockdev-snapshot-sync",
        }
    }
}

/// `Abort`: an action that always fails (to test the rollback).
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct Abort {}

#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct AbortWrapper {
    pub data: Abort,
}

#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevSnapshotWrapper {
    pub data: BlockdevSnapshotArgs,
}

#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevSnapshotInternalWrapper {
    pub data: BlockdevSnapshotInternalArgs,
}

#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevSnapshotSyncWrapper {
    pub data: BlockdevSnapshotSyncArgs,
}

/// `blockdev-snapshot-delete-internal-sync`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockdevSnapshotDeleteInternalArgs {
    pub device: String,
    pub id: Option<String>,
    pub name: Option<String>,
}

/// `block_resize`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockResizeArgs {
    pub device: Option<String>,
    #[serde(rename = "node-name")]
    pub node_name: Option<String>,
    pub size: i64,
}

// ---------------------------------------------------------------------------------------------
// jobs

/// `BlockdevOnError`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum BlockdevOnError {
    #[default]
    Report,
    Ignore,
    Enospc,
    Stop,
    Auto,
}

/// `block-stream`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockStreamArgs {
    #[serde(rename = "job-id")]
    pub job_id: Option<String>,
    pub device: String,
    pub base: Option<String>,
    #[serde(rename = "base-node")]
    pub base_node: Option<String>,
    #[serde(rename = "backing-file")]
    pub backing_file: Option<String>,
    pub bottom: Option<String>,
    pub speed: Option<i64>,
    #[serde(rename = "on-error")]
    pub on_error: Option<BlockdevOnError>,
    #[serde(rename = "filter-node-name")]
    pub filter_node_name: Option<String>,
    #[serde(rename = "auto-finalize")]
    pub auto_finalize: Option<bool>,
    #[serde(rename = "auto-dismiss")]
    pub auto_dismiss: Option<bool>,
}

/// `block-commit`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockCommitArgs {
    #[serde(rename = "job-id")]
    pub job_id: Option<String>,
    pub device: String,
    #[serde(rename = "base-node")]
    pub base_node: Option<String>,
    #[qapi(feature = "deprecated")]
    pub base: Option<String>,
    #[serde(rename = "top-node")]
    pub top_node: Option<String>,
    #[qapi(feature = "deprecated")]
    pub top: Option<String>,
    #[serde(rename = "backing-file")]
    pub backing_file: Option<String>,
    pub speed: Option<i64>,
    #[serde(rename = "on-error")]
    pub on_error: Option<BlockdevOnError>,
    #[serde(rename = "filter-node-name")]
    pub filter_node_name: Option<String>,
    #[serde(rename = "auto-finalize")]
    pub auto_finalize: Option<bool>,
    #[serde(rename = "auto-dismiss")]
    pub auto_dismiss: Option<bool>,
}

/// `block-job-set-speed`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockJobSetSpeedArgs {
    pub device: String,
    pub speed: i64,
}

/// `block-job-cancel`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockJobCancelArgs {
    pub device: String,
    pub force: Option<bool>,
}

/// `block-job-pause`, `-resume`, `-complete`.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct BlockJobDeviceArgs {
    pub device: String,
}

/// `block-job-finalize`, `block-job-dismiss` and every `job-*` verb.
#[derive(Debug, Clone, Deserialize, Qapi)]
pub struct JobIdArgs {
    pub id: String,
}

/// `JobType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum JobType {
    Commit,
    Stream,
    Mirror,
    Backup,
    Create,
    Amend,
    SnapshotLoad,
    SnapshotSave,
    SnapshotDelete,
}

impl JobType {
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Commit => "commit",
            JobType::Stream => "stream",
            JobType::Mirror => "mirror",
            JobType::Backup => "backup",
            JobType::Create => "create",
            JobType::Amend => "amend",
            JobType::SnapshotLoad => "snapshot-load",
            JobType::SnapshotSave => "snapshot-save",
            JobType::SnapshotDelete => "snapshot-delete",
        }
    }
}

/// `JobStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(rename_all = "kebab-case")]
pub enum JobStatus {
    Undefined,
    Created,
    Running,
    Paused,
    Ready,
    Standby,
    Waiting,
    Pending,
    Aborting,
    Concluded,
    Null,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Undefined => "undefined",
            JobStatus::Created => "created",
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Ready => "ready",
            JobStatus::Standby => "standby",
            JobStatus::Waiting => "waiting",
            JobStatus::Pending => "pending",
            JobStatus::Aborting => "aborting",
            JobStatus::Concluded => "concluded",
            JobStatus::Null => "null",
        }
    }
}

/// `BlockJobInfo` (`device` holds the job id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct BlockJobInfo {
    #[serde(rename = "type")]
    pub kind: String,
    pub device: String,
    pub len: i64,
    pub offset: i64,
    pub busy: bool,
    pub paused: bool,
    pub speed: i64,
    #[serde(rename = "io-status")]
    pub io_status: BlockDeviceIoStatus,
    pub ready: bool,
    pub status: JobStatus,
    #[serde(rename = "auto-finalize")]
    pub auto_finalize: bool,
    #[serde(rename = "auto-dismiss")]
    pub auto_dismiss: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `JobInfo` (`query-jobs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct JobInfo {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: JobType,
    pub status: JobStatus,
    #[serde(rename = "current-progress")]
    pub current_progress: i64,
    #[serde(rename = "total-progress")]
    pub total_progress: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// QAPI descriptions of the block crate's image information

const fn member(name: &'static str, ty: fn() -> QType, optional: bool) -> Member {
    Member { name, ty, optional, features: &[] }
}

fn str_type() -> QType {
    QType::Builtin(Builtin::Str)
}

fn int_type() -> QType {
    QType::Builtin(Builtin::Int(IntKind::I64))
}

fn bool_type() -> QType {
    QType::Builtin(Builtin::Bool)
}

fn snapshot_list() -> QType {
    QType::Array(<block::SnapshotInfo as Qapi>::qapi_type)
}

fn format_specific() -> QType {
    static QCOW2: ObjectDef = ObjectDef {
        name: "ImageInfoSpecificQCow2",
        bases: &[],
        members: &[
            member("compat", str_type, false),
            member("compression-type", str_type, false),
            member("lazy-refcounts", bool_type, true),
            member("refcount-bits", int_type, false),
            member("corrupt", bool_type, true),
            member("extended-l2", bool_type, true),
        ],
        union: None,
    };
    fn qcow2() -> QType {
        QType::Object(&QCOW2)
    }
    static DEF: ObjectDef = ObjectDef {
        name: "ImageInfoSpecific",
        bases: &[],
        members: &[member("type", str_type, false), member("data", qcow2, false)],
        union: None,
    };
    QType::Object(&DEF)
}

impl Qapi for block::SnapshotInfo {
    fn qapi_type() -> QType {
        static DEF: ObjectDef = ObjectDef {
            name: "SnapshotInfo",
            bases: &[],
            members: &[
                member("id", str_type, false),
                member("name", str_type, false),
                member("vm-state-size", int_type, false),
                member("date-sec", int_type, false),
                member("date-nsec", int_type, false),
                member("vm-clock-sec", int_type, false),
                member("vm-clock-nsec", int_type, false),
                member("icount", int_type, true),
            ],
            union: None,
        };
        QType::Object(&DEF)
    }
}

impl Qapi for block::ImageInfo {
    fn qapi_type() -> QType {
        static DEF: ObjectDef = ObjectDef {
            name: "ImageInfo",
            bases: &[],
            members: &[
                member("filename", str_type, false),
                member("format", str_type, false),
                member("dirty-flag", bool_type, true),
                member("actual-size", int_type, true),
                member("virtual-size", int_type, false),
                member("cluster-size", int_type, true),
                member("encrypted", bool_type, true),
                member("compressed", bool_type, true),
                member("backing-filename", str_type, true),
                member("full-backing-filename", str_type, true),
                member("backing-filename-format", str_type, true),
                member("snapshots", snapshot_list, true),
                member("backing-image", <block::ImageInfo as Qapi>::qapi_type, true),
                member("format-specific", format_specific, true),
            ],
            union: None,
        };
        QType::Object(&DEF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qapi::check::check_arguments;
    use serde_json::{Value, json};

    fn check<T: Qapi>(v: Value) -> Result<(), String> {
        check_arguments(v.as_object().unwrap(), T::qapi_type()).map_err(|e| e.desc)
    }

    #[test]
    fn blockdev_add_checks_like_qemu() {
        assert_eq!(
            check::<BlockdevOptions>(json!({"driver": "bogus", "node-name": "x"})),
            Err("Parameter 'driver' does not accept value 'bogus'".into())
        );
        assert_eq!(
            check::<BlockdevOptions>(json!({"driver": "file", "node-name": "x"})),
            Err("Parameter 'filename' is missing".into())
        );
        assert_eq!(
            check::<BlockdevOptions>(
                json!({"driver": "qcow2", "node-name": "x", "file": {"driver": "nope", "filename": "a"}})
            ),
            Err("Parameter 'driver' does not accept value 'nope'".into())
        );
        assert_eq!(
            check::<BlockdevOptions>(json!({"driver": "qcow2", "node-name": "x", "file": "f", "bogus": 1})),
            Err("Parameter 'bogus' is unexpected".into())
        );
        let ok = json!({"driver": "qcow2", "node-name": "top", "read-only": true,
            "file": {"driver": "file", "filename": "/x"}, "backing": null});
        assert_eq!(check::<BlockdevOptions>(ok.clone()), Ok(()));
        let o: BlockdevOptions = serde_json::from_value(ok).unwrap();
        let BlockdevOptions::Qcow2(q) = o else { panic!("qcow2 expected") };
        assert!(matches!(q.backing, Some(BlockdevRefOrNull::Null(()))));
        assert!(matches!(q.file, BlockdevRef::Definition(_)));
        assert_eq!(q.base.node_name.as_deref(), Some("top"));
        let o: BlockdevOptions =
            serde_json::from_value(json!({"driver": "qcow2", "node-name": "t", "file": "f0"})).unwrap();
        let BlockdevOptions::Qcow2(q) = o else { panic!("qcow2 expected") };
        assert!(q.backing.is_none());
        assert!(matches!(q.file, BlockdevRef::Reference(ref s) if s == "f0"));
    }

    #[test]
    fn job_args() {
        assert_eq!(
            check::<BlockStreamArgs>(json!({"device": "d", "on-error": "sometimes"})),
            Err("Parameter 'on-error' does not accept value 'sometimes'".into())
        );
        assert_eq!(check::<BlockCommitArgs>(json!({})), Err("Parameter 'device' is missing".into()));
    }
}
