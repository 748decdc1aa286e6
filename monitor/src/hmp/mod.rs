//! HMP (PLACEHOLDER until the hmp branch lands).
use std::sync::Arc;

use crate::Monitor;

pub async fn run_line(_monitor: &Arc<Monitor>, line: &str, _cpu_index: Option<i64>) -> String {
    let cmd = line.split_whitespace().next().unwrap_or("");
    if cmd.is_empty() { String::new() } else { format!("unknown command: '{cmd}'\r\n") }
}
