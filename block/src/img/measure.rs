//! `vmm-img measure`: the file size a conversion would need (QEMU's formulas).

use super::create::{parse_format_options, qcow2_options};
use super::size::parse_size;
use super::{ImgError, ImgResult, args, open_image, output_json, parse_format, to_json};
use crate::node::{Backing, Format};
use crate::qcow2::create::Preallocation;
use serde::Serialize;

#[derive(Serialize)]
struct Measure {
    #[serde(skip_serializing_if = "Option::is_none")]
    bitmaps: Option<u64>,
    required: u64,
    #[serde(rename = "fully-allocated")]
    fully_allocated: u64,
}

/// QEMU's `qcow2_refcount_metadata_size` (without the generous increase).
fn refcount_metadata_size(clusters: u64, cs: u64, refcount_order: u32) -> u64 {
    let per_table_cluster = cs / 8;
    let per_block = cs * 8 / (1 << refcount_order);
    let (mut table, mut blocks, mut n) = (0u64, 0u64, 0u64);
    loop {
        let last = n;
        blocks = (clusters + table + blocks).div_ceil(per_block);
        table = blocks.div_ceil(per_table_cluster);
        n = clusters + blocks + table;
        if n == last {
            break;
        }
    }
    (blocks + table) * cs
}

/// QEMU's `qcow2_calc_prealloc_size`.
pub fn qcow2_prealloc_size(total: u64, cs: u64, refcount_order: u32) -> u64 {
    let aligned = total.next_multiple_of(cs);
    let mut meta = cs;
    let nl2e = (aligned / cs).next_multiple_of(cs / 8);
    meta += nl2e * 8;
    let nl1e = (nl2e * 8 / cs).next_multiple_of(cs / 8);
    meta += nl1e * 8;
    meta += refcount_metadata_size((meta + aligned) / cs, cs, refcount_order);
    meta + aligned
}

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "hf:O:o:l:U", &["output=", "size=", "object=", "image-opts", "force-share"])?;
    super::reject_unsupported(&a, &["object", "image-opts", "l"])?;
    let json = output_json(&a)?;
    let out_fmt = parse_format(a.value("O").unwrap_or("raw"))?;
    let size_opt = match a.value("size") {
        None => None,
        Some(s) => Some(parse_size(s).ok_or_else(|| ImgError::new("Invalid image size specified!"))?),
    };
    let file = a.positional.first();
    match (size_opt.is_some(), file.is_some()) {
        (true, true) => {
            return Err(ImgError::new("--size N cannot be used together with a filename."));
        }
        (false, false) => {
            return Err(ImgError::new("Either --size N or one filename must be specified."));
        }
        _ => {}
    }
    let fo = parse_format_options(&a.values("o"), out_fmt, file.map_or("", |s| s.as_str()))?;
    let src = match file {
        Some(f) => Some(open_image(f, a.value("f"), true, Backing::FromHeader)?),
        None => None,
    };
    let ssize = src.as_ref().map_or(size_opt.unwrap_or(0), |n| n.size());
    let m = match out_fmt {
        Format::Raw => {
            let r = ssize.next_multiple_of(512);
            Measure { bitmaps: None, required: r, fully_allocated: r }
        }
        Format::Qcow2 => {
            let co = qcow2_options(&fo, ssize);
            let cs = co.cluster_size;
            let virtual_size = ssize.next_multiple_of(cs);
            let prealloc_all = matches!(co.preallocation, Preallocation::Falloc | Preallocation::Full);
            let mut required =
                if prealloc_all || (src.is_some() && fo.backing_file.is_some()) { virtual_size } else { 0 };
            if let Some(n) = &src
                && fo.backing_file.is_none()
                && !prealloc_all
            {
                let mut off = 0;
                while off < ssize {
                    let st = n.block_status(off, ssize - off)?;
                    let pnum = st.len.max(1);
                    if st.data && !st.zero {
                        let ext = (off + pnum).next_multiple_of(cs) - off;
                        required += off % cs + ext;
                        off += ext;
                    } else {
                        off += pnum;
                    }
                }
            }
            let full = qcow2_prealloc_size(virtual_size, cs, co.refcount_bits.trailing_zeros());
            Measure {
                bitmaps: (co.version >= 3 && src.as_ref().is_some_and(|n| n.format() == Format::Qcow2))
                    .then_some(0),
                required: full - virtual_size + required,
                fully_allocated: full,
            }
        }
    };
    if json {
        println!("{}", to_json(&m));
    } else {
        println!("required size: {}", m.required);
        println!("fully allocated size: {}", m.fully_allocated);
        if let Some(b) = m.bitmaps {
            println!("bitmaps size: {b}");
        }
    }
    Ok(0)
}
