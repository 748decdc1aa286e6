//! Drives and block nodes of the running machine: the graph ([`graph`]), the drive indirection
//! devices do I/O through ([`backend`]), and the command line's `-drive`/`-hda` ([`drive`]).
//! QMP block commands and block jobs work on the same graph from the control loop.

pub mod backend;
pub mod drive;
pub mod graph;

pub use backend::{BlockBackend, IoStatus};
pub use drive::{CacheMode, DriveNamer, DriveSpec, Interface};
pub use graph::BlockGraph;
