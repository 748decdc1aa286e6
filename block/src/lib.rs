//! Block layer: raw and qcow2 images, backing chains, internal snapshots, job helpers, and
//! the logic of the `vmm-img` tool (qemu-img compatible).
//!
//! # API for the machine and for block jobs
//!
//! * [`BlockNode`] is one open image with its backing chain
//!   ([`BlockNode::open`] with [`OpenOptions`]: format or probing, read-only, backing from
//!   the header / none / an explicit node). It is `Send + Sync`; share it as
//!   `Arc<BlockNode>`. Several threads may issue I/O on one node at once.
//!   - I/O at byte offsets: [`BlockNode::read`], [`write`](BlockNode::write),
//!     [`flush`](BlockNode::flush), [`discard`](BlockNode::discard),
//!     [`write_zeroes`](BlockNode::write_zeroes), [`make_unallocated`](BlockNode::make_unallocated).
//!   - [`block_status`](BlockNode::block_status) (allocated / zero / data / depth in the
//!     chain / host offset), [`is_allocated`](BlockNode::is_allocated),
//!     [`is_allocated_above`](BlockNode::is_allocated_above).
//!   - [`resize`](BlockNode::resize); chain inspection with [`backing`](BlockNode::backing)
//!     and [`chain`](BlockNode::chain); [`set_backing`](BlockNode::set_backing) rewrites the
//!     qcow2 header's backing file name and format and swaps the link in memory (the last
//!     step of stream/commit, and `rebase`).
//!   - [`info`](BlockNode::info) / [`info_recursive`](BlockNode::info_recursive) return
//!     [`ImageInfo`], serialisable to exactly the JSON of `qemu-img info --output=json` and
//!     QMP `query-block`'s `image` member (field names `virtual-size`, `backing-image`, ...).
//!   - Internal snapshots through [`BlockNode::qcow2`]: [`Qcow2::snapshots`],
//!     [`Qcow2::snapshot_create`], [`Qcow2::snapshot_apply`], [`Qcow2::snapshot_delete`];
//!     with VM state (savevm/loadvm): [`Qcow2::write_vmstate`],
//!     [`Qcow2::snapshot_create_vmstate`], [`Qcow2::read_vmstate`].
//! * Threading: every method blocks its caller on file I/O (`pread`/`pwrite`, no async
//!   runtime inside). Device and job threads call them directly; async code uses
//!   [`asyncio`], which runs them on tokio's blocking pool.
//! * Dirty tracking: [`BlockNode::add_dirty_bitmap`] returns a [`dirty::DirtyBitmap`] that
//!   every later write, write-zeroes and discard marks (after completing); an active commit
//!   or mirror copies what it reports until it is clean, then pivots.
//! * Stream safety: [`BlockNode::write_unallocated`] / [`BlockNode::write_zeroes_unallocated`]
//!   write only clusters the layer does not allocate yet, atomically against concurrent
//!   writers, so streaming under a running guest never replaces newer guest data.
//! * Jobs ([`jobs`]): [`jobs::StreamCopier`] and [`jobs::CommitCopier`] copy one bounded
//!   chunk per `step()` so the driver can pause, rate-limit and report `offset`/`len`;
//!   `finish()` changes the backing link. [`jobs::create_overlay`] makes an external
//!   snapshot overlay.
//! * Crash consistency: qcow2 metadata is written back in dependency order (refcounts, then
//!   L2 tables, then L1, each followed by a sync), freed clusters are reused only after the
//!   references to them are gone on disk, and `flush` is a full barrier. A process killed
//!   at any point leaves an image that `qemu-img check` finds clean or with leaked clusters
//!   only, and every write acknowledged before a completed `flush` is on disk.
//! * Errors: [`BlockError`], with QEMU's wording.
//!
//! The `vmm-img` command line lives in [`img`]; `vmm/src/bin/vmm-img.rs` only calls
//! [`img::main`].

pub mod asyncio;
pub mod dirty;
pub mod error;
pub mod file;
pub mod img;
pub mod info;
pub mod jobs;
pub mod node;
pub mod qcow2;
pub mod raw;

pub use error::{BlockError, Result};
pub use file::FileStats;
pub use info::{ImageInfo, SnapshotInfo};
pub use node::{Backing, BlockNode, BlockStatus, Format, OpenOptions};
pub use qcow2::Qcow2;
