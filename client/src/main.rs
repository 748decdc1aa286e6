//! vmmon: a client for QEMU-compatible monitors (QMP and HMP) with a REPL and scripting.
//!
//! Code map: `address`/`transport`/`link`/`telnet` open the byte stream; `detect` recognises
//! a QMP greeting or an HMP banner; `qmp` (with `json_framer`) and `hmp` (with `ansi`) speak
//! the protocols; `session` runs input lines (parsed by `command_line` and `keyval`, typed by
//! `schema`); `repl` (with `completion`, `hmp_help`, `history`) and `script` drive a session;
//! `output` prints everything, including the block-job bars from `progress`; `events` keeps
//! events for `wait-event`.

mod address;
mod ansi;
mod command_line;
mod completion;
mod detect;
mod error;
mod events;
mod history;
mod hmp;
mod hmp_help;
mod json_framer;
mod keyval;
mod link;
mod output;
mod progress;
mod qmp;
mod repl;
mod schema;
mod script;
mod session;
mod telnet;
mod transport;

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;

use crate::address::Address;
use crate::error::{EXIT_CONNECTION, Error};
use crate::output::{Format, Output};
use crate::session::{Options, Session};

/// Talk to a QEMU-compatible monitor (QMP or HMP): interactively, or from a script.
#[derive(Debug, Parser)]
#[command(name = "vmmon", version, after_help = AFTER_HELP)]
struct Cli {
    /// unix:PATH, tcp:HOST:PORT, telnet:HOST:PORT, or a unix socket path
    address: String,
    /// Script to run, one command per line ('-' reads stdin)
    script: Option<PathBuf>,
    /// Run CMD (repeatable; runs instead of the REPL)
    #[arg(short = 'c', long = "command", value_name = "CMD")]
    commands: Vec<String>,
    /// Print each reply and event as one JSON object per line
    #[arg(long)]
    json: bool,
    /// Print replies on one line instead of pretty-printing them
    #[arg(long, conflicts_with = "json")]
    compact: bool,
    /// Run the remaining commands after a failed one (the exit status is still 1)
    #[arg(long)]
    keep_going: bool,
    /// Keep trying to connect for SECONDS while the socket is missing or refusing
    #[arg(long, value_name = "SECONDS")]
    retry: Option<f64>,
    /// Give up on connecting, a reply or wait-event after SECONDS
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
    /// Over QMP, read lines as HMP commands (human-monitor-command)
    #[arg(long)]
    hmp: bool,
    /// History file (default: $XDG_STATE_HOME/vmmon/history)
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

const AFTER_HELP: &str = "\
Exit status: 0 when every command succeeded, 1 when a command failed (the first one stops
the run unless --keep-going), 2 for a connection failure, a misbehaving server, a timeout or
bad usage.";

fn seconds(value: f64, flag: &str) -> Result<Duration, Error> {
    if (0.0..1e9).contains(&value) {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(Error::Usage(format!("{flag}: expected a number of seconds, got {value}")))
    }
}

fn run(cli: Cli) -> Result<i32, Error> {
    let address = Address::parse(&cli.address)?;
    let timeout = seconds(cli.timeout, "--timeout")?;
    let retry = cli.retry.map(|r| seconds(r, "--retry")).transpose()?;
    let format = if cli.json {
        Format::Json
    } else if cli.compact {
        Format::Compact
    } else {
        Format::Pretty
    };
    let interactive = cli.commands.is_empty()
        && cli.script.is_none()
        && io::stdin().is_terminal()
        && io::stdout().is_terminal();
    // Open the script before connecting so a typo does not disturb the VM's monitor.
    let script: Option<Box<dyn Iterator<Item = io::Result<String>>>> = match &cli.script {
        Some(p) if p.as_os_str() == "-" => Some(Box::new(script::lines(io::stdin().lock()))),
        Some(p) => {
            let f = std::fs::File::open(p)
                .map_err(|e| Error::Usage(format!("Cannot open script {}: {e}", p.display())))?;
            Some(Box::new(script::lines(io::BufReader::new(f))))
        }
        None => None,
    };
    let output = Arc::new(Output::new(format));
    let options = Options { timeout, retry, start_in_hmp: cli.hmp, interactive };
    let mut session = Session::connect(address, options, output.clone())?;
    let status = if !cli.commands.is_empty() {
        let inputs: Vec<io::Result<String>> = cli.commands.into_iter().map(Ok).collect();
        let status = script::run(&mut session, &output, inputs, cli.keep_going);
        match script {
            Some(lines) if status == 0 => script::run(&mut session, &output, lines, cli.keep_going),
            _ => status,
        }
    } else if let Some(lines) = script {
        script::run(&mut session, &output, lines, cli.keep_going)
    } else if interactive {
        let history = cli.history.or_else(history::default_path);
        repl::run(&mut session, &output, history.as_deref())
    } else {
        script::run(&mut session, &output, script::lines(io::stdin().lock()), cli.keep_going)
    };
    session.close();
    Ok(status)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match run(cli) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("vmmon: {e}");
            e.exit_code()
        }
    };
    ExitCode::from(u8::try_from(status).unwrap_or(EXIT_CONNECTION as u8))
}
