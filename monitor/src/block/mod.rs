//! The block side of the monitor: QAPI types of the block and job commands ([`types`]) and the
//! requests the command handlers send to the VMM's block layer ([`request`]). The handlers live
//! in `commands::block`, `commands::jobs` and `hmp::commands::block`.

pub mod request;
pub mod stats;
pub mod types;

pub use request::{BlockRequest, JobApi, JobVerb, Kick};
