//! QMP: the byte-stream decoder, the envelope, and the per-connection session.

pub mod json_out;
pub mod json_stream;
pub mod message;
pub mod session;

pub use session::{QmpOptions, serve};
