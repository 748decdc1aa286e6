//! monitor
pub mod qmp;
