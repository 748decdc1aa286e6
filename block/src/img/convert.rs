//! `vmm-img convert`: copy guest data between formats with parallel I/O, large requests
//! and zero detection.
//!
//! The source is walked with block status: ranges that read as zero are skipped (the new
//! target already reads as zero), data ranges are read in large chunks by several worker
//! threads (uncompressed data mapped straight from the source file), and only the non-zero
//! pieces are handed to one writer thread (cluster-sized pieces for qcow2 targets, 4 KiB
//! for raw, QEMU's `-S` default). `-c` compresses and writes in the workers.

use super::create::{create_raw, formatting_line, parse_format_options, qcow2_options};
use super::progress::Progress;
use super::size::parse_size;
use super::{ImgError, ImgResult, args, open_image, parse_format};
use crate::error::Result;
use crate::file::Mapping;
use crate::jobs::buffer_is_zero;
use crate::node::{Backing, BlockNode, Format};
use crate::qcow2::create::create;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;

/// Bytes one worker handles per task.
const CHUNK: u64 = 4 << 20;

struct Plan {
    src: Arc<BlockNode>,
    /// The source chain, top first (block status depth indexes it).
    chain: Vec<Arc<BlockNode>>,
    dst: Arc<BlockNode>,
    size: u64,
    compress: bool,
    /// Zero-detection granularity; 0 disables it.
    sparse: u64,
    /// Target is an existing image (-n): zero ranges must be written as zeroes.
    existing: bool,
}

/// Source bytes of one piece: a copy, or a mapping of the source file (no copy).
enum Bytes {
    Owned(Arc<Vec<u8>>),
    Mapped(Arc<Mapping>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Owned(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

/// What the writer does with one part of a chunk.
enum Piece {
    /// Write `bytes[range]` at `off`.
    Write { off: u64, bytes: Arc<Bytes>, start: usize, end: usize },
    /// Make `[off, off+len)` read as zero (only for existing targets, `-n`).
    Zero { off: u64, len: u64 },
}

/// Splits a data run into the pieces to write, skipping zero granules (zero detection).
fn split_pieces(p: &Plan, bytes: Arc<Bytes>, off: u64, out: &mut Vec<Piece>) {
    let buf = bytes.as_slice();
    if p.sparse == 0 {
        out.push(Piece::Write { off, start: 0, end: buf.len(), bytes });
        return;
    }
    let g = p.sparse as usize;
    let mut i = 0;
    while i < buf.len() {
        let mut j = i;
        while j < buf.len() {
            let e = (j - j % g + g).min(buf.len());
            if !buffer_is_zero(&buf[j..e]) {
                break;
            }
            j = e;
        }
        if j > i && p.existing {
            out.push(Piece::Zero { off: off + i as u64, len: (j - i) as u64 });
        }
        i = j;
        if i >= buf.len() {
            break;
        }
        let mut k = i;
        while k < buf.len() {
            let e = (k - k % g + g).min(buf.len());
            if buffer_is_zero(&buf[k..e]) {
                break;
            }
            k = e;
        }
        out.push(Piece::Write { off: off + i as u64, bytes: bytes.clone(), start: i, end: k });
        i = k;
    }
}

/// Compressed output: the worker compresses and writes each cluster itself.
fn compress_chunk(p: &Plan, start: u64, buf: &mut Vec<u8>) -> Result<()> {
    let end = (start + CHUNK).min(p.size);
    let cs = p.dst.cluster_size();
    let q = p.dst.qcow2();
    let mut off = start;
    while off < end {
        let n = cs.min(p.size - off);
        buf.resize(cs as usize, 0);
        buf.fill(0);
        p.src.read(&mut buf[..n as usize], off)?;
        if !buffer_is_zero(buf) {
            match q {
                Some(q) if n == cs => q.write_compressed(off, buf)?,
                _ => p.dst.write(&buf[..n as usize], off)?,
            }
        }
        off += cs;
    }
    Ok(())
}

/// Reads one chunk of the source and returns what to write.
fn read_chunk(p: &Plan, start: u64) -> Result<Vec<Piece>> {
    let end = (start + CHUNK).min(p.size);
    let mut pieces = Vec::new();
    let mut off = start;
    while off < end {
        let st = p.src.block_status(off, end - off)?;
        let len = st.len.min(end - off);
        if st.zero && !st.data {
            if p.existing {
                pieces.push(Piece::Zero { off, len });
            }
        } else {
            // Uncompressed data is mapped from its layer's file, saving a copy.
            let mapped = match (st.offset, st.compressed) {
                (Some(host), false) => {
                    p.chain.get(st.depth as usize).and_then(|n| n.file().map(host, len as usize))
                }
                _ => None,
            };
            let bytes = match mapped {
                Some(m) => Bytes::Mapped(Arc::new(m)),
                None => {
                    let mut buf = vec![0u8; len as usize];
                    p.src.read(&mut buf, off)?;
                    Bytes::Owned(Arc::new(buf))
                }
            };
            split_pieces(p, Arc::new(bytes), off, &mut pieces);
        }
        off += len;
    }
    Ok(pieces)
}

/// Worker threads read (and, for `-c`, compress and write); this thread writes, so buffered
/// writes to one target file do not contend on its inode lock.
fn copy(p: &Plan, workers: usize, progress: &mut Progress) -> Result<()> {
    let chunks = p.size.div_ceil(CHUNK);
    let next = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::sync_channel::<Result<(u64, Vec<Piece>)>>(workers * 2);
    std::thread::scope(|s| {
        for _ in 0..workers {
            let tx = tx.clone();
            let next = &next;
            let failed = &failed;
            s.spawn(move || {
                let mut buf = Vec::new();
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= chunks {
                        break;
                    }
                    let start = i * CHUNK;
                    let bytes = (start + CHUNK).min(p.size) - start;
                    let r = if p.compress {
                        compress_chunk(p, start, &mut buf).map(|_| (bytes, Vec::new()))
                    } else {
                        read_chunk(p, start).map(|v| (bytes, v))
                    };
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if tx.send(r).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut done = 0;
        let mut first_err = None;
        for r in rx {
            let r = r.and_then(|(n, pieces)| {
                for piece in pieces {
                    match piece {
                        Piece::Write { off, bytes, start, end } => {
                            p.dst.write(&bytes.as_slice()[start..end], off)?
                        }
                        Piece::Zero { off, len } => p.dst.write_zeroes(off, len)?,
                    }
                }
                Ok(n)
            });
            match r {
                Ok(n) => {
                    done += n;
                    progress.update(done, p.size);
                }
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    if first_err.is_none() {
                        first_err = Some(e);
                    }
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(
        argv,
        "hf:O:B:Cco:l:S:pt:T:qnm:WUr:",
        &[
            "object=",
            "image-opts",
            "target-image-opts",
            "force-share",
            "salvage",
            "target-is-zero",
            "bitmaps",
            "skip-broken-bitmaps",
        ],
    )?;
    super::reject_unsupported(
        &a,
        &["object", "image-opts", "target-image-opts", "B", "l", "C", "salvage", "bitmaps", "r"],
    )?;
    if a.positional.len() < 2 {
        return Err(ImgError::usage("Expecting image file name"));
    }
    if a.positional.len() > 2 {
        return Err(ImgError::new("Concatenating several source images is not supported by vmm-img"));
    }
    let src_path = &a.positional[0];
    let dst_path = &a.positional[1];
    let out_fmt = parse_format(a.value("O").unwrap_or("raw"))?;
    let compress = a.has("c");
    if compress && out_fmt != Format::Qcow2 {
        return Err(ImgError::new("Compression not supported for this file format"));
    }
    let sparse = match a.value("S") {
        None => None,
        Some(s) => Some(
            parse_size(s).ok_or_else(|| ImgError::new("Invalid buffer size for sparse output specified"))?,
        ),
    };
    let workers = match a.value("m") {
        None => std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8)),
        Some(m) => match m.parse::<usize>() {
            Ok(n @ 1..=16) => n,
            _ => {
                return Err(ImgError::new(
                    "Invalid number of coroutines. Allowed number of coroutines is between 1 and 16",
                ));
            }
        },
    };
    let src = open_image(src_path, a.value("f"), true, Backing::FromHeader)?;
    let size = src.size();
    let existing = a.has("n");
    let fo = parse_format_options(&a.values("o"), out_fmt, dst_path)?;
    if fo.backing_file.is_some() {
        return Err(ImgError::new("Converting to an image with a backing file is not supported by vmm-img"));
    }
    if !existing {
        match out_fmt {
            Format::Raw => create_raw(Path::new(dst_path), size, fo.preallocation.unwrap_or_default())?,
            Format::Qcow2 => {
                let co = qcow2_options(&fo, size);
                crate::qcow2::create::validate(&co).map_err(|e| ImgError::new(format!("{dst_path}: {e}")))?;
                let _ = formatting_line;
                create(Path::new(dst_path), &co).map_err(|e| ImgError::new(format!("{dst_path}: {e}")))?;
            }
        }
    }
    let dst = open_image(dst_path, Some(out_fmt.name()), false, Backing::None)?;
    // qemu-img convert defaults to cache=unsafe: no syncs unless -t asks for them.
    match a.value("t").unwrap_or("unsafe") {
        "unsafe" => dst.file().set_no_flush(true),
        "writeback" | "none" | "writethrough" | "directsync" => {}
        t => return Err(ImgError::new(format!("Invalid cache option: {t}"))),
    }
    if existing && dst.size() < size {
        return Err(ImgError::new("Error: The target image is smaller than the source"));
    }
    let gran = match sparse {
        Some(0) => 0,
        Some(s) => s.max(512),
        None => match out_fmt {
            Format::Qcow2 => dst.cluster_size(),
            Format::Raw => 4096,
        },
    };
    let plan = Plan { chain: src.chain(), src, dst: dst.clone(), size, compress, sparse: gran, existing };
    let mut progress = Progress::new(a.has("p") && !a.has("q"));
    copy(&plan, workers, &mut progress)
        .map_err(|e| ImgError::new(format!("error while converting {}: {e}", out_fmt.name())))?;
    dst.flush()?;
    progress.finish();
    Ok(0)
}
