//! `vmm-img`: qemu-img's command line on top of the block layer.
//!
//! One file per subcommand; each parses its own options with [`args::parse`] (qemu-img's
//! spellings), prints what qemu-img prints and returns qemu-img's exit code. Errors are
//! printed as `vmm-img: <message>` with qemu-img's message text.

pub mod args;
mod check;
mod commit;
mod compare;
mod convert;
mod create;
mod info;
mod map;
mod measure;
pub mod progress;
mod rebase;
mod resize;
pub mod size;
mod snapshot;

use crate::error::BlockError;
use crate::node::{Backing, BlockNode, Format, OpenOptions};
use std::sync::Arc;

/// A failed command: message and exit code.
#[derive(Debug)]
pub struct ImgError {
    pub code: i32,
    pub msg: String,
    pub usage: bool,
}

impl ImgError {
    pub fn new(msg: impl Into<String>) -> Self {
        ImgError { code: 1, msg: msg.into(), usage: false }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        ImgError { code: 1, msg: msg.into(), usage: true }
    }

    pub fn code(mut self, code: i32) -> Self {
        self.code = code;
        self
    }
}

impl From<BlockError> for ImgError {
    fn from(e: BlockError) -> Self {
        ImgError::new(e.to_string())
    }
}

pub type ImgResult = Result<i32, ImgError>;

/// Parses `-f`/`-F`/`-O` values.
pub fn parse_format(s: &str) -> Result<Format, ImgError> {
    Format::parse(s).map_err(|_| ImgError::new(format!("Unknown file format '{s}'")))
}

/// Opens an image as qemu-img does, wrapping errors as `Could not open 'x': ...`.
pub fn open_image(
    path: &str,
    fmt: Option<&str>,
    read_only: bool,
    backing: Backing,
) -> Result<Arc<BlockNode>, ImgError> {
    let format = match fmt {
        Some(f) => {
            Some(Format::parse(f).map_err(|e| ImgError::new(format!("Could not open '{path}': {e}")))?)
        }
        None => None,
    };
    let opts = OpenOptions { format, read_only, backing };
    BlockNode::open(path, &opts).map_err(|e| ImgError::new(format!("Could not open '{path}': {e}")))
}

/// Pretty JSON with QEMU's four-space indent.
pub fn to_json<T: serde::Serialize>(v: &T) -> String {
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    if v.serialize(&mut ser).is_err() {
        return String::from("null");
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks `--output=` and returns true for json.
pub fn output_json(a: &args::Args) -> Result<bool, ImgError> {
    match a.value("output") {
        None | Some("human") => Ok(false),
        Some("json") => Ok(true),
        Some(_) => Err(ImgError::new("--output must be used with human or json as argument.")),
    }
}

const USAGE: &str = "Usage: vmm-img [standard options] command [command options]
QEMU disk image utility (qemu-img compatible)

Commands:
  check [--output=ofmt] [-r [leaks | all]] [-f fmt] filename
  commit [-q] [-f fmt] [-b base] [-d] [-p] filename
  compare [-f fmt] [-F fmt] [-p] [-q] [-s] filename1 filename2
  convert [-c] [-p] [-q] [-n] [-f fmt] [-O output_fmt] [-o options] [-S sparse_size] filename output_filename
  create [-q] [-f fmt] [-b backing_file [-F backing_fmt]] [-u] [-o options] filename [size]
  info [-f fmt] [--output=ofmt] [--backing-chain] filename
  map [--output=ofmt] [-f fmt] [--start-offset=offset] [--max-length=len] filename
  measure [--output=ofmt] [-O output_fmt] [-o options] [--size N | [-f fmt] filename]
  snapshot [-q] [-l | -a snapshot | -c snapshot | -d snapshot] [-f fmt] filename
  rebase [-q] [-f fmt] [-p] [-u] -b backing_file [-F backing_fmt] filename
  resize [-q] [-f fmt] [--shrink] filename [+ | -]size

Supported formats: raw qcow2
";

/// Runs `vmm-img` with `argv` (without the program name); returns the exit code.
pub fn run(argv: &[String]) -> i32 {
    let Some(cmd) = argv.first() else {
        eprintln!("vmm-img: Not enough arguments\nTry 'vmm-img --help' for more information");
        return 1;
    };
    let rest = &argv[1..];
    let r = match cmd.as_str() {
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(0)
        }
        "-V" | "--version" => {
            println!("vmm-img version {} (qemu-img compatible)", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        "check" => check::run(rest),
        "commit" => commit::run(rest),
        "compare" => compare::run(rest),
        "convert" => convert::run(rest),
        "create" => create::run(rest),
        "info" => info::run(rest),
        "map" => map::run(rest),
        "measure" => measure::run(rest),
        "snapshot" => snapshot::run(rest),
        "rebase" => rebase::run(rest),
        "resize" => resize::run(rest),
        "amend" | "bench" | "bitmap" | "dd" => {
            Err(ImgError::new(format!("Command '{cmd}' is not supported by vmm-img")))
        }
        _ => Err(ImgError::usage(format!("Command not found: {cmd}"))),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmm-img: {}", e.msg);
            if e.usage {
                eprintln!("Try 'vmm-img --help' for more information");
            }
            e.code
        }
    }
}

/// Entry point of the `vmm-img` binary.
pub fn main() -> i32 {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    run(&argv)
}

/// Rejects options vmm-img recognises but does not implement.
pub fn reject_unsupported(a: &args::Args, names: &[&str]) -> Result<(), ImgError> {
    for n in names {
        if a.has(n) {
            let dash = if n.len() == 1 { "-" } else { "--" };
            return Err(ImgError::new(format!("Option '{dash}{n}' is not supported by vmm-img")));
        }
    }
    Ok(())
}
