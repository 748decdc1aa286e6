//! `vmm-img rebase [-u] -b BACKING [-F FMT] FILE`.
//!
//! Safe mode keeps the guest-visible content: every range the image does not allocate
//! itself is compared between the old and the new backing chain, and where they differ
//! the old content is written into the image; then the header is rewritten. `-u` only
//! rewrites the header. `-b ''` removes the backing file.

use super::progress::Progress;
use super::{ImgError, ImgResult, args, open_image, parse_format};
use crate::jobs::buffer_is_zero;
use crate::node::{Backing, BlockNode, combine_backing_path};
use crate::qcow2::BackingRead;
use std::sync::Arc;

const CHUNK: u64 = 2 << 20;

fn allocated_below(n: &Option<Arc<BlockNode>>, off: u64, len: u64) -> crate::Result<(bool, u64)> {
    match n {
        None => Ok((false, len)),
        Some(b) if off >= b.size() => Ok((false, len)),
        Some(b) => {
            let (a, l) = b.is_allocated_above(None, off, len.min(b.size() - off))?;
            Ok((a, l.min(len)))
        }
    }
}

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "hf:F:b:upt:T:qU", &["object=", "image-opts", "force-share"])?;
    super::reject_unsupported(&a, &["object", "image-opts"])?;
    let Some(path) = a.positional.first() else {
        return Err(ImgError::usage("Expecting one image file name"));
    };
    let Some(new_name) = a.value("b") else {
        return Err(ImgError::new("Must specify backing file (-b) or use '' as argument"));
    };
    let new_fmt = a.value("F");
    if !new_name.is_empty() && new_fmt.is_none() {
        return Err(ImgError::new(format!(
            "Could not change the backing file to '{new_name}': backing format must be specified"
        )));
    }
    if let Some(f) = new_fmt {
        parse_format(f)?;
    }
    let quiet = a.has("q");
    let header_name = (!new_name.is_empty()).then_some(new_name);
    let header_fmt = header_name.and(new_fmt);
    if a.has("u") {
        let top = open_image(path, a.value("f"), false, Backing::None)?;
        top.set_backing(None, header_name, header_fmt)
            .map_err(|e| ImgError::new(format!("Could not change the backing file to '{new_name}': {e}")))?;
        return Ok(0);
    }
    let top = open_image(path, a.value("f"), false, Backing::FromHeader)?;
    let old = top.backing();
    let new =
        match header_name {
            None => None,
            Some(n) => {
                let full = combine_backing_path(path, n);
                Some(open_image(&full, new_fmt, true, Backing::FromHeader).map_err(|e| {
                    ImgError::new(format!("Could not open new backing file '{full}': {}", e.msg))
                })?)
            }
        };
    let size = top.size();
    let cs = top.cluster_size();
    let mut progress = Progress::new(a.has("p") && !quiet);
    let mut old_buf = Vec::new();
    let mut new_buf = Vec::new();
    let mut off = 0;
    while off < size {
        let len = CHUNK.min(size - off);
        let (in_top, l) = top.is_allocated(off, len)?;
        let l = l.min(len).max(1);
        if in_top {
            off += l;
            continue;
        }
        let (old_alloc, l1) = allocated_below(&old, off, l)?;
        let (new_alloc, l2) = allocated_below(&new, off, l)?;
        let run = l1.min(l2).min(l).max(1);
        if !old_alloc && !new_alloc {
            off += run;
            progress.update(off, size);
            continue;
        }
        old_buf.resize(run as usize, 0);
        new_buf.resize(run as usize, 0);
        match &old {
            Some(b) => b.read_backing(&mut old_buf, off)?,
            None => old_buf.fill(0),
        }
        match &new {
            Some(b) => b.read_backing(&mut new_buf, off)?,
            None => new_buf.fill(0),
        }
        // write the clusters whose content differs, coalescing neighbours
        let mut p = 0u64;
        let mut pending: Option<(u64, u64)> = None;
        while p <= run {
            let piece_end = if p < run { ((off + p) / cs * cs + cs).min(off + run) - off } else { run };
            let differs = p < run && {
                let (s, e) = (p as usize, piece_end as usize);
                old_buf[s..e] != new_buf[s..e]
            };
            match (&mut pending, differs) {
                (Some((_, e)), true) => *e = piece_end,
                (None, true) => pending = Some((p, piece_end)),
                (Some((s, e)), false) => {
                    let (s, e) = (*s, *e);
                    let data = &old_buf[s as usize..e as usize];
                    if buffer_is_zero(data) {
                        top.write_zeroes(off + s, e - s)?;
                    } else {
                        top.write(data, off + s)?;
                    }
                    pending = None;
                }
                (None, false) => {}
            }
            if p == run {
                break;
            }
            p = piece_end;
        }
        off += run;
        progress.update(off, size);
    }
    top.flush()?;
    top.set_backing(new.clone(), header_name, header_fmt)
        .map_err(|e| ImgError::new(format!("Could not change the backing file to '{new_name}': {e}")))?;
    progress.finish();
    Ok(0)
}
