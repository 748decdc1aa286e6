//! The machine side of the VMM: the control loop that owns the run state, the KVM machine, and the
//! command line of the `vmm` binary. The monitor (QMP/HMP) lives in the `monitor` crate and reaches
//! this crate only through plain-data requests (see `control`).

pub mod blockdev;
pub mod cli;
pub mod control;
pub mod daemon;
pub mod launch;
pub mod machine;
pub mod monitors;
pub mod serial;
