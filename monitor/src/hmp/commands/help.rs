//! `help|?` and bare `info`.

use serde_json::Value;

use crate::hmp::context::Ctx;
use crate::hmp::table::{Args, HandlerFuture, HmpCommand, info_table, print_help};

pub(super) const COMMANDS: &[HmpCommand] = &[
    HmpCommand {
        names: "help|?",
        args_type: "name:S?",
        params: "[cmd]",
        help: "show the help",
        handler: help,
        sub_table: None,
    },
    HmpCommand {
        names: "info",
        args_type: "item:s?",
        params: "[subcommand]",
        help: "show various information about the system state",
        handler: info,
        sub_table: Some(info_table),
    },
];

fn help(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let name = args.get("name").and_then(Value::as_str);
        print_help(ctx, name);
    })
}

/// `info` without a subcommand lists the subcommands.
fn info(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move { print_help(ctx, Some("info")) })
}
