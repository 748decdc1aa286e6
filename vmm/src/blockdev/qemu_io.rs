//! HMP `qemu-io`: a subset of qemu-io's commands on a drive or a node, so that data can be
//! written and checked while the VM runs (QEMU's iotests use it the same way):
//!
//! `read [-P pattern] [-q] OFF LEN`, `write [-P pattern] [-z] [-u] [-q] OFF LEN`,
//! `discard [-q] OFF LEN`, `flush`. Numbers take qemu-io's suffixes (`k`, `M`, `G`, ...).
//! A drive name goes through the drive (as a device's request would); a node name writes the
//! node itself. As in QEMU, the output is qemu-io's text for the process's stdout.

use std::sync::Arc;

use block::{BlockError, BlockNode};

use super::backend::BlockBackend;
use super::graph::BlockGraph;
use super::jobs::error_text;

/// Where the I/O goes.
pub enum Target {
    Drive(Arc<BlockBackend>),
    Node(Arc<BlockNode>),
}

impl Target {
    fn read(&self, buf: &mut [u8], off: u64) -> Result<(), BlockError> {
        match self {
            Target::Drive(b) => b.read(buf, off),
            Target::Node(n) => n.read(buf, off),
        }
    }
    fn write(&self, buf: &[u8], off: u64) -> Result<(), BlockError> {
        match self {
            Target::Drive(b) => b.write(buf, off),
            Target::Node(n) => n.write(buf, off),
        }
    }
    fn write_zeroes(&self, off: u64, len: u64) -> Result<(), BlockError> {
        match self {
            Target::Drive(b) => b.write_zeroes(off, len),
            Target::Node(n) => n.write_zeroes(off, len),
        }
    }
    fn discard(&self, off: u64, len: u64) -> Result<(), BlockError> {
        match self {
            Target::Drive(b) => b.discard(off, len),
            Target::Node(n) => n.discard(off, len),
        }
    }
    fn flush(&self) -> Result<(), BlockError> {
        match self {
            Target::Drive(b) => b.flush(),
            Target::Node(n) => n.flush(),
        }
    }
}

/// `hmp_qemu_io`'s look-up: with `qdev`, the drive of the device with that id; else a drive
/// name, else a node name.
pub fn target(graph: &BlockGraph, device: &str, qdev: bool) -> Result<Target, String> {
    if qdev {
        let needle = format!("/machine/peripheral/{device}/");
        return graph
            .backends()
            .into_iter()
            .find(|b| b.attached_to().is_some_and(|p| p.starts_with(&needle)))
            .map(Target::Drive)
            .ok_or_else(|| format!("Device '{device}' not found"));
    }
    if let Some(b) = graph.backend(device) {
        return Ok(Target::Drive(b));
    }
    match graph.entry(device) {
        Some(e) if e.is_format() => Ok(Target::Node(e.node)),
        Some(_) => Err(format!("Node '{device}' is a protocol node; qemu-io needs a format node or a drive")),
        None => Err(format!("Cannot find device='' nor node-name='{device}'")),
    }
}

/// qemu-io's `cvtnum`: a number with an optional binary suffix.
fn cvtnum(s: &str) -> Option<u64> {
    let (digits, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic() && !s.starts_with("0x"))
    {
        Some((i, _)) => {
            let m: u64 = match &s[i..] {
                "b" | "B" => 1,
                "k" | "K" => 1 << 10,
                "m" | "M" => 1 << 20,
                "g" | "G" => 1 << 30,
                "t" | "T" => 1 << 40,
                _ => return None,
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let v = match digits.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => digits.parse::<u64>().ok()?,
    };
    v.checked_mul(mult)
}

fn parse_pattern(s: &str) -> Option<u8> {
    let v = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => s.parse::<u64>().ok()?,
    };
    u8::try_from(v).ok()
}

/// Options and two numbers (`OFF LEN`) of a command.
struct Parsed {
    pattern: Option<u8>,
    zero: bool,
    quiet: bool,
    off: u64,
    len: u64,
}

fn parse(cmd: &str, args: &[&str], allowed: &str) -> Result<Parsed, String> {
    let mut p = Parsed { pattern: None, zero: false, quiet: false, off: 0, len: 0 };
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match *a {
            "-P" if allowed.contains('P') => {
                let v = it.next().ok_or_else(|| format!("{cmd}: option requires an argument -- 'P'"))?;
                p.pattern = Some(parse_pattern(v).ok_or_else(|| format!("Invalid pattern argument '{v}'"))?);
            }
            "-z" if allowed.contains('z') => p.zero = true,
            "-u" if allowed.contains('u') => {}
            "-q" => p.quiet = true,
            o if o.starts_with('-') && o.len() > 1 => {
                return Err(format!("{cmd}: invalid option -- '{}'", &o[1..]));
            }
            n => rest.push(n),
        }
    }
    let [off, len] = rest[..] else {
        return Err(format!("bad number of arguments for {cmd}"));
    };
    p.off = cvtnum(off).ok_or_else(|| format!("non-numeric offset argument -- {off}"))?;
    p.len = cvtnum(len).ok_or_else(|| format!("non-numeric length argument -- {len}"))?;
    Ok(p)
}

/// Reads and writes go in pieces of this size (no allocation follows the requested length).
const PIECE: u64 = 4 << 20;

/// Splits `[off, off+len)` into pieces of at most [`PIECE`] bytes.
fn pieces(off: u64, len: u64) -> impl Iterator<Item = (u64, u64)> {
    let end = off.saturating_add(len);
    (off..end).step_by(PIECE as usize).map(move |o| (o, PIECE.min(end - o)))
}

/// Runs one qemu-io command line; returns qemu-io's output.
pub fn run(t: &Target, line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some((&cmd, args)) = words.split_first() else { return String::new() };
    match exec(t, cmd, args) {
        Ok(s) | Err(s) => s,
    }
}

fn exec(t: &Target, cmd: &str, args: &[&str]) -> Result<String, String> {
    let line = |p: &Parsed, verb: &str| {
        if p.quiet {
            String::new()
        } else {
            format!("{verb} {}/{} bytes at offset {}\n", p.len, p.len, p.off)
        }
    };
    match cmd {
        "read" | "r" => {
            let p = parse(cmd, args, "P").map_err(|e| e + "\n")?;
            let mut buf = Vec::new();
            for (o, n) in pieces(p.off, p.len) {
                buf.resize(n as usize, 0);
                t.read(&mut buf, o).map_err(|e| format!("read failed: {}\n", error_text(&e)))?;
                if let Some(pat) = p.pattern
                    && let Some(i) = buf.iter().position(|&b| b != pat)
                {
                    return Err(format!(
                        "Pattern verification failed at offset {}, {} bytes\n{}",
                        o + i as u64,
                        p.len,
                        line(&p, "read")
                    ));
                }
            }
            Ok(line(&p, "read"))
        }
        "write" | "w" => {
            let p = parse(cmd, args, "Pzu").map_err(|e| e + "\n")?;
            if p.zero && p.pattern.is_some() {
                return Err("-z and -P cannot be specified at the same time\n".into());
            }
            if p.zero {
                t.write_zeroes(p.off, p.len).map_err(|e| format!("write failed: {}\n", error_text(&e)))?;
            } else {
                let buf = vec![p.pattern.unwrap_or(0xcd); PIECE.min(p.len) as usize];
                for (o, n) in pieces(p.off, p.len) {
                    t.write(&buf[..n as usize], o)
                        .map_err(|e| format!("write failed: {}\n", error_text(&e)))?;
                }
            }
            Ok(line(&p, "wrote"))
        }
        "discard" | "d" => {
            let p = parse(cmd, args, "").map_err(|e| e + "\n")?;
            t.discard(p.off, p.len).map_err(|e| format!("discard failed: {}\n", error_text(&e)))?;
            Ok(if p.quiet {
                String::new()
            } else {
                format!("discard {}/{} bytes at offset {}\n", p.len, p.len, p.off)
            })
        }
        "flush" | "f" => {
            t.flush().map_err(|e| format!("flush failed: {}\n", error_text(&e)))?;
            Ok(String::new())
        }
        other => Err(format!("command '{other}' not found\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use block::{Format, OpenOptions};

    #[test]
    fn commands_on_a_node() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.img");
        std::fs::write(&p, vec![0u8; 4 << 20]).unwrap();
        let opts = OpenOptions { format: Some(Format::Raw), ..Default::default() };
        let t = Target::Node(BlockNode::open(p.to_str().unwrap(), &opts).unwrap());
        assert_eq!(run(&t, "write -P 0x33 1M 64k"), "wrote 65536/65536 bytes at offset 1048576\n");
        assert_eq!(run(&t, "read -P 0x33 1M 64k"), "read 65536/65536 bytes at offset 1048576\n");
        assert!(run(&t, "read -P 0x44 1M 64k").starts_with("Pattern verification failed at offset 1048576"));
        assert_eq!(run(&t, "write -z -q 1M 4k"), "");
        assert!(run(&t, "read -P 0 1M 4k").starts_with("read "));
        assert_eq!(run(&t, "frobnicate"), "command 'frobnicate' not found\n");
        assert_eq!(run(&t, "read 1"), "bad number of arguments for read\n");
        assert!(run(&t, "read 1 8M").starts_with("read failed"));
        assert_eq!(cvtnum("2G"), Some(2 << 30));
        assert_eq!(cvtnum("0x10"), Some(16));
        assert_eq!(cvtnum("x"), None);
    }
}
