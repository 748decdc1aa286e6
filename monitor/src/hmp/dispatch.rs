//! Running one HMP command line (QEMU's `handle_hmp_command`): find the command (descending into
//! `info`'s sub-table), parse its arguments, run its handler. Messages and their quirks follow QEMU:
//! `unknown command: '<the line up to the bad name>'`, and after an argument error
//! `Try "help <the line up to the command name>" for more information`.

use super::args::{is_space, parse_args, skip_spaces};
use super::context::{Ctx, out};
use super::table::{HmpCommand, find, tables};

/// Executes one line; output accumulates in `ctx`.
pub async fn execute(ctx: &mut Ctx, line: &str) {
    let bytes = line.as_bytes();
    let Some((cmd, args_pos)) = parse_command(ctx, bytes, 0, &tables().main) else { return };
    // The memory-dump defaults are the process's, not the session's (QEMU's statics).
    let defaults = ctx.monitor.hmp_dump_defaults.lock().map(|d| *d).unwrap_or((b'x', 4));
    (ctx.state.dump_format, ctx.state.dump_size) = defaults;
    let parsed = parse_args(cmd.names, cmd.args_type, bytes, args_pos, &mut ctx.state);
    if let Ok(mut d) = ctx.monitor.hmp_dump_defaults.lock() {
        *d = (ctx.state.dump_format, ctx.state.dump_size);
    }
    let args = match parsed {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                out!(ctx, "{msg}\n");
            }
            let mut end = args_pos;
            while end > 0 && is_space(bytes[end - 1]) {
                end -= 1;
            }
            out!(ctx, "Try \"help {}\" for more information\n", &line[..end]);
            return;
        }
    };
    (cmd.handler)(ctx, args).await;
}

/// Finds the command named at `pos`; returns it and where its arguments start. Prints
/// `unknown command` itself; returns `None` for a blank line too.
fn parse_command(
    ctx: &mut Ctx,
    line: &[u8],
    mut pos: usize,
    table: &[&'static HmpCommand],
) -> Option<(&'static HmpCommand, usize)> {
    skip_spaces(line, &mut pos);
    if pos >= line.len() {
        return None;
    }
    let start = pos;
    while pos < line.len() && line[pos] != b'/' && !is_space(line[pos]) {
        pos += 1;
    }
    let name = String::from_utf8_lossy(&line[start..pos]);
    let Some(cmd) = find(table, &name) else {
        out!(ctx, "unknown command: '{}'\n", String::from_utf8_lossy(&line[..pos]));
        return None;
    };
    skip_spaces(line, &mut pos);
    if let Some(sub) = cmd.sub_table
        && pos < line.len()
    {
        return parse_command(ctx, line, pos, sub());
    }
    Some((cmd, pos))
}
