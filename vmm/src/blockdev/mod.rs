//! Drives and block nodes of the running machine, and everything the monitor does with them.
//!
//! | file | what it is |
//! |---|---|
//! | [`graph`] | named nodes (format and protocol), their links, drives; ops lock; garbage collection |
//! | [`backend`] | a drive as devices see it: requests under a lock that pivots drain |
//! | [`drive`] | `-drive` / `-hda` parsing with QEMU's drive names |
//! | [`cmdline`] | `-blockdev` (dotted keys or JSON) into `blockdev-add` options |
//! | [`open`] | `blockdev-add`: opening a tree of node options |
//! | [`query`] | `query-block`, `query-named-block-nodes` |
//! | [`stats`] | I/O accounting of drives (device requests), `query-blockstats` |
//! | [`throttle`] | I/O limits of drives (`block_set_io_throttle`): leaky buckets |
//! | [`snapshot`] | `blockdev-snapshot-sync`, `blockdev-snapshot`, internal snapshots, their undo |
//! | [`transaction`] | `transaction`: snapshot actions, all or none |
//! | [`manage`] | `blockdev-del`, `block_resize`, HMP `commit` |
//! | [`start`] | `block-stream`, `block-commit` checks and job creation; op blockers; reopen rw |
//! | [`jobs`] | job state machine, verbs, events; stream and commit copy loops |
//! | [`qemu_io`] | HMP `qemu-io` subset |
//! | [`service`] | the thread that runs the monitor's block requests |
//!
//! Data flow: monitor handler → `ControlRequest::Block` → control loop → [`service`] thread →
//! graph / jobs → reply (and, for job starts and asynchronous verbs, a kick the monitor runs
//! after writing the reply).

pub mod backend;
pub mod cmdline;
pub mod drive;
pub mod graph;
pub mod jobs;
pub mod manage;
pub mod open;
pub mod qemu_io;
pub mod query;
pub mod service;
pub mod snapshot;
pub mod start;
pub mod stats;
pub mod throttle;
pub mod transaction;

pub use backend::{BlockBackend, IoStatus};
pub use drive::{CacheMode, DriveNamer, DriveSpec, Interface, OnError};
pub use graph::BlockGraph;
pub use service::BlockService;
