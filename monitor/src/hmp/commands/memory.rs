//! `x`, `xp` (QEMU's `memory_dump`), `memsave`, `pmemsave`.

use serde_json::{Value, json};

use super::cpus::{cpu_list, current_cpu};
use crate::commands::memory::read;
use crate::hmp::context::{Ctx, out};
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const COMMANDS: &[HmpCommand] = &[
    HmpCommand {
        names: "x",
        args_type: "fmt:/,addr:l",
        params: "/fmt addr",
        help: "virtual memory dump starting at 'addr'",
        handler: x,
        sub_table: None,
    },
    HmpCommand {
        names: "xp",
        args_type: "fmt:/,addr:l",
        params: "/fmt addr",
        help: "physical memory dump starting at 'addr'",
        handler: xp,
        sub_table: None,
    },
    HmpCommand {
        names: "memsave",
        args_type: "val:l,size:i,filename:s",
        params: "addr size file",
        help: "save to disk virtual memory dump starting at 'addr' of size 'size'",
        handler: memsave,
        sub_table: None,
    },
    HmpCommand {
        names: "pmemsave",
        args_type: "val:l,size:i,filename:s",
        params: "addr size file",
        help: "save to disk physical memory dump starting at 'addr' of size 'size'",
        handler: pmemsave,
        sub_table: None,
    },
];

fn int(args: &Args, key: &str) -> i64 {
    args.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn x(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move { dump(ctx, &args, false).await })
}

fn xp(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move { dump(ctx, &args, true).await })
}

/// QEMU's `monitor_printc`.
fn printc(c: u8) -> String {
    match c {
        b'\'' => "'\\''".into(),
        b'\\' => "'\\\\'".into(),
        b'\n' => "'\\n'".into(),
        b'\r' => "'\\r'".into(),
        32..=126 => format!("'{}'", char::from(c)),
        _ => format!("'\\x{c:02x}'"),
    }
}

/// One value of `wsize` bytes (little-endian), printed as `format` says.
fn format_value(format: u8, wsize: usize, bytes: &[u8]) -> String {
    let mut raw = [0u8; 8];
    raw[..bytes.len()].copy_from_slice(bytes);
    let v = u64::from_le_bytes(raw);
    let bits = wsize * 8;
    match format {
        // C's `%#*o`: a leading 0 unless the value is 0, right-aligned.
        b'o' => {
            let digits = if v == 0 { "0".to_string() } else { format!("0{v:o}") };
            format!("{:>1$}", digits, bits.div_ceil(3))
        }
        b'u' | b'd' => format!("{:1$}", v, (bits * 10).div_ceil(33)),
        b'c' => printc(bytes[0]),
        _ => format!("0x{:01$x}", v, bits / 4),
    }
}

/// The dump: 8 bytes per line for one-byte values, else 16, each line prefixed by its address.
/// As in QEMU, the line size follows the requested size even for `c`, whose values are bytes.
pub(crate) fn format_dump(addr: u64, format: u8, wsize: usize, data: &[u8]) -> String {
    let line_size = if wsize == 1 { 8 } else { 16 };
    let wsize = if format == b'c' { 1 } else { wsize };
    let mut s = String::new();
    for (n, line) in data.chunks(line_size).enumerate() {
        s.push_str(&format!("{:016x}:", addr + (n * line_size) as u64));
        for v in line.chunks(wsize) {
            s.push(' ');
            s.push_str(&format_value(format, wsize, v));
        }
        s.push('\n');
    }
    s
}

async fn dump(ctx: &mut Ctx, args: &Args, physical: bool) {
    let count = int(args, "count").max(0) as u64;
    let format = u8::try_from(int(args, "format")).unwrap_or(b'x');
    let size = int(args, "size");
    let addr = int(args, "addr") as u64;
    let cpus = cpu_list(ctx).await.unwrap_or_default();
    let cpu = current_cpu(ctx, &cpus);
    // A virtual address (and QEMU's disassembly) needs a CPU; a physical one does not.
    if cpu.is_none() && (format == b'i' || !physical) {
        out!(ctx, "Can not dump without CPU\n");
        return;
    }
    if format == b'i' {
        out!(ctx, "Instruction dumps ('i' format) are not supported\n");
        return;
    }
    let wsize = match size {
        1 | 2 | 4 | 8 => size as usize,
        _ => 4,
    };
    // QEMU sizes the dump before `c` turns the values into bytes.
    let len = count.saturating_mul(wsize as u64);
    let line_size = if wsize == 1 { 8 } else { 16 };
    let via = if physical { None } else { cpu.and_then(|c| usize::try_from(c).ok()) };
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(line_size);
        let at = addr.wrapping_add(done);
        match read(&ctx.monitor, at, n, via).await {
            Ok(bytes) => {
                let text = format_dump(at, format, wsize, &bytes);
                out!(ctx, "{text}");
            }
            Err(_) => {
                out!(ctx, "{at:016x}: Cannot access memory\n");
                return;
            }
        }
        done += n;
    }
}

fn memsave(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let cpus = cpu_list(ctx).await.unwrap_or_default();
        let mut a =
            json!({"val": int(&args, "val"), "size": int(&args, "size"), "filename": args.get("filename")});
        if let Some(c) = current_cpu(ctx, &cpus) {
            a["cpu-index"] = c.into();
        }
        save(ctx, "memsave", a).await;
    })
}

fn pmemsave(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let a =
            json!({"val": int(&args, "val"), "size": int(&args, "size"), "filename": args.get("filename")});
        save(ctx, "pmemsave", a).await;
    })
}

async fn save(ctx: &mut Ctx, name: &str, a: Value) {
    let Value::Object(map) = a else { return };
    if let Err(e) = ctx.qmp(name, map).await {
        ctx.print_error(&e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2's `memory_dump` output for the same bytes.
    #[test]
    fn formats_like_qemu() {
        let data: Vec<u8> = (0u8..16).chain([b'A', b'\n', 0xff, b'\'']).collect();
        assert_eq!(
            format_dump(0x1000, b'x', 1, &data[..8]),
            "0000000000001000: 0x00 0x01 0x02 0x03 0x04 0x05 0x06 0x07\n"
        );
        assert_eq!(
            format_dump(0x1000, b'x', 4, &data[..16]),
            "0000000000001000: 0x03020100 0x07060504 0x0b0a0908 0x0f0e0d0c\n"
        );
        assert_eq!(format_dump(0, b'x', 8, &data[..8]), "0000000000000000: 0x0706050403020100\n");
        assert_eq!(format_dump(0, b'd', 2, &data[..4]), "0000000000000000:   256   770\n");
        assert_eq!(format_dump(0, b'u', 1, &data[15..17]), "0000000000000000:  15  65\n");
        assert_eq!(format_dump(0, b'o', 1, &data[7..9]), "0000000000000000:  07 010\n");
        assert_eq!(format_dump(0, b'o', 1, &data[..1]), "0000000000000000:   0\n");
        assert_eq!(format_dump(0, b'c', 1, &data[16..20]), "0000000000000000: 'A' '\\n' '\\xff' '\\''\n");
    }
}
