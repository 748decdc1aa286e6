//! HMP, the human monitor: QEMU's command table, argument parser, line editor and output formats.
//!
//! ```text
//! session (interactive) ── bytes ─▶ readline (echo, editing, history, TAB ─▶ completion)
//!        └──── line ──┐
//! human-monitor-command ─ line ─▶ dispatch ─▶ table lookup (info ─▶ sub-table)
//!        ─▶ args (args_type ─▶ JSON object) ─▶ commands::* handler
//!        ─▶ Ctx::qmp(name, args) ─▶ the shared QMP registry ─▶ text formatted as QEMU's
//! ```
//!
//! Handlers never re-implement a QMP command: they call the same registry entry a QMP client
//! reaches, and format the result. Output uses `\r\n` line ends, as QEMU's monitor writes it.

pub mod args;
pub mod commands;
pub mod completion;
pub mod context;
pub mod dispatch;
pub mod expr;
pub mod numbers;
pub mod readline;
pub mod session;
pub mod table;

use std::sync::Arc;

use crate::Monitor;
use crate::error::QmpError;

pub use session::{HmpOptions, PROMPT, banner, serve};

/// Runs one HMP command line and returns its output (`\r\n` line ends, `""` if none), as
/// `human-monitor-command` does: no line editor, no echo, no prompt. `cpu_index` selects the CPU
/// for CPU-dependent commands (an index that does not exist is ignored here; see
/// [`human_monitor_command`]).
pub async fn run_line(monitor: &Arc<Monitor>, line: &str, cpu_index: Option<i64>) -> String {
    let state = context::HmpState { cpu_index, ..Default::default() };
    let mut ctx = context::Ctx::new(monitor.clone(), state, None);
    dispatch::execute(&mut ctx, line).await;
    ctx.into_parts().0
}

/// QMP `human-monitor-command`: like [`run_line`], but an unknown `cpu-index` fails as in QEMU
/// (`Parameter 'cpu-index' expects a CPU number`).
pub async fn human_monitor_command(
    monitor: &Arc<Monitor>,
    line: &str,
    cpu_index: Option<i64>,
) -> Result<String, QmpError> {
    if let Some(index) = cpu_index {
        let ctx = context::Ctx::new(monitor.clone(), context::HmpState::default(), None);
        let cpus = commands::cpu_list(&ctx).await?;
        if !cpus.iter().any(|c| c.0 == index) {
            return Err(QmpError::invalid_value("cpu-index", "a CPU number"));
        }
    }
    Ok(run_line(monitor, line, cpu_index).await)
}
