//! The HMP commands, one file per subject. Each file exports `const` slices of
//! [`HmpCommand`]s: `COMMANDS` for the main table, `INFO` for `info` subcommands. To add
//! commands (block, network, ...), add a file and list its slices here; the tables are sorted at
//! start-up, so order does not matter.
//!
//! Every handler that has a QMP counterpart calls the registry entry through
//! [`Ctx::qmp`](super::context::Ctx::qmp) and only formats the result.

mod block;
mod chardev;
mod cpus;
mod help;
mod info;
mod memory;
mod pci;
mod qom;
mod run_state;

use super::table::HmpCommand;

/// Slices that make up the main table.
pub(super) const MAIN: &[&[HmpCommand]] =
    &[help::COMMANDS, run_state::COMMANDS, cpus::COMMANDS, block::COMMANDS, qom::COMMANDS, memory::COMMANDS];

/// Slices that make up the `info` table.
pub(super) const INFO: &[&[HmpCommand]] =
    &[info::INFO, cpus::INFO, chardev::INFO, block::INFO, pci::INFO, qom::INFO];

pub(crate) use cpus::cpu_list;
