//! `BlockNode`: one image (raw or qcow2) with its backing chain, the unit every user of the
//! block layer works with.
//!
//! A node is `Send + Sync` and is shared as `Arc<BlockNode>`: virtio-blk queue threads,
//! job threads and the monitor may call it at the same time. All methods block the calling
//! thread on file I/O; async code uses [`crate::asyncio`] which moves the calls to blocking
//! worker threads. Reads of unallocated ranges go down the backing chain; the backing link
//! can be replaced at runtime (`set_backing`), which is how stream and commit finish.

use crate::dirty::DirtyBitmap;
use crate::error::{BlockError, Result};
use crate::file::ImageFile;
use crate::qcow2::meta::Extent;
use crate::qcow2::{BackingRead, Qcow2};
use crate::raw::Raw;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Image formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Qcow2,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Qcow2 => "qcow2",
        }
    }

    /// Parses a driver name; other QEMU formats are named in the error.
    pub fn parse(s: &str) -> Result<Format> {
        match s {
            "raw" => Ok(Format::Raw),
            "qcow2" => Ok(Format::Qcow2),
            _ => Err(BlockError::Unsupported(format!("Unknown driver '{s}'"))),
        }
    }

    /// Guesses the format from the first bytes (qcow2 magic, else raw).
    pub fn probe(path: &Path) -> Result<Format> {
        let f = ImageFile::open(path, false)?;
        let mut magic = [0u8; 4];
        f.read_at(&mut magic, 0)?;
        Ok(if magic == *b"QFI\xfb" { Format::Qcow2 } else { Format::Raw })
    }
}

/// Where a node's backing file comes from when it is opened.
#[derive(Debug, Clone, Default)]
pub enum Backing {
    /// Open the chain named in the image header (the default).
    #[default]
    FromHeader,
    /// Open no backing file (reads of unallocated ranges return zeroes).
    None,
    /// Use this already-open node.
    Node(Arc<BlockNode>),
}

/// How to open a node.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// `None` probes.
    pub format: Option<Format>,
    pub read_only: bool,
    pub backing: Backing,
}

impl OpenOptions {
    pub fn read_only() -> Self {
        OpenOptions { read_only: true, ..Default::default() }
    }
}

/// The format-specific part of a node.
#[derive(Debug)]
pub enum Driver {
    Raw(Raw),
    Qcow2(Box<Qcow2>),
}

/// The mapping state of a run of guest bytes (what `qemu-img map` prints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockStatus {
    /// Length of the run.
    pub len: u64,
    /// Allocated in some layer (QEMU's `present`).
    pub present: bool,
    /// Reads as zero.
    pub zero: bool,
    /// Has data (not a zero cluster or hole).
    pub data: bool,
    /// Layer that provides it: 0 = this node, 1 = its backing file, ...
    pub depth: u32,
    /// Host offset in that layer's file, when the data is stored uncompressed.
    pub offset: Option<u64>,
    pub compressed: bool,
}

/// An open image and its backing chain.
#[derive(Debug)]
pub struct BlockNode {
    filename: String,
    driver: Driver,
    read_only: bool,
    backing: RwLock<Option<Arc<BlockNode>>>,
    dirty: RwLock<Vec<Arc<DirtyBitmap>>>,
    /// QEMU's `wr_highest_offset`: the end of the highest range written (or zeroed, discarded).
    wr_highest: AtomicU64,
}

/// QEMU's `path_combine`: a relative backing name is relative to the overlay's directory.
pub fn combine_backing_path(overlay: &str, backing: &str) -> String {
    if backing.starts_with('/') {
        return backing.to_string();
    }
    match overlay.rfind('/') {
        Some(i) => format!("{}{}", &overlay[..=i], backing),
        None => backing.to_string(),
    }
}

impl BlockNode {
    /// Opens `path` (and, by default, its backing chain).
    pub fn open(path: &str, opts: &OpenOptions) -> Result<Arc<BlockNode>> {
        let mut seen = HashSet::new();
        Self::open_inner(path, opts, &mut seen)
    }

    fn open_inner(path: &str, opts: &OpenOptions, seen: &mut HashSet<PathBuf>) -> Result<Arc<BlockNode>> {
        let p = Path::new(path);
        let format = match opts.format {
            Some(f) => f,
            None => Format::probe(p)?,
        };
        let file = ImageFile::open(p, !opts.read_only)?;
        if let Ok(c) = std::fs::canonicalize(p)
            && !seen.insert(c)
        {
            return Err(BlockError::Invalid(format!("Backing file '{path}' creates an infinite loop.")));
        }
        let driver = match format {
            Format::Raw => Driver::Raw(Raw::open(file)?),
            Format::Qcow2 => Driver::Qcow2(Box::new(Qcow2::open(file, !opts.read_only)?)),
        };
        let node = BlockNode {
            filename: path.to_string(),
            driver,
            read_only: opts.read_only,
            backing: RwLock::new(None),
            dirty: RwLock::new(Vec::new()),
            wr_highest: AtomicU64::new(0),
        };
        let backing = match &opts.backing {
            Backing::None => None,
            Backing::Node(n) => Some(n.clone()),
            Backing::FromHeader => match node.backing_name() {
                None => None,
                Some(name) => {
                    let full = combine_backing_path(path, &name);
                    let fmt =
                        match node.backing_format_name() {
                            Some(f) => Some(Format::parse(&f).map_err(|e| {
                                BlockError::Invalid(format!("Could not open backing file: {e}"))
                            })?),
                            None => None,
                        };
                    let bopts = OpenOptions { format: fmt, read_only: true, backing: Backing::FromHeader };
                    let b = Self::open_inner(&full, &bopts, seen).map_err(|e| match e {
                        BlockError::Invalid(m) if m.contains("infinite loop") => BlockError::Invalid(m),
                        other => BlockError::Invalid(format!("Could not open backing file: {other}")),
                    })?;
                    Some(b)
                }
            },
        };
        if let Ok(mut g) = node.backing.write() {
            *g = backing;
        }
        Ok(Arc::new(node))
    }

    /// The file name the node was opened with.
    pub fn filename(&self) -> &str {
        &self.filename
    }

    pub fn format(&self) -> Format {
        match &self.driver {
            Driver::Raw(_) => Format::Raw,
            Driver::Qcow2(_) => Format::Qcow2,
        }
    }

    pub fn driver(&self) -> &Driver {
        &self.driver
    }

    /// The qcow2 driver, if this is a qcow2 node.
    pub fn qcow2(&self) -> Option<&Qcow2> {
        match &self.driver {
            Driver::Qcow2(q) => Some(q.as_ref()),
            Driver::Raw(_) => None,
        }
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The host file of this layer.
    pub fn file(&self) -> &ImageFile {
        match &self.driver {
            Driver::Raw(r) => r.file(),
            Driver::Qcow2(q) => q.file(),
        }
    }

    /// Virtual size in bytes.
    pub fn size(&self) -> u64 {
        match &self.driver {
            Driver::Raw(r) => r.size(),
            Driver::Qcow2(q) => q.size(),
        }
    }

    /// Cluster size (the natural unit for copying; 64 KiB for raw).
    pub fn cluster_size(&self) -> u64 {
        match &self.driver {
            Driver::Raw(_) => 65536,
            Driver::Qcow2(q) => q.cluster_size(),
        }
    }

    /// Backing file name as stored in the header.
    pub fn backing_name(&self) -> Option<String> {
        self.qcow2().and_then(|q| q.header().backing_file)
    }

    /// Backing format as stored in the header.
    pub fn backing_format_name(&self) -> Option<String> {
        self.qcow2().and_then(|q| q.header().backing_format)
    }

    /// The node below this one, if any.
    pub fn backing(&self) -> Option<Arc<BlockNode>> {
        self.backing.read().ok().and_then(|g| g.clone())
    }

    /// This node and every node below it, top first.
    pub fn chain(self: &Arc<Self>) -> Vec<Arc<BlockNode>> {
        let mut v = vec![self.clone()];
        while let Some(b) = v.last().and_then(|n| n.backing()) {
            v.push(b);
        }
        v
    }

    fn check_range(&self, off: u64, len: u64) -> Result<()> {
        let size = self.size();
        if off.checked_add(len).is_none_or(|e| e > size) {
            return Err(BlockError::OutOfRange { offset: off, len, size });
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only { Err(BlockError::ReadOnly) } else { Ok(()) }
    }

    /// Reads guest data (through the backing chain).
    pub fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.check_range(off, buf.len() as u64)?;
        match &self.driver {
            Driver::Raw(r) => r.read(buf, off),
            Driver::Qcow2(q) => {
                let backing = self.backing();
                q.read(buf, off, backing.as_deref().map(|b| b as &dyn BackingRead))
            }
        }
    }

    /// Writes guest data into this layer.
    pub fn write(&self, buf: &[u8], off: u64) -> Result<()> {
        self.check_writable()?;
        self.check_range(off, buf.len() as u64)?;
        match &self.driver {
            Driver::Raw(r) => r.write(buf, off),
            Driver::Qcow2(q) => {
                let backing = self.backing();
                q.write(buf, off, backing.as_deref().map(|b| b as &dyn BackingRead))
            }
        }?;
        self.mark_dirty(off, buf.len() as u64);
        Ok(())
    }

    /// Writes only where this layer allocates nothing yet (the clusters a concurrent
    /// guest write has already filled are left alone): the copy step of stream. On raw
    /// nodes everything is allocated, so nothing is written.
    pub fn write_unallocated(&self, buf: &[u8], off: u64) -> Result<()> {
        self.check_writable()?;
        self.check_range(off, buf.len() as u64)?;
        if let Driver::Qcow2(q) = &self.driver {
            let backing = self.backing();
            q.write_unallocated(buf, off, backing.as_deref().map(|b| b as &dyn BackingRead))?;
            self.note_write(off, buf.len() as u64);
        }
        Ok(())
    }

    /// `write_zeroes` limited to what this layer does not allocate yet (stream).
    pub fn write_zeroes_unallocated(&self, off: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        self.check_range(off, len)?;
        if let Driver::Qcow2(q) = &self.driver {
            let backing = self.backing();
            q.write_zeroes_unallocated(off, len, backing.as_deref().map(|b| b as &dyn BackingRead))?;
        }
        Ok(())
    }

    /// Starts tracking writes in a new dirty bitmap (active commit / mirror).
    pub fn add_dirty_bitmap(&self, granularity: u64) -> Arc<DirtyBitmap> {
        let b = Arc::new(DirtyBitmap::new(self.size(), granularity));
        if let Ok(mut v) = self.dirty.write() {
            v.push(b.clone());
        }
        b
    }

    /// Stops tracking with `bitmap`.
    pub fn remove_dirty_bitmap(&self, bitmap: &Arc<DirtyBitmap>) {
        if let Ok(mut v) = self.dirty.write() {
            v.retain(|b| !Arc::ptr_eq(b, bitmap));
        }
    }

    /// The end of the highest range written to this layer (`query-blockstats`).
    pub fn wr_highest_offset(&self) -> u64 {
        self.wr_highest.load(Ordering::Relaxed)
    }

    fn note_write(&self, off: u64, len: u64) {
        self.wr_highest.fetch_max(off.saturating_add(len), Ordering::Relaxed);
    }

    /// Every write, zeroing and discard ends here: dirty bitmaps and `wr_highest_offset`.
    fn mark_dirty(&self, off: u64, len: u64) {
        self.note_write(off, len);
        if let Ok(v) = self.dirty.read() {
            for b in v.iter() {
                b.mark(off, len);
            }
        }
    }

    /// Makes the range read as zero (zero clusters where possible).
    pub fn write_zeroes(&self, off: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        self.check_range(off, len)?;
        match &self.driver {
            Driver::Raw(r) => r.write_zeroes(off, len),
            Driver::Qcow2(q) => {
                let backing = self.backing();
                q.write_zeroes(off, len, backing.as_deref().map(|b| b as &dyn BackingRead))
            }
        }?;
        self.mark_dirty(off, len);
        Ok(())
    }

    /// Discards the range (QEMU semantics: whole clusters; on qcow2 v3 they read as zero).
    pub fn discard(&self, off: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        self.check_range(off, len)?;
        match &self.driver {
            Driver::Raw(r) => r.write_zeroes(off, len),
            Driver::Qcow2(q) => q.discard(off, len, self.backing().is_some()),
        }?;
        self.mark_dirty(off, len);
        Ok(())
    }

    /// Drops the range from this layer so it reads from the backing file (qcow2 only).
    pub fn make_unallocated(&self, off: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        self.check_range(off, len)?;
        match &self.driver {
            Driver::Raw(_) => {
                Err(BlockError::Unsupported("Image format 'raw' cannot drop data to its backing file".into()))
            }
            Driver::Qcow2(q) => q.make_unallocated(off, len),
        }?;
        self.mark_dirty(off, len);
        Ok(())
    }

    /// Makes every completed write durable.
    pub fn flush(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        match &self.driver {
            Driver::Raw(r) => r.flush(),
            Driver::Qcow2(q) => q.flush(),
        }
    }

    /// Changes the virtual size.
    pub fn resize(&self, size: u64) -> Result<()> {
        self.check_writable()?;
        match &self.driver {
            Driver::Raw(r) => r.resize(size),
            Driver::Qcow2(q) => {
                if !size.is_multiple_of(512) {
                    return Err(BlockError::Argument("The new size must be a multiple of 512".into()));
                }
                q.resize(size)
            }
        }
    }

    /// Status of the run starting at `off` in this layer only: (len, extent).
    fn layer_status(&self, off: u64, len: u64) -> Result<(u64, Extent)> {
        match &self.driver {
            Driver::Raw(r) => {
                let (data, end) = r.status(off, off + len);
                let l = (end - off).clamp(1, len);
                Ok((l, if data { Extent::Data(off) } else { Extent::Zero(Some(off)) }))
            }
            Driver::Qcow2(q) => q.map_first(off, len),
        }
    }

    /// Block status of the run starting at `off` (at most `len` bytes), looking through
    /// the backing chain for ranges this layer does not allocate.
    pub fn block_status(&self, off: u64, len: u64) -> Result<BlockStatus> {
        self.check_range(off, len)?;
        if len == 0 {
            return Err(BlockError::Argument("Empty block status request".into()));
        }
        let (l, ext) = self.layer_status(off, len)?;
        let mut st = BlockStatus {
            len: l,
            present: true,
            zero: false,
            data: false,
            depth: 0,
            offset: None,
            compressed: false,
        };
        match ext {
            Extent::Data(h) => {
                st.data = true;
                st.offset = Some(h);
            }
            Extent::Compressed(_) => {
                st.data = true;
                st.compressed = true;
            }
            Extent::Zero(h) => {
                st.zero = true;
                st.offset = h;
            }
            Extent::Unallocated => {
                let below = self.backing();
                match below {
                    Some(b) if off < b.size() => {
                        let mut s = b.block_status(off, l.min(b.size() - off))?;
                        s.depth += 1;
                        return Ok(s);
                    }
                    _ => {
                        st.present = false;
                        st.zero = true;
                    }
                }
            }
        }
        Ok(st)
    }

    /// Whether `[off, off+len)` is allocated in this layer (first run's length returned).
    /// Raw nodes allocate everything.
    pub fn is_allocated(&self, off: u64, len: u64) -> Result<(bool, u64)> {
        self.check_range(off, len)?;
        let (l, ext) = self.layer_status(off, len)?;
        Ok((ext != Extent::Unallocated, l))
    }

    /// Whether the range is allocated anywhere in the chain from this node down to, but
    /// not including, `base` (QEMU's `bdrv_is_allocated_above`). Returns the run length.
    pub fn is_allocated_above(
        self: &Arc<Self>,
        base: Option<&Arc<BlockNode>>,
        off: u64,
        len: u64,
    ) -> Result<(bool, u64)> {
        let mut node = self.clone();
        let mut run = len;
        loop {
            if base.is_some_and(|b| Arc::ptr_eq(b, &node)) {
                return Ok((false, run));
            }
            if off >= node.size() {
                return Ok((false, run));
            }
            let (alloc, l) = node.is_allocated(off, run.min(node.size() - off))?;
            if alloc {
                return Ok((true, l));
            }
            run = l;
            match node.backing() {
                Some(b) => node = b,
                None => return Ok((false, run)),
            }
        }
    }

    /// Changes the backing link: rewrites the header's backing file name and format
    /// (qcow2) and swaps the in-memory backing node. `None` makes the node standalone.
    pub fn set_backing(
        &self,
        node: Option<Arc<BlockNode>>,
        name: Option<&str>,
        format: Option<&str>,
    ) -> Result<()> {
        self.check_writable()?;
        let Some(q) = self.qcow2() else {
            return Err(BlockError::Unsupported("Image format 'raw' does not support backing files".into()));
        };
        q.set_backing(name, format)?;
        self.set_backing_node(node);
        Ok(())
    }

    /// Swaps the in-memory backing node only (the header keeps its name).
    pub fn set_backing_node(&self, node: Option<Arc<BlockNode>>) {
        if let Ok(mut g) = self.backing.write() {
            *g = node;
        }
    }
}

impl BackingRead for BlockNode {
    fn read_backing(&self, buf: &mut [u8], off: u64) -> Result<()> {
        let size = self.size();
        if off >= size {
            buf.fill(0);
            return Ok(());
        }
        let n = ((size - off) as usize).min(buf.len());
        let (head, tail) = buf.split_at_mut(n);
        self.read(head, off)?;
        tail.fill(0);
        Ok(())
    }
}
