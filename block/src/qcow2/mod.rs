//! The qcow2 format driver.
//!
//! Threading: a `Qcow2` is shared by every thread that does I/O on its node. Metadata sits
//! behind one mutex (`meta`) and is held only to look up or change mappings; data is read
//! and written with `pread`/`pwrite` outside it when the target cluster is already owned by
//! the active layer. Allocating writes (copy-on-write, new clusters) run under the mutex.
//! `gate` is held shared by every request and exclusively by operations that must see no
//! request in flight: flush (which releases freed clusters for reuse), resize, snapshot
//! operations and backing-link changes.

pub mod cache;
pub mod check;
pub mod compress;
pub mod create;
pub mod header;
pub mod meta;
pub mod snapshot;

use crate::error::{BlockError, Result};
use crate::file::ImageFile;
use header::Header;
use meta::{Extent, L2Kind, Meta, OFLAG_COMPRESSED, OFLAG_COPIED, OFLAG_ZERO, classify};
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Reads guest data from whatever lies below this layer (zeroes past its end).
pub trait BackingRead {
    fn read_backing(&self, buf: &mut [u8], offset: u64) -> Result<()>;
}

/// Largest run of clusters one allocating write handles at once.
const MAX_ALLOC_RUN: u64 = 32 << 20;

/// What a write does next (see [`Qcow2::write`]).
enum Step {
    Direct(u64, u64),
    /// Leave these bytes alone (`only_unallocated` and the cluster is allocated).
    Skip(u64),
    Alloc {
        run_start: u64,
        k: u64,
        host: u64,
    },
}

/// An open qcow2 image.
pub struct Qcow2 {
    file: Arc<ImageFile>,
    meta: Mutex<Meta>,
    gate: RwLock<()>,
    /// Last decompressed cluster (L2 entry, data): sequential small reads of a compressed
    /// image decompress each cluster once.
    last_compressed: Mutex<Option<(u64, Vec<u8>)>>,
    /// Guest clusters whose allocation is in progress, and the condition writers wait on.
    inflight: Mutex<HashSet<u64>>,
    inflight_done: Condvar,
}

impl std::fmt::Debug for Qcow2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Qcow2").field("file", &self.file.path()).finish()
    }
}

fn poisoned() -> BlockError {
    BlockError::Invalid("Internal lock poisoned by an earlier failure".into())
}

impl Qcow2 {
    /// Opens an image file whose first bytes carry the qcow2 magic.
    pub fn open(file: ImageFile, writable: bool) -> Result<Qcow2> {
        let len = file.len()?;
        let mut first = vec![0u8; len.min(2 << 20) as usize];
        file.read_at(&mut first, 0)?;
        let h = Header::parse(&first, writable)?;
        let has_bitmaps = h.autoclear_features & header::AUTOCLEAR_BITMAPS != 0
            || h.other_extensions.iter().any(|e| e.kind == header::EXT_BITMAPS);
        if writable && has_bitmaps {
            return Err(BlockError::Unsupported(
                "qcow2 images with persistent dirty bitmaps can only be opened read-only".into(),
            ));
        }
        let file = Arc::new(file);
        let meta = Meta::load(file.clone(), h, writable)?;
        let q = Qcow2 {
            file,
            meta: Mutex::new(meta),
            gate: RwLock::new(()),
            last_compressed: Mutex::new(None),
            inflight: Mutex::new(HashSet::new()),
            inflight_done: Condvar::new(),
        };
        if writable && q.header().is_dirty() {
            // Lazy refcounts left the image dirty: repair refcounts as QEMU does on open,
            // then clear the dirty bit.
            check::check(&q, check::Repair::All)?;
            let mut meta = q.meta()?;
            meta.h.incompatible_features &= !header::INCOMPAT_DIRTY;
            q.file.write_at(&meta.h.incompatible_features.to_be_bytes(), 72)?;
            q.file.sync()?;
        }
        Ok(q)
    }

    pub(crate) fn meta(&self) -> Result<MutexGuard<'_, Meta>> {
        self.meta.lock().map_err(|_| poisoned())
    }

    pub(crate) fn shared(&self) -> Result<RwLockReadGuard<'_, ()>> {
        self.gate.read().map_err(|_| poisoned())
    }

    pub(crate) fn exclusive(&self) -> Result<RwLockWriteGuard<'_, ()>> {
        self.gate.write().map_err(|_| poisoned())
    }

    pub fn file(&self) -> &ImageFile {
        &self.file
    }

    pub fn writable(&self) -> bool {
        self.file.writable()
    }

    /// A copy of the current header.
    pub fn header(&self) -> Header {
        match self.meta.lock() {
            Ok(m) => m.h.clone(),
            Err(p) => p.into_inner().h.clone(),
        }
    }

    pub fn size(&self) -> u64 {
        self.header().size
    }

    pub fn cluster_size(&self) -> u64 {
        self.header().cluster_size()
    }

    /// Mapping of `[off, off+len)` in this layer only.
    pub fn map(&self, off: u64, len: u64) -> Result<Vec<(u64, Extent)>> {
        let _g = self.shared()?;
        self.meta()?.map(off, len)
    }

    /// The first run of [`Qcow2::map`].
    pub fn map_first(&self, off: u64, len: u64) -> Result<(u64, Extent)> {
        let _g = self.shared()?;
        self.meta()?.map_first(off, len)
    }

    pub(crate) fn read_compressed(&self, entry: u64, buf: &mut [u8], in_off: u64) -> Result<()> {
        let (cs, bits, ctype) = {
            let h = self.header();
            (h.cluster_size(), h.cluster_bits, h.compression_type)
        };
        if ctype != 0 {
            return Err(BlockError::Unsupported("zstd-compressed clusters are not supported".into()));
        }
        let mut last = self.last_compressed.lock().map_err(|_| poisoned())?;
        if last.as_ref().is_none_or(|(e, _)| *e != entry) {
            let L2Kind::Compressed { offset, size } = classify(entry, bits) else {
                return Err(BlockError::Invalid("Not a compressed cluster".into()));
            };
            let mut input = vec![0u8; size as usize];
            self.file.read_at(&mut input, offset)?;
            let mut out = vec![0u8; cs as usize];
            compress::inflate_cluster(&input, &mut out)?;
            *last = Some((entry, out));
        }
        if let Some((_, data)) = last.as_ref() {
            let s = in_off as usize;
            buf.copy_from_slice(&data[s..s + buf.len()]);
        }
        Ok(())
    }

    /// Reads guest data; unallocated parts come from `backing` (or read as zero).
    pub fn read(&self, buf: &mut [u8], off: u64, backing: Option<&dyn BackingRead>) -> Result<()> {
        let _g = self.shared()?;
        let cs = self.cluster_size();
        let extents = self.meta()?.map(off, buf.len() as u64)?;
        let mut pos = 0usize;
        for (len, ext) in extents {
            let part = &mut buf[pos..pos + len as usize];
            let guest = off + pos as u64;
            match ext {
                Extent::Data(h) => self.file.read_at(part, h)?,
                Extent::Compressed(entry) => self.read_compressed(entry, part, guest % cs)?,
                Extent::Zero(_) => part.fill(0),
                Extent::Unallocated => match backing {
                    Some(b) => b.read_backing(part, guest)?,
                    None => part.fill(0),
                },
            }
            pos += len as usize;
        }
        buf[pos..].fill(0);
        Ok(())
    }

    /// Current guest content of the cluster at `cluster_off` (for copy-on-write).
    fn cluster_content(
        &self,
        cluster_off: u64,
        out: &mut [u8],
        backing: Option<&dyn BackingRead>,
    ) -> Result<()> {
        let (entry, kind) = {
            let mut meta = self.meta()?;
            let entry = meta.l2_entry(cluster_off)?;
            let kind = classify(entry, meta.h.cluster_bits);
            meta.check_data_offset(kind, cluster_off)?;
            (entry, kind)
        };
        match kind {
            L2Kind::Normal(h) => self.file.read_at(out, h),
            L2Kind::Compressed { .. } => self.read_compressed(entry, out, 0),
            L2Kind::Zero(_) => {
                out.fill(0);
                Ok(())
            }
            L2Kind::Unallocated => match backing {
                Some(b) => b.read_backing(out, cluster_off),
                None => {
                    out.fill(0);
                    Ok(())
                }
            },
        }
    }

    /// Refuses data writes that would land on the header, L1 or refcount table.
    fn check_overlap(meta: &Meta, host: u64, len: u64) -> Result<()> {
        let h = &meta.h;
        let cs = h.cluster_size();
        let ranges = [
            (0, cs),
            (h.l1_table_offset, u64::from(h.l1_size) * 8),
            (h.refcount_table_offset, u64::from(h.refcount_table_clusters) * cs),
        ];
        for (start, l) in ranges {
            if l > 0 && host < start + l && start < host + len {
                return Err(BlockError::Invalid(
                    "Preventing invalid write on metadata (the image is corrupt)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Writes guest data, allocating and copying on write as needed.
    ///
    /// Clusters the active layer already owns are written in place without the metadata
    /// lock. A run of clusters that needs new host clusters is marked in flight, allocated
    /// under the lock, then filled (copy-on-write reads included) and written without it;
    /// its L2 entries are set afterwards. A second writer touching an in-flight cluster
    /// waits for it, so concurrent sub-cluster writes to one new cluster never lose data.
    pub fn write(&self, buf: &[u8], off: u64, backing: Option<&dyn BackingRead>) -> Result<()> {
        self.write_impl(buf, off, backing, false)
    }

    /// Writes only into clusters this layer does not allocate yet, atomically with respect
    /// to other writers: stream's copy step, which must never overwrite newer guest data.
    pub fn write_unallocated(&self, buf: &[u8], off: u64, backing: Option<&dyn BackingRead>) -> Result<()> {
        self.write_impl(buf, off, backing, true)
    }

    fn write_impl(
        &self,
        buf: &[u8],
        off: u64,
        backing: Option<&dyn BackingRead>,
        only_unallocated: bool,
    ) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let _g = self.shared()?;
        let cs = self.cluster_size();
        let end = off + buf.len() as u64;
        let mut pos = off;
        while pos < end {
            match self.plan_step(pos, end, only_unallocated)? {
                Step::Skip(n) => pos += n,
                Step::Direct(host, n) => {
                    let b = (pos - off) as usize;
                    self.file.write_at(&buf[b..b + n as usize], host)?;
                    pos += n;
                }
                Step::Alloc { run_start, k, host } => {
                    let run_end = end.min(run_start + k * cs);
                    let r = self.fill_run(buf, off, pos, run_start, run_end, k, host, backing);
                    let r = match r {
                        Ok(()) => self.meta().and_then(|mut meta| {
                            for i in 0..k {
                                meta.replace_l2_entry(run_start + i * cs, (host + i * cs) | OFLAG_COPIED)?;
                            }
                            Ok(())
                        }),
                        Err(e) => {
                            // nothing refers to the new clusters yet: give them back
                            if let Ok(mut meta) = self.meta() {
                                let _ = meta.add_refcount(host, k * cs, -1);
                            }
                            Err(e)
                        }
                    };
                    self.end_inflight(run_start, k, cs);
                    r?;
                    pos = run_end;
                }
            }
        }
        if let Ok(mut last) = self.last_compressed.lock() {
            *last = None;
        }
        Ok(())
    }

    /// Decides what to do at `pos`: write in place, or allocate a run (marked in flight).
    fn plan_step(&self, pos: u64, end: u64, only_unallocated: bool) -> Result<Step> {
        loop {
            let mut meta = self.meta()?;
            let cs = meta.cluster_size();
            let bits = meta.h.cluster_bits;
            let in_off = pos % cs;
            let entry = meta.l2_entry(pos)?;
            let kind = classify(entry, bits);
            meta.check_data_offset(kind, pos)?;
            let in_flight = self.inflight.lock().map_err(|_| poisoned())?.contains(&(pos - in_off));
            if only_unallocated && kind != L2Kind::Unallocated && !in_flight {
                return Ok(Step::Skip((cs - in_off).min(end - pos)));
            }
            if let L2Kind::Normal(h) = kind
                && entry & OFLAG_COPIED != 0
            {
                let n = (cs - in_off).min(end - pos);
                Self::check_overlap(&meta, h + in_off, n)?;
                return Ok(Step::Direct(h + in_off, n));
            }
            let run_start = pos - in_off;
            {
                let inflight = self.inflight.lock().map_err(|_| poisoned())?;
                if inflight.contains(&run_start) {
                    drop(meta);
                    let _unused = self
                        .inflight_done
                        .wait_while(inflight, |s| s.contains(&run_start))
                        .map_err(|_| poisoned())?;
                    continue;
                }
            }
            let mut k = 1u64;
            let mut p = run_start + cs;
            while p < end && k * cs < MAX_ALLOC_RUN {
                let e = meta.l2_entry(p)?;
                if matches!(classify(e, bits), L2Kind::Normal(_)) && e & OFLAG_COPIED != 0 {
                    break;
                }
                if only_unallocated && classify(e, bits) != L2Kind::Unallocated {
                    break;
                }
                if self.inflight.lock().map_err(|_| poisoned())?.contains(&p) {
                    break;
                }
                k += 1;
                p += cs;
            }
            let host = meta.alloc_clusters(k)?;
            let mut inflight = self.inflight.lock().map_err(|_| poisoned())?;
            for i in 0..k {
                inflight.insert(run_start + i * cs);
            }
            return Ok(Step::Alloc { run_start, k, host });
        }
    }

    fn end_inflight(&self, run_start: u64, k: u64, cs: u64) {
        let mut inflight = match self.inflight.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for i in 0..k {
            inflight.remove(&(run_start + i * cs));
        }
        drop(inflight);
        self.inflight_done.notify_all();
    }

    /// Writes the data of an allocated run: the caller's bytes, plus the old content of
    /// partially covered first/last clusters.
    #[allow(clippy::too_many_arguments)]
    fn fill_run(
        &self,
        buf: &[u8],
        off: u64,
        pos: u64,
        run_start: u64,
        run_end: u64,
        k: u64,
        host: u64,
        backing: Option<&dyn BackingRead>,
    ) -> Result<()> {
        let cs = self.cluster_size();
        let src = &buf[(pos - off) as usize..(run_end - off) as usize];
        let in_off = pos - run_start;
        if in_off == 0 && run_end == run_start + k * cs {
            // whole clusters: straight from the caller's buffer
            return self.file.write_at(src, host);
        }
        let mut data = vec![0u8; (k * cs) as usize];
        if in_off != 0 {
            self.cluster_content(run_start, &mut data[..cs as usize], backing)?;
        }
        let last_start = run_start + (k - 1) * cs;
        if run_end < last_start + cs && !(k == 1 && in_off != 0) {
            let s = ((k - 1) * cs) as usize;
            self.cluster_content(last_start, &mut data[s..s + cs as usize], backing)?;
        }
        data[in_off as usize..in_off as usize + src.len()].copy_from_slice(src);
        self.file.write_at(&data, host)
    }

    /// Whole clusters inside `[off, off+len)` and the partial head/tail ranges.
    fn split_clusters(&self, off: u64, len: u64) -> ((u64, u64), Vec<(u64, u64)>) {
        let cs = self.cluster_size();
        let end = off + len;
        let first = off.next_multiple_of(cs);
        let last = end / cs * cs;
        if first >= last {
            return ((0, 0), vec![(off, len)]);
        }
        let mut partial = Vec::new();
        if off < first {
            partial.push((off, first - off));
        }
        if last < end {
            partial.push((last, end - last));
        }
        ((first, last), partial)
    }

    /// Makes `[off, off+len)` read as zero. Whole clusters get the zero flag (v3) or are
    /// deallocated (v2 without backing); the rest is written as zero data.
    pub fn write_zeroes(&self, off: u64, len: u64, backing: Option<&dyn BackingRead>) -> Result<()> {
        self.write_zeroes_impl(off, len, backing, false)
    }

    /// `write_zeroes` limited to clusters this layer does not allocate yet (stream).
    pub fn write_zeroes_unallocated(
        &self,
        off: u64,
        len: u64,
        backing: Option<&dyn BackingRead>,
    ) -> Result<()> {
        self.write_zeroes_impl(off, len, backing, true)
    }

    fn write_zeroes_impl(
        &self,
        off: u64,
        len: u64,
        backing: Option<&dyn BackingRead>,
        only_unallocated: bool,
    ) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let ((first, last), partial) = self.split_clusters(off, len);
        let cs = self.cluster_size();
        let mut zero_data = Vec::new();
        {
            let _g = self.shared()?;
            let mut meta = self.meta()?;
            let v3 = meta.h.version >= 3;
            let bits = meta.h.cluster_bits;
            let mut c = first;
            while c < last {
                let kind = classify(meta.l2_entry(c)?, bits);
                let reads_zero =
                    matches!(kind, L2Kind::Zero(_)) || (kind == L2Kind::Unallocated && backing.is_none());
                if only_unallocated && kind != L2Kind::Unallocated {
                    c += cs;
                    continue;
                }
                if !reads_zero {
                    if v3 {
                        meta.replace_l2_entry(c, OFLAG_ZERO)?;
                    } else if backing.is_none() {
                        meta.replace_l2_entry(c, 0)?;
                    } else {
                        zero_data.push((c, cs));
                    }
                }
                c += cs;
            }
            for (o, l) in partial {
                let kind = classify(meta.l2_entry(o)?, bits);
                let reads_zero =
                    matches!(kind, L2Kind::Zero(_)) || (kind == L2Kind::Unallocated && backing.is_none());
                if !reads_zero {
                    zero_data.push((o, l));
                }
            }
        }
        let longest = zero_data.iter().map(|&(_, l)| l).max().unwrap_or(0);
        let zeroes = vec![0u8; longest.max(cs) as usize];
        for (o, l) in zero_data {
            self.write_impl(&zeroes[..l as usize], o, backing, only_unallocated)?;
        }
        Ok(())
    }

    /// Discards whole clusters in the range as QEMU does: they read as zero afterwards on v3
    /// (zero flag where a backing file or an allocation exists), or fall through to the
    /// backing file on v2. Partial clusters are left alone.
    pub fn discard(&self, off: u64, len: u64, has_backing: bool) -> Result<()> {
        self.discard_impl(off, len, if has_backing { 1 } else { 0 })
    }

    /// Drops whole clusters of the range from this layer so they read from the backing
    /// file again (QEMU's full discard; `qemu-img commit` empties the top with it).
    pub fn make_unallocated(&self, off: u64, len: u64) -> Result<()> {
        self.discard_impl(off, len, 2)
    }

    /// Drops whole clusters of `[off, off+len)` without the virtual-size limit (the VM
    /// state area lies past it).
    pub(crate) fn discard_impl_unclamped(&self, off: u64, len: u64) -> Result<()> {
        self.discard_impl(off, len, 2)
    }

    fn discard_impl(&self, off: u64, len: u64, mode: u8) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let ((first, last), _) = self.split_clusters(off, len);
        let cs = self.cluster_size();
        let _g = self.shared()?;
        let mut meta = self.meta()?;
        let v3 = meta.h.version >= 3;
        let bits = meta.h.cluster_bits;
        let mut c = first;
        while c < last {
            let kind = classify(meta.l2_entry(c)?, bits);
            let new = if mode == 2 {
                0
            } else if v3 && (mode == 1 || kind != L2Kind::Unallocated) {
                OFLAG_ZERO
            } else {
                0
            };
            let unchanged = match kind {
                L2Kind::Unallocated => new == 0,
                L2Kind::Zero(None) => new == OFLAG_ZERO,
                _ => false,
            };
            if !unchanged {
                meta.replace_l2_entry(c, new)?;
            }
            c += cs;
        }
        Ok(())
    }

    /// Writes one whole guest cluster compressed (convert -c). Falls back to a normal
    /// write when the data does not compress. The target must be unallocated.
    pub fn write_compressed(&self, cluster_off: u64, data: &[u8]) -> Result<()> {
        let cs = self.cluster_size();
        if data.len() as u64 != cs || !cluster_off.is_multiple_of(cs) {
            return Err(BlockError::Argument("Compressed writes must cover exactly one cluster".into()));
        }
        let Some(c) = compress::deflate_cluster(data) else {
            return self.write(data, cluster_off, None);
        };
        let _g = self.shared()?;
        let mut meta = self.meta()?;
        let bits = meta.h.cluster_bits;
        let host = meta.alloc_compressed(c.len() as u64)?;
        self.file.write_at(&c, host)?;
        let shift = 62 - (bits - 8);
        let sectors = (host + c.len() as u64 - 1) / 512 - host / 512 + 1;
        let entry = OFLAG_COMPRESSED | ((sectors - 1) << shift) | host;
        meta.replace_l2_entry(cluster_off, entry)
    }

    /// Makes everything written so far durable, then releases clusters that lost their
    /// last reference.
    pub fn flush(&self) -> Result<()> {
        if !self.writable() {
            return Ok(());
        }
        let _g = self.exclusive()?;
        let mut meta = self.meta()?;
        meta.writeback()?;
        if meta.has_pending_frees() {
            meta.apply_pending_frees()?;
            meta.writeback()?;
        }
        Ok(())
    }

    /// Changes the virtual size. Shrinking drops the clusters past the new end.
    pub fn resize(&self, new_size: u64) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let old = self.size();
        if new_size < old {
            let cs = self.cluster_size();
            let from = new_size.next_multiple_of(cs);
            if from < old {
                self.make_unallocated(from, old.next_multiple_of(cs) - from)?;
            }
        }
        let _g = self.exclusive()?;
        let mut meta = self.meta()?;
        meta.writeback()?;
        let need = meta.h.l1_entries_for(new_size);
        if need > header::MAX_L1_BYTES / 8 {
            return Err(BlockError::Argument("The new size is too large for qcow2".into()));
        }
        if need > u64::from(meta.h.l1_size) {
            let mut l1 = meta.l1.clone();
            l1.resize(need as usize, 0);
            meta.replace_l1(l1)?;
        }
        meta.h.size = new_size;
        self.file.write_at(&new_size.to_be_bytes(), 24)?;
        self.file.sync()?;
        meta.apply_pending_frees()?;
        meta.writeback()
    }

    /// Rewrites the backing file name and format in the header (`None` drops the link).
    pub fn set_backing(&self, file: Option<&str>, format: Option<&str>) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let _g = self.exclusive()?;
        let mut meta = self.meta()?;
        meta.writeback()?;
        let mut h = meta.h.clone();
        h.backing_file = file.map(str::to_string);
        h.backing_format = if file.is_some() { format.map(str::to_string) } else { None };
        let raw = h.serialize()?;
        self.file.write_at(&raw, 0)?;
        self.file.sync()?;
        meta.h = h;
        Ok(())
    }
}
