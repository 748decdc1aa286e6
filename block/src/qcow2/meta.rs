//! qcow2 metadata: L1/L2 tables, refcounts, cluster allocation and ordered write-back.
//!
//! All of it lives behind the node's metadata mutex. L2 tables and refcount blocks are
//! cached; changes are written back by [`Meta::writeback`] in the order that keeps the file
//! consistent if the process dies at any point:
//!
//! 1. refcount blocks (then, after a sync, the refcount table or its relocated copy and the
//!    header fields pointing at it), sync;
//! 2. L2 tables, sync;
//! 3. the L1 table, sync.
//!
//! So a cluster's refcount is on disk before any table points at it, and a table is on disk
//! before its parent points at it: a crash leaves at most leaked clusters. Clusters that lose
//! their last reference are freed only after the reference is gone on disk
//! (`pending_free`, applied by the node's flush once no request is in flight).

use super::cache::TableCache;
use super::header::{Header, MAX_REFTABLE_BYTES};
use crate::error::{BlockError, Result};
use crate::file::ImageFile;
use std::sync::Arc;

pub const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
pub const REFT_OFFSET_MASK: u64 = 0xffff_ffff_ffff_fe00;
pub const OFLAG_COPIED: u64 = 1 << 63;
pub const OFLAG_COMPRESSED: u64 = 1 << 62;
pub const OFLAG_ZERO: u64 = 1;
/// Host offsets must fit the 56-bit offset fields.
const MAX_HOST_OFFSET: u64 = 1 << 56;

/// What one L2 entry says about its guest cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Kind {
    Unallocated,
    /// Reads as zero; `Some(host)` if a host cluster is still preallocated for it.
    Zero(Option<u64>),
    Normal(u64),
    /// Compressed data at `offset`, `size` bytes long (may span clusters).
    Compressed {
        offset: u64,
        size: u64,
    },
}

pub fn classify(entry: u64, cluster_bits: u32) -> L2Kind {
    if entry & OFLAG_COMPRESSED != 0 {
        let shift = 62 - (cluster_bits - 8);
        let mask = (1u64 << (cluster_bits - 8)) - 1;
        let offset = entry & ((1u64 << shift) - 1);
        let sectors = ((entry >> shift) & mask) + 1;
        let size = sectors * 512 - (offset & 511);
        return L2Kind::Compressed { offset, size };
    }
    let host = entry & OFFSET_MASK;
    if entry & OFLAG_ZERO != 0 {
        return L2Kind::Zero((host != 0).then_some(host));
    }
    if host == 0 { L2Kind::Unallocated } else { L2Kind::Normal(host) }
}

/// Host clusters occupied by an L2 entry (for refcount updates), as (offset, bytes).
pub fn entry_host_range(kind: L2Kind, cluster_size: u64) -> Option<(u64, u64)> {
    match kind {
        L2Kind::Normal(h) | L2Kind::Zero(Some(h)) => Some((h, cluster_size)),
        L2Kind::Compressed { offset, size } => Some((offset, size)),
        _ => None,
    }
}

/// A run of guest bytes with one kind of mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extent {
    /// Data at this host offset (contiguous for the whole run).
    Data(u64),
    /// A compressed cluster; the run covers (part of) one guest cluster. Holds the L2 entry.
    Compressed(u64),
    /// Reads as zero; host offset if preallocated.
    Zero(Option<u64>),
    /// Not allocated in this layer: read the backing file.
    Unallocated,
}

pub struct Meta {
    pub file: Arc<ImageFile>,
    pub h: Header,
    pub l1: Vec<u64>,
    pub l1_dirty: bool,
    l2: TableCache,
    pub reftable: Vec<u64>,
    reftable_dirty: bool,
    refblocks: TableCache,
    free_hint: u64,
    pending_free: Vec<(u64, u64)>,
    /// Bump area for packing compressed clusters: (next byte, end of allocated area).
    compressed_tail: Option<(u64, u64)>,
    writable: bool,
}

fn be64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i * 8..i * 8 + 8]);
    u64::from_be_bytes(a)
}

fn set_be64_at(b: &mut [u8], i: usize, v: u64) {
    b[i * 8..i * 8 + 8].copy_from_slice(&v.to_be_bytes());
}

/// Reads a table of big-endian u64 entries. Entries past the end of the file are zero
/// and cost no I/O (hostile headers can name 32 MiB tables in a 4 KiB file).
pub fn read_table(file: &ImageFile, offset: u64, entries: u64) -> Result<Vec<u64>> {
    let mut table = vec![0u64; entries as usize];
    let in_file = file.len()?.saturating_sub(offset).min(entries * 8) / 8;
    let mut raw = vec![0u8; (in_file * 8) as usize];
    file.read_at(&mut raw, offset)?;
    for (t, c) in table.iter_mut().zip(raw.chunks_exact(8)) {
        let mut a = [0u8; 8];
        a.copy_from_slice(c);
        *t = u64::from_be_bytes(a);
    }
    Ok(table)
}

/// Like [`read_table`] but drops trailing zero entries: in memory, a missing entry reads
/// as zero, so callers index with `get()` and extend the vector when they set an entry.
pub fn read_table_prefix(file: &ImageFile, offset: u64, entries: u64) -> Result<Vec<u64>> {
    if entries == 0 {
        return Ok(Vec::new());
    }
    let in_file = file.len()?.saturating_sub(offset).min(entries * 8) / 8;
    let mut t = read_table(file, offset, in_file)?;
    while t.last() == Some(&0) {
        t.pop();
    }
    Ok(t)
}

pub fn encode_table(t: &[u64], pad_to: usize) -> Vec<u8> {
    let mut raw = Vec::with_capacity(pad_to.max(t.len() * 8));
    for v in t {
        raw.extend_from_slice(&v.to_be_bytes());
    }
    raw.resize(pad_to.max(raw.len()), 0);
    raw
}

fn corrupt(msg: String) -> BlockError {
    BlockError::Invalid(msg)
}

impl Meta {
    /// Loads the active L1 table and the refcount table.
    pub fn load(file: Arc<ImageFile>, h: Header, writable: bool) -> Result<Meta> {
        let cs = h.cluster_size();
        let l1 = read_table_prefix(&file, h.l1_table_offset, h.l1_size.into())?;
        let rt_entries = u64::from(h.refcount_table_clusters) * cs / 8;
        let reftable = read_table_prefix(&file, h.refcount_table_offset, rt_entries)?;
        if writable {
            // A refcount block listed twice would make every allocation scan the same
            // block over and over (and corrupt it): refuse to write to such an image.
            let mut seen = std::collections::HashSet::new();
            for e in &reftable {
                let off = e & REFT_OFFSET_MASK;
                if off != 0 && !seen.insert(off) {
                    return Err(corrupt(format!(
                        "Refcount block at {off:#x} is listed twice in the refcount table"
                    )));
                }
            }
        }
        Ok(Meta {
            l2: TableCache::new(cs, 32 << 20),
            refblocks: TableCache::new(cs, 8 << 20),
            file,
            h,
            l1,
            l1_dirty: false,
            reftable,
            reftable_dirty: false,
            free_hint: 0,
            pending_free: Vec::new(),
            compressed_tail: None,
            writable,
        })
    }

    pub fn cluster_size(&self) -> u64 {
        self.h.cluster_size()
    }

    fn refblock_entries(&self) -> u64 {
        self.cluster_size() * 8 / u64::from(self.h.refcount_bits())
    }

    // ---- refcounts -------------------------------------------------------------

    fn refblock_offset(&self, bi: u64) -> Result<Option<u64>> {
        let Some(&e) = self.reftable.get(bi as usize) else {
            return Ok(None);
        };
        let off = e & REFT_OFFSET_MASK;
        if off == 0 {
            return Ok(None);
        }
        if !off.is_multiple_of(self.cluster_size()) {
            return Err(corrupt(format!("Refblock offset {off:#x} unaligned (reftable index: {bi:#x})")));
        }
        if off >= MAX_HOST_OFFSET {
            return Err(corrupt(format!("Refblock offset {off:#x} out of range (reftable index: {bi:#x})")));
        }
        Ok(Some(off))
    }

    fn load_cached(&mut self, off: u64, refblock: bool) -> Result<()> {
        let present = if refblock { self.refblocks.contains(off) } else { self.l2.contains(off) };
        if present {
            return Ok(());
        }
        let need_flush = if refblock { self.refblocks.full_of_dirty() } else { self.l2.full_of_dirty() };
        if need_flush {
            self.writeback()?;
        }
        let mut data = vec![0u8; self.cluster_size() as usize];
        self.file.read_at(&mut data, off)?;
        if refblock {
            self.refblocks.insert(off, data, false);
        } else {
            self.l2.insert(off, data, false);
        }
        Ok(())
    }

    fn decode_refcount(&self, block: &[u8], idx: u64) -> u64 {
        let order = self.h.refcount_order;
        let bits = 1u64 << order;
        match order {
            0..=2 => {
                let per_byte = 8 / bits;
                let byte = block[(idx / per_byte) as usize];
                let shift = (idx % per_byte) * bits;
                (u64::from(byte) >> shift) & ((1 << bits) - 1)
            }
            3 => u64::from(block[idx as usize]),
            4 => {
                let i = idx as usize * 2;
                u64::from(u16::from_be_bytes([block[i], block[i + 1]]))
            }
            5 => {
                let i = idx as usize * 4;
                u64::from(u32::from_be_bytes([block[i], block[i + 1], block[i + 2], block[i + 3]]))
            }
            _ => be64_at(block, idx as usize),
        }
    }

    fn encode_refcount(order: u32, block: &mut [u8], idx: u64, v: u64) {
        let bits = 1u64 << order;
        match order {
            0..=2 => {
                let per_byte = 8 / bits;
                let b = &mut block[(idx / per_byte) as usize];
                let shift = (idx % per_byte) * bits;
                let mask = (((1u64 << bits) - 1) << shift) as u8;
                *b = (*b & !mask) | (((v << shift) as u8) & mask);
            }
            3 => block[idx as usize] = v as u8,
            4 => {
                let i = idx as usize * 2;
                block[i..i + 2].copy_from_slice(&(v as u16).to_be_bytes());
            }
            5 => {
                let i = idx as usize * 4;
                block[i..i + 4].copy_from_slice(&(v as u32).to_be_bytes());
            }
            _ => set_be64_at(block, idx as usize, v),
        }
    }

    pub fn max_refcount(&self) -> u64 {
        let bits = self.h.refcount_bits();
        if bits >= 64 { u64::MAX } else { (1u64 << bits) - 1 }
    }

    /// Refcount of host cluster `c` (0 where no refcount block covers it).
    pub fn refcount(&mut self, c: u64) -> Result<u64> {
        let epb = self.refblock_entries();
        let Some(off) = self.refblock_offset(c / epb)? else {
            return Ok(0);
        };
        self.load_cached(off, true)?;
        let Some(e) = self.refblocks.get_mut(off) else {
            return Err(corrupt("Refcount block vanished from cache".into()));
        };
        let data = std::mem::take(&mut e.data);
        let v = self.decode_refcount(&data, c % epb);
        if let Some(e) = self.refblocks.get_mut(off) {
            e.data = data;
        }
        Ok(v)
    }

    /// Creates the refcount block for block index `bi`, placed in the first cluster of the
    /// range it describes (which is free, since nothing covered that range yet).
    fn create_refblock(&mut self, bi: u64) -> Result<()> {
        let max_entries = MAX_REFTABLE_BYTES / 8;
        if bi >= max_entries {
            return Err(BlockError::Unsupported("Cannot grow the refcount table any further".into()));
        }
        if bi as usize >= self.reftable.len() {
            self.reftable.resize(bi as usize + 1, 0);
        }
        let epb = self.refblock_entries();
        let c = bi * epb;
        let off = c * self.cluster_size();
        if off >= MAX_HOST_OFFSET {
            return Err(BlockError::Unsupported("Image file too large".into()));
        }
        if self.refblocks.full_of_dirty() {
            self.writeback()?;
        }
        let mut data = vec![0u8; self.cluster_size() as usize];
        Self::encode_refcount(self.h.refcount_order, &mut data, 0, 1);
        self.refblocks.insert(off, data, true);
        self.reftable[bi as usize] = off;
        self.reftable_dirty = true;
        Ok(())
    }

    /// Sets the refcount of host cluster `c`, creating its refcount block if needed.
    pub fn set_refcount(&mut self, c: u64, v: u64) -> Result<()> {
        if !self.writable {
            return Err(BlockError::ReadOnly);
        }
        let epb = self.refblock_entries();
        let bi = c / epb;
        if self.refblock_offset(bi)?.is_none() {
            if v == 0 {
                return Ok(());
            }
            self.create_refblock(bi)?;
            if c.is_multiple_of(epb) {
                return Err(corrupt(format!("Cluster {c} collides with its own new refcount block")));
            }
        }
        let Some(off) = self.refblock_offset(bi)? else {
            return Err(corrupt("Refcount block missing after creation".into()));
        };
        self.load_cached(off, true)?;
        let order = self.h.refcount_order;
        let Some(e) = self.refblocks.get_mut(off) else {
            return Err(corrupt("Refcount block vanished from cache".into()));
        };
        Self::encode_refcount(order, &mut e.data, c % epb, v);
        e.dirty = true;
        if v == 0 && c < self.free_hint {
            self.free_hint = c;
        }
        Ok(())
    }

    /// Adds `delta` to the refcounts of the clusters covering `[off, off+len)`.
    pub fn add_refcount(&mut self, off: u64, len: u64, delta: i64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let cs = self.cluster_size();
        let first = off / cs;
        let last = (off + len - 1) / cs;
        let max = self.max_refcount();
        for c in first..=last {
            let cur = self.refcount(c)?;
            let new = if delta >= 0 {
                match cur.checked_add(delta as u64) {
                    Some(n) if n <= max => n,
                    _ => {
                        return Err(corrupt(format!("Refcount overflow for cluster {c} (refcount {cur})")));
                    }
                }
            } else {
                let d = delta.unsigned_abs();
                if cur < d {
                    return Err(corrupt(format!("Refcount underflow for cluster {c} (refcount {cur})")));
                }
                cur - d
            };
            self.set_refcount(c, new)?;
            if new == 0 {
                self.l2.remove(c * cs);
                self.refblocks.remove(c * cs);
            }
        }
        Ok(())
    }

    /// Allocates `n` contiguous host clusters (refcount 1) and returns the first offset.
    pub fn alloc_clusters(&mut self, n: u64) -> Result<u64> {
        if !self.writable {
            return Err(BlockError::ReadOnly);
        }
        let cs = self.cluster_size();
        let epb = self.refblock_entries();
        'retry: loop {
            let mut start = self.free_hint;
            let mut run = 0;
            let mut c = self.free_hint;
            while run < n {
                if self.refcount(c)? == 0 {
                    if run == 0 {
                        start = c;
                    }
                    run += 1;
                } else {
                    run = 0;
                }
                c += 1;
            }
            if (start + n) * cs > MAX_HOST_OFFSET {
                return Err(BlockError::Unsupported("Image file too large".into()));
            }
            for bi in start / epb..=(start + n - 1) / epb {
                if self.refblock_offset(bi)?.is_none() {
                    self.create_refblock(bi)?;
                    continue 'retry;
                }
            }
            for c in start..start + n {
                self.set_refcount(c, 1)?;
            }
            self.free_hint = start + n;
            return Ok(start * cs);
        }
    }

    /// Allocates `len` bytes (< one cluster) for compressed data, packing them after the
    /// previous compressed cluster. Every cluster touched gets one more reference.
    pub fn alloc_compressed(&mut self, len: u64) -> Result<u64> {
        let cs = self.cluster_size();
        if let Some((next, end)) = self.compressed_tail
            && next + len <= end
        {
            self.compressed_tail = Some((next + len, end));
            // The first cluster touched already counts this area once; count it again
            // for this compressed cluster (QEMU counts one reference per user).
            self.add_refcount(next, len, 1)?;
            return Ok(next);
        }
        let off = self.alloc_clusters(len.div_ceil(cs))?;
        self.compressed_tail = Some((off + len, off + len.div_ceil(cs) * cs));
        Ok(off)
    }

    /// Drops one reference to `[off, off+len)` once the reference is gone on disk.
    pub fn free_deferred(&mut self, off: u64, len: u64) {
        self.pending_free.push((off, len));
    }

    /// Applies deferred frees (call only after a write-back and with no request in
    /// flight); punches holes where a cluster's refcount drops to zero.
    pub fn apply_pending_frees(&mut self) -> Result<()> {
        let frees = std::mem::take(&mut self.pending_free);
        let cs = self.cluster_size();
        let mut zero: Vec<u64> = Vec::new();
        for (off, len) in frees {
            self.add_refcount(off, len, -1)?;
            let first = off / cs;
            let last = (off + len.max(1) - 1) / cs;
            for c in first..=last {
                if self.refcount(c)? == 0 {
                    zero.push(c);
                    self.compressed_tail = None;
                }
            }
        }
        // punch the freed clusters, one call per contiguous range
        zero.sort_unstable();
        zero.dedup();
        let mut i = 0;
        while i < zero.len() {
            let mut j = i + 1;
            while j < zero.len() && zero[j] == zero[j - 1] + 1 {
                j += 1;
            }
            self.file.punch_hole(zero[i] * cs, (j - i) as u64 * cs)?;
            i = j;
        }
        Ok(())
    }

    pub fn has_pending_frees(&self) -> bool {
        !self.pending_free.is_empty()
    }

    // ---- L1/L2 -----------------------------------------------------------------

    fn l2_offset_checked(&self, l1_idx: usize) -> Result<Option<u64>> {
        let Some(&e) = self.l1.get(l1_idx) else {
            return Ok(None);
        };
        let off = e & OFFSET_MASK;
        if off == 0 {
            return Ok(None);
        }
        if !off.is_multiple_of(self.cluster_size()) {
            return Err(corrupt(format!("L2 table offset {off:#x} unaligned (L1 index: {l1_idx:#x})")));
        }
        Ok(Some(off))
    }

    /// Reads entry `idx` of the L2 table at `l2_off`.
    pub fn l2_get(&mut self, l2_off: u64, idx: u64) -> Result<u64> {
        self.load_cached(l2_off, false)?;
        match self.l2.get_mut(l2_off) {
            Some(e) => Ok(be64_at(&e.data, idx as usize)),
            None => Err(corrupt("L2 table vanished from cache".into())),
        }
    }

    pub fn l2_set(&mut self, l2_off: u64, idx: u64, v: u64) -> Result<()> {
        self.load_cached(l2_off, false)?;
        match self.l2.get_mut(l2_off) {
            Some(e) => {
                set_be64_at(&mut e.data, idx as usize, v);
                e.dirty = true;
                Ok(())
            }
            None => Err(corrupt("L2 table vanished from cache".into())),
        }
    }

    /// The L2 entry for guest offset `off` (0 when unallocated).
    pub fn l2_entry(&mut self, off: u64) -> Result<u64> {
        let cs = self.cluster_size();
        let per = self.h.l2_entries();
        let l1_idx = (off / cs / per) as usize;
        match self.l2_offset_checked(l1_idx)? {
            None => Ok(0),
            Some(l2) => self.l2_get(l2, (off / cs) % per),
        }
    }

    /// Validates a host offset that a data entry points to.
    pub fn check_data_offset(&self, kind: L2Kind, guest: u64) -> Result<()> {
        if let L2Kind::Normal(h) | L2Kind::Zero(Some(h)) = kind {
            if !h.is_multiple_of(self.cluster_size()) {
                return Err(corrupt(format!(
                    "Cluster allocation offset {h:#x} unaligned (guest offset: {guest:#x})"
                )));
            }
            if h == 0 || h < self.cluster_size() {
                return Err(corrupt(format!(
                    "Data cluster at guest offset {guest:#x} overlaps the image header"
                )));
            }
        }
        Ok(())
    }

    /// The first run of [`Meta::map`] only (stops at the first change of kind).
    pub fn map_first(&mut self, off: u64, len: u64) -> Result<(u64, Extent)> {
        let cs = self.cluster_size();
        let mut pos = off;
        let end = off.saturating_add(len).min(self.h.size);
        let mut first: Option<(u64, Extent)> = None;
        while pos < end {
            let n = (cs - pos % cs).min(end - pos);
            let (_, ext) = self.map(pos, n)?.into_iter().next().unwrap_or((n, Extent::Unallocated));
            match (&mut first, ext) {
                (None, e) => first = Some((n, e)),
                (Some((l, Extent::Data(h0))), Extent::Data(h)) if *h0 + *l == h => *l += n,
                (Some((l, Extent::Zero(None))), Extent::Zero(None)) => *l += n,
                (Some((l, Extent::Zero(Some(h0)))), Extent::Zero(Some(h))) if *h0 + *l == h => *l += n,
                (Some((l, Extent::Unallocated)), Extent::Unallocated) => *l += n,
                _ => break,
            }
            pos += n;
        }
        first.ok_or_else(|| BlockError::Argument("Empty block status request".into()))
    }

    /// Maps `[off, off+len)` into runs of one kind (clamped to the virtual size).
    pub fn map(&mut self, off: u64, len: u64) -> Result<Vec<(u64, Extent)>> {
        let end = off.saturating_add(len).min(self.h.size);
        self.map_to(off, end)
    }

    /// Offset of the VM state area: the first guest offset past the L1 entries the disk
    /// needs (QEMU's `qcow2_vm_state_offset`).
    pub fn vmstate_offset(&self) -> u64 {
        self.h.l1_entries_for(self.h.size) * self.cluster_size() * self.h.l2_entries()
    }

    /// Like [`Meta::map`] without clamping to the virtual size (VM state area).
    pub fn map_to(&mut self, off: u64, end: u64) -> Result<Vec<(u64, Extent)>> {
        let cs = self.cluster_size();
        let bits = self.h.cluster_bits;
        let mut out: Vec<(u64, Extent)> = Vec::new();
        let mut pos = off;
        while pos < end {
            let in_off = pos % cs;
            let n = (cs - in_off).min(end - pos);
            let entry = self.l2_entry(pos)?;
            let kind = classify(entry, bits);
            self.check_data_offset(kind, pos)?;
            let ext = match kind {
                L2Kind::Unallocated => Extent::Unallocated,
                L2Kind::Zero(h) => Extent::Zero(h.map(|h| h + in_off)),
                L2Kind::Normal(h) => Extent::Data(h + in_off),
                L2Kind::Compressed { .. } => Extent::Compressed(entry),
            };
            match (out.last_mut(), ext) {
                (Some((l, Extent::Data(h0))), Extent::Data(h)) if *h0 + *l == h => *l += n,
                (Some((l, Extent::Zero(None))), Extent::Zero(None)) => *l += n,
                (Some((l, Extent::Zero(Some(h0)))), Extent::Zero(Some(h))) if *h0 + *l == h => *l += n,
                (Some((l, Extent::Unallocated)), Extent::Unallocated) => *l += n,
                _ => out.push((n, ext)),
            }
            pos += n;
        }
        Ok(out)
    }

    /// Makes the L2 table for L1 index `idx` private to the active L1 (allocating it, or
    /// copying a table shared with a snapshot) and returns its offset.
    pub fn ensure_l2(&mut self, idx: usize) -> Result<u64> {
        if !self.writable {
            return Err(BlockError::ReadOnly);
        }
        if idx >= self.h.l1_size as usize {
            return Err(corrupt(format!("L1 index {idx} beyond the L1 table")));
        }
        if idx >= self.l1.len() {
            self.l1.resize(idx + 1, 0);
        }
        let e = self.l1[idx];
        let old = self.l2_offset_checked(idx)?;
        if let Some(off) = old
            && e & OFLAG_COPIED != 0
        {
            return Ok(off);
        }
        let data = match old {
            Some(off) => {
                self.load_cached(off, false)?;
                match self.l2.get_mut(off) {
                    Some(t) => t.data.clone(),
                    None => return Err(corrupt("L2 table vanished from cache".into())),
                }
            }
            None => vec![0u8; self.cluster_size() as usize],
        };
        let new = self.alloc_clusters(1)?;
        if self.l2.full_of_dirty() {
            self.writeback()?;
        }
        self.l2.insert(new, data, true);
        if let Some(off) = old {
            self.free_deferred(off, self.cluster_size());
        }
        self.l1[idx] = new | OFLAG_COPIED;
        self.l1_dirty = true;
        Ok(new)
    }

    /// Sets the L2 entry of guest offset `off`; returns the previous entry.
    pub fn set_l2_entry(&mut self, off: u64, v: u64) -> Result<u64> {
        let cs = self.cluster_size();
        let per = self.h.l2_entries();
        let l2 = self.ensure_l2((off / cs / per) as usize)?;
        let idx = (off / cs) % per;
        let old = self.l2_get(l2, idx)?;
        self.l2_set(l2, idx, v)?;
        Ok(old)
    }

    /// Sets an L2 entry and schedules the release of what the old one pointed to.
    pub fn replace_l2_entry(&mut self, off: u64, v: u64) -> Result<()> {
        let old = self.set_l2_entry(off, v)?;
        if let Some((h, len)) = entry_host_range(classify(old, self.h.cluster_bits), self.cluster_size())
            && ((v & OFFSET_MASK) != h || v & OFLAG_COMPRESSED != 0 || old & OFLAG_COMPRESSED != 0)
        {
            self.free_deferred(h, len);
        }
        Ok(())
    }

    // ---- write-back ----------------------------------------------------------

    fn write_cached(&mut self, refblock: bool) -> Result<bool> {
        let cache = if refblock { &self.refblocks } else { &self.l2 };
        let dirty = cache.dirty_offsets();
        for off in &dirty {
            let cache = if refblock { &mut self.refblocks } else { &mut self.l2 };
            if let Some(e) = cache.get_mut(*off) {
                self.file.write_at(&e.data, *off)?;
                e.dirty = false;
            }
        }
        Ok(!dirty.is_empty())
    }

    /// Writes the refcount table, relocating it if it outgrew its clusters.
    fn write_reftable(&mut self) -> Result<()> {
        let cs = self.cluster_size();
        let cap = u64::from(self.h.refcount_table_clusters) * cs / 8;
        if self.reftable.len() as u64 <= cap {
            self.file.sync()?;
            let raw = encode_table(&self.reftable, (cap * 8) as usize);
            self.file.write_at(&raw, self.h.refcount_table_offset)?;
            self.reftable_dirty = false;
            return Ok(());
        }
        let mut clusters = (self.reftable.len() as u64 * 8).div_ceil(cs) + 1;
        let new_off = loop {
            let off = self.alloc_clusters(clusters)?;
            let need = (self.reftable.len() as u64 * 8).div_ceil(cs);
            if need <= clusters {
                break off;
            }
            self.add_refcount(off, clusters * cs, -1)?;
            clusters = need + 1;
        };
        self.write_cached(true)?;
        let raw = encode_table(&self.reftable, (clusters * cs) as usize);
        self.file.write_at(&raw, new_off)?;
        self.file.sync()?;
        let old = (self.h.refcount_table_offset, u64::from(self.h.refcount_table_clusters));
        self.h.refcount_table_offset = new_off;
        self.h.refcount_table_clusters = clusters as u32;
        let mut f = [0u8; 12];
        f[..8].copy_from_slice(&new_off.to_be_bytes());
        f[8..].copy_from_slice(&(clusters as u32).to_be_bytes());
        self.file.write_at(&f, 48)?;
        self.free_deferred(old.0, old.1 * cs);
        self.reftable_dirty = false;
        Ok(())
    }

    /// Ordered write-back of all dirty metadata (see the module comment). Does not apply
    /// deferred frees.
    pub fn writeback(&mut self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        let mut synced = false;
        if self.write_cached(true)? || self.reftable_dirty {
            if self.reftable_dirty {
                self.write_reftable()?;
                // relocation may have dirtied refcount blocks again
                self.write_cached(true)?;
            }
            self.file.sync()?;
            synced = true;
        }
        if self.write_cached(false)? {
            self.file.sync()?;
            synced = true;
        }
        if self.l1_dirty {
            let raw = encode_table(&self.l1, 0);
            self.file.write_at(&raw, self.h.l1_table_offset)?;
            self.file.sync()?;
            self.l1_dirty = false;
            synced = true;
        }
        if !synced {
            self.file.sync()?;
        }
        Ok(())
    }

    /// Drops cached tables (after an out-of-band rewrite of metadata).
    pub fn drop_caches(&mut self) {
        self.l2.clear();
        self.refblocks.clear();
    }

    /// Replaces the active L1 table with `new` entries at a new location (used to grow
    /// it and by snapshot apply). The old table is freed.
    pub fn replace_l1(&mut self, new: Vec<u64>) -> Result<()> {
        let cs = self.cluster_size();
        self.writeback()?;
        let bytes = (new.len() as u64 * 8).max(8);
        let off = self.alloc_clusters(bytes.div_ceil(cs))?;
        self.writeback()?;
        let raw = encode_table(&new, (bytes.div_ceil(cs) * cs) as usize);
        self.file.write_at(&raw, off)?;
        self.file.sync()?;
        let old = (self.h.l1_table_offset, u64::from(self.h.l1_size) * 8);
        self.h.l1_table_offset = off;
        self.h.l1_size = new.len() as u32;
        let mut f = [0u8; 12];
        f[..4].copy_from_slice(&(new.len() as u32).to_be_bytes());
        f[4..].copy_from_slice(&off.to_be_bytes());
        self.file.write_at(&f, 36)?;
        self.file.sync()?;
        self.l1 = new;
        self.l1_dirty = false;
        if old.1 > 0 && old.0 != 0 {
            self.free_deferred(old.0, old.1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_entries() {
        assert_eq!(classify(0, 16), L2Kind::Unallocated);
        assert_eq!(classify(OFLAG_ZERO, 16), L2Kind::Zero(None));
        assert_eq!(classify(0x50000 | OFLAG_ZERO, 16), L2Kind::Zero(Some(0x50000)));
        assert_eq!(classify(0x50000 | OFLAG_COPIED, 16), L2Kind::Normal(0x50000));
        // compressed, 64 KiB clusters: offset bits 0..54, sector count above
        let e = OFLAG_COMPRESSED | (2u64 << 54) | 0x50200;
        assert_eq!(classify(e, 16), L2Kind::Compressed { offset: 0x50200, size: 3 * 512 });
    }

    #[test]
    fn refcount_widths_round_trip() {
        for order in 0..=6u32 {
            let bits = 1u64 << order;
            let max = if bits == 64 { u64::MAX } else { (1 << bits) - 1 };
            let mut block = vec![0u8; 512];
            let entries = 512 * 8 / bits;
            for i in 0..entries {
                Meta::encode_refcount(order, &mut block, i, (i * 7 + 1) & max);
            }
            let h = crate::qcow2::header::Header {
                version: 3,
                backing_file_offset: 0,
                backing_file_size: 0,
                cluster_bits: 9,
                size: 0,
                crypt_method: 0,
                l1_size: 0,
                l1_table_offset: 0,
                refcount_table_offset: 512,
                refcount_table_clusters: 1,
                nb_snapshots: 0,
                snapshots_offset: 0,
                incompatible_features: 0,
                compatible_features: 0,
                autoclear_features: 0,
                refcount_order: order,
                header_length: 112,
                compression_type: 0,
                backing_format: None,
                backing_file: None,
                other_extensions: vec![],
            };
            let dir = tempfile::tempdir().unwrap();
            let f = ImageFile::create(&dir.path().join("x")).unwrap();
            let m = Meta::load(Arc::new(f), h, false).unwrap();
            for i in 0..entries {
                assert_eq!(m.decode_refcount(&block, i), (i * 7 + 1) & max, "order {order}");
            }
        }
    }
}
