//! QMP command handlers, grouped by subject. Each file registers its commands with typed
//! arguments and return values; handlers that need the machine send a
//! [`ControlRequest`](crate::control::ControlRequest).

mod block;
mod chardev;
mod jobs;
mod machine;
pub mod memory;
mod migration;
pub mod pci;
mod protocol;
pub mod qom;
mod run_state;
mod yank;

pub use protocol::{QmpCapabilitiesArgs, QmpCapability};

use crate::registry::Registry;

/// Registers every command, in the order `query-commands` lists them.
pub fn register_all(reg: &mut Registry) {
    protocol::register(reg);
    run_state::register(reg);
    machine::register(reg);
    migration::register(reg);
    yank::register(reg);
    chardev::register(reg);
    block::register(reg);
    jobs::register(reg);
    pci::register(reg);
    memory::register(reg);
    qom::register(reg);
}
