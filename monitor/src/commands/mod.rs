//! QMP command handlers, grouped by subject. Each file registers its commands with typed
//! arguments and return values; handlers that need the machine send a
//! [`ControlRequest`](crate::control::ControlRequest).

mod chardev;
mod machine;
pub mod pci;
mod protocol;
mod run_state;

pub use protocol::{QmpCapabilitiesArgs, QmpCapability};

use crate::registry::Registry;

/// Registers every command, in the order `query-commands` lists them.
pub fn register_all(reg: &mut Registry) {
    protocol::register(reg);
    run_state::register(reg);
    machine::register(reg);
    chardev::register(reg);
    pci::register(reg);
}
