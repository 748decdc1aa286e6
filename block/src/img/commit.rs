//! `vmm-img commit [-b base] [-d] [-p] [-r rate] FILE`: copy the top image's data (and
//! that of any layers above `base`) into `base`, then empty the top (unless `-d`/`-b`).

use super::progress::Progress;
use super::size::parse_size;
use super::{ImgError, ImgResult, args, open_image};
use crate::jobs::{CommitCopier, DEFAULT_CHUNK};
use crate::node::{Backing, BlockNode};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reopens the chain of `top_path` so that layer `base_idx` is writable (and the top too
/// when it must be emptied).
fn reopen(
    chain: &[(String, String)],
    base_idx: usize,
    top_rw: bool,
) -> Result<(Arc<BlockNode>, Arc<BlockNode>), ImgError> {
    let (bf, bfmt) = &chain[base_idx];
    let base = open_image(bf, Some(bfmt), false, Backing::FromHeader)?;
    let mut below = base.clone();
    for i in (0..base_idx).rev() {
        let (f, fmt) = &chain[i];
        let rw = i == 0 && top_rw;
        below = open_image(f, Some(fmt), !rw, Backing::Node(below))?;
    }
    Ok((below, base))
}

fn same_file(a: &str, b: &str) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "f:ht:b:dpqr:", &["object=", "image-opts"])?;
    super::reject_unsupported(&a, &["object", "image-opts"])?;
    let Some(path) = a.positional.first() else {
        return Err(ImgError::usage("Expecting one image file name"));
    };
    let rate = match a.value("r") {
        None => 0,
        Some(r) => parse_size(r).ok_or_else(|| ImgError::new("Invalid rate limit specified"))?,
    };
    let probe = open_image(path, a.value("f"), true, Backing::FromHeader)?;
    let nodes = probe.chain();
    if nodes.len() < 2 {
        return Err(ImgError::new("Image does not have a backing file"));
    }
    let base_idx = match a.value("b") {
        None => 1,
        Some(b) => nodes
            .iter()
            .skip(1)
            .position(|n| {
                same_file(n.filename(), b)
                    || same_file(n.filename(), &crate::node::combine_backing_path(path, b))
            })
            .map(|i| i + 1)
            .ok_or_else(|| ImgError::new(format!("Did not find '{b}' in the backing chain of '{path}'")))?,
    };
    let chain: Vec<(String, String)> =
        nodes.iter().map(|n| (n.filename().to_string(), n.format().name().to_string())).collect();
    drop(nodes);
    drop(probe);
    let empty = !a.has("d") && !a.has("b");
    let (top, base) = reopen(&chain, base_idx, empty)?;
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut copier = CommitCopier::new(top.clone(), base, 8 * DEFAULT_CHUNK)?.with_workers(workers);
    let mut progress = Progress::new(a.has("p") && !a.has("q"));
    let started = Instant::now();
    let mut done = 0u64;
    loop {
        let n = copier.step()?;
        if n == 0 {
            break;
        }
        done += n;
        progress.update(done, copier.len());
        if rate > 0 {
            let due = Duration::from_secs_f64(done as f64 / rate as f64);
            let el = started.elapsed();
            if due > el {
                std::thread::sleep(due - el);
            }
        }
    }
    copier.finish()?;
    if empty && let Some(q) = top.qcow2() {
        q.make_unallocated(0, top.size().next_multiple_of(q.cluster_size()))?;
        top.flush()?;
    }
    progress.finish();
    if !a.has("q") {
        println!("Image committed.");
    }
    Ok(0)
}
