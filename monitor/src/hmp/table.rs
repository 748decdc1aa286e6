//! The HMP command table, in QEMU's shape (`hmp-commands.hx`): each entry has its names with
//! aliases (`cont|c`), an `args_type` string (see [`args`](super::args)), the parameter synopsis and
//! help text that `help` prints, and a handler. `info` owns a sub-table.
//!
//! Entries live in `const` slices in the files of [`commands`](super::commands), one file per
//! subject; [`tables`] gathers and sorts them once (QEMU sorts both tables by name at start-up).

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::commands;
use super::context::{Ctx, out};

/// Parsed arguments, keyed by the names in `args_type`.
pub type Args = Map<String, Value>;
/// A handler's future (it borrows the context).
pub type HandlerFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
/// A command handler.
pub type Handler = for<'a> fn(&'a mut Ctx, Args) -> HandlerFuture<'a>;

/// One HMP command.
pub struct HmpCommand {
    /// Names separated by `|`, the first being the main one (`quit|q`).
    pub names: &'static str,
    /// What the arguments are (`device:B,speed:o?`).
    pub args_type: &'static str,
    /// The synopsis `help` prints (`device [speed [base]]`).
    pub params: &'static str,
    /// The text `help` prints after ` -- `; may span several lines as QEMU's does.
    pub help: &'static str,
    pub handler: Handler,
    /// For `info`: the table its first argument is looked up in.
    pub sub_table: Option<fn() -> &'static [&'static HmpCommand]>,
}

impl HmpCommand {
    /// Whether `name` is one of this command's names (QEMU's `hmp_compare_cmd`).
    pub fn is_named(&self, name: &str) -> bool {
        self.names.split('|').any(|n| n == name)
    }
}

/// Both tables, sorted by `names` (byte order, as QEMU's `strcmp`).
pub struct Tables {
    pub main: Vec<&'static HmpCommand>,
    pub info: Vec<&'static HmpCommand>,
}

/// The command tables, built on first use.
pub fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut main: Vec<&'static HmpCommand> = commands::MAIN.iter().flat_map(|t| t.iter()).collect();
        let mut info: Vec<&'static HmpCommand> = commands::INFO.iter().flat_map(|t| t.iter()).collect();
        main.sort_by(|a, b| a.names.cmp(b.names));
        info.sort_by(|a, b| a.names.cmp(b.names));
        Tables { main, info }
    })
}

/// The `info` sub-table (for [`HmpCommand::sub_table`]).
pub fn info_table() -> &'static [&'static HmpCommand] {
    &tables().info
}

/// Finds a command by one of its names.
pub fn find(table: &[&'static HmpCommand], name: &str) -> Option<&'static HmpCommand> {
    table.iter().copied().find(|c| c.is_named(name))
}

/// `help [words]` (QEMU's `help_cmd`): all commands, one command, or a sub-table's commands.
/// Extra words after a command are ignored; a malformed line prints nothing.
pub fn print_help(ctx: &mut Ctx, line: Option<&str>) {
    let words = match line {
        Some(l) => match super::args::split_words(l.as_bytes()) {
            Some(w) => w,
            None => return,
        },
        None => Vec::new(),
    };
    dump(ctx, &tables().main, &words, 0);
}

fn dump(ctx: &mut Ctx, table: &[&'static HmpCommand], words: &[String], index: usize) {
    let Some(word) = words.get(index) else {
        for cmd in table {
            dump_one(ctx, cmd, &words[..index]);
        }
        return;
    };
    match find(table, word) {
        Some(cmd) => match cmd.sub_table {
            Some(sub) => dump(ctx, sub(), words, index + 1),
            None => dump_one(ctx, cmd, &words[..index]),
        },
        None => out!(ctx, "unknown command: '{}'\n", words[..=index].join(" ")),
    }
}

fn dump_one(ctx: &mut Ctx, cmd: &HmpCommand, prefix: &[String]) {
    for p in prefix {
        out!(ctx, "{p} ");
    }
    out!(ctx, "{} {} -- {}\n", cmd.names, cmd.params, cmd.help);
}
