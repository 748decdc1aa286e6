//! `vmm-img compare`: exit 0 identical, 1 different, 2 error (qemu-img's codes).

use super::progress::Progress;
use super::{ImgError, ImgResult, args, open_image};
use crate::jobs::buffer_is_zero;
use crate::node::{Backing, BlockNode};
use std::sync::Arc;

const CHUNK: u64 = 2 << 20;

fn first_diff(a: &[u8], b: &[u8]) -> Option<usize> {
    if a == b {
        return None;
    }
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// Compares `[start, end)` of both; returns the first mismatching sector offset.
fn compare_range(
    n1: &BlockNode,
    n2: &BlockNode,
    start: u64,
    end: u64,
    strict: bool,
    progress: &mut Progress,
    total: u64,
) -> Result<Option<(u64, bool)>, ImgError> {
    let mut b1 = Vec::new();
    let mut b2 = Vec::new();
    let mut off = start;
    while off < end {
        let len = CHUNK.min(end - off);
        let s1 = n1.block_status(off, len)?;
        let s2 = n2.block_status(off, len)?;
        let run = s1.len.min(s2.len).min(len).max(1);
        if strict && s1.present != s2.present {
            return Ok(Some((off, true)));
        }
        if !s1.zero || s1.data || !s2.zero || s2.data {
            b1.resize(run as usize, 0);
            b2.resize(run as usize, 0);
            n1.read(&mut b1, off)?;
            n2.read(&mut b2, off)?;
            if let Some(i) = first_diff(&b1, &b2) {
                return Ok(Some(((off + i as u64) / 512 * 512, false)));
            }
        }
        off += run;
        progress.update(off, total);
    }
    Ok(None)
}

/// The first non-zero sector of `[start, end)`.
fn nonzero_tail(n: &BlockNode, start: u64, end: u64) -> Result<Option<u64>, ImgError> {
    let mut b = Vec::new();
    let mut off = start;
    while off < end {
        let len = CHUNK.min(end - off);
        let st = n.block_status(off, len)?;
        let run = st.len.min(len).max(1);
        if !st.zero || st.data {
            b.resize(run as usize, 0);
            n.read(&mut b, off)?;
            if !buffer_is_zero(&b) {
                let i = b.iter().position(|&x| x != 0).unwrap_or(0);
                return Ok(Some((off + i as u64) / 512 * 512));
            }
        }
        off += run;
    }
    Ok(None)
}

fn run_inner(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "hf:F:T:pqsU", &["object=", "image-opts", "force-share"])?;
    super::reject_unsupported(&a, &["object", "image-opts"])?;
    if a.positional.len() != 2 {
        return Err(ImgError::usage("Expecting two image file names"));
    }
    let quiet = a.has("q");
    let strict = a.has("s");
    let f1 = a.value("f");
    let f2 = a.value("F").or(f1);
    let n1: Arc<BlockNode> = open_image(&a.positional[0], f1, true, Backing::FromHeader)?;
    let n2: Arc<BlockNode> = open_image(&a.positional[1], f2, true, Backing::FromHeader)?;
    let (s1, s2) = (n1.size(), n2.size());
    let common = s1.min(s2);
    let total = s1.max(s2);
    let mut progress = Progress::new(a.has("p") && !quiet);
    if s1 != s2 && strict {
        if !quiet {
            println!("Strict mode: Image size mismatch!");
        }
        return Ok(1);
    }
    match compare_range(&n1, &n2, 0, common, strict, &mut progress, total)? {
        Some((off, true)) => {
            if !quiet {
                println!("Strict mode: Offset {off} block status mismatch!");
            }
            return Ok(1);
        }
        Some((off, false)) => {
            if !quiet {
                println!("Content mismatch at offset {off}!");
            }
            return Ok(1);
        }
        None => {}
    }
    if s1 != s2 {
        if !quiet {
            println!("Warning: Image size mismatch!");
        }
        let longer = if s1 > s2 { &n1 } else { &n2 };
        if let Some(off) = nonzero_tail(longer, common, total)? {
            if !quiet {
                println!("Content mismatch at offset {off}!");
            }
            return Ok(1);
        }
    }
    progress.finish();
    if !quiet {
        println!("Images are identical.");
    }
    Ok(0)
}

pub fn run(argv: &[String]) -> ImgResult {
    run_inner(argv).map_err(|e| if e.usage { e } else { e.code(2) })
}
