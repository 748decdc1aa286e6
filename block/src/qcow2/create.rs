//! Creating qcow2 images.
//!
//! The file starts as header, refcount table and one refcount block (clusters 0-2, like
//! QEMU's layout); the L1 table and any preallocated metadata are then allocated through
//! the normal allocator, so odd geometries (512-byte clusters, 1-bit refcounts, huge L1
//! tables) take the same tested path as runtime growth.

use super::Qcow2;
use super::header::{COMPAT_LAZY_REFCOUNTS, Header, MAX_BACKING_NAME, MAX_L1_BYTES};
use super::meta::{Meta, OFLAG_COPIED, encode_table};
use crate::error::{BlockError, Result};
use crate::file::ImageFile;
use std::path::Path;
use std::sync::Arc;

/// Preallocation modes (`-o preallocation=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preallocation {
    #[default]
    Off,
    Metadata,
    Falloc,
    Full,
}

impl Preallocation {
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "off" => Preallocation::Off,
            "metadata" => Preallocation::Metadata,
            "falloc" => Preallocation::Falloc,
            "full" => Preallocation::Full,
            _ => {
                return Err(BlockError::Argument(format!(
                    "Parameter 'preallocation' does not accept value '{s}'"
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Preallocation::Off => "off",
            Preallocation::Metadata => "metadata",
            Preallocation::Falloc => "falloc",
            Preallocation::Full => "full",
        }
    }
}

/// Options for a new qcow2 image.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub size: u64,
    pub cluster_size: u64,
    /// 2 (compat=0.10) or 3 (compat=1.1).
    pub version: u32,
    pub backing_file: Option<String>,
    pub backing_format: Option<String>,
    pub lazy_refcounts: bool,
    pub refcount_bits: u32,
    pub preallocation: Preallocation,
}

impl Default for CreateOptions {
    fn default() -> Self {
        CreateOptions {
            size: 0,
            cluster_size: 65536,
            version: 3,
            backing_file: None,
            backing_format: None,
            lazy_refcounts: false,
            refcount_bits: 16,
            preallocation: Preallocation::Off,
        }
    }
}

/// Validates options with QEMU's messages.
pub fn validate(o: &CreateOptions) -> Result<u32> {
    let cs = o.cluster_size;
    if !cs.is_power_of_two() || !(512..=2 << 20).contains(&cs) {
        return Err(BlockError::Argument("Cluster size must be a power of two between 512 and 2048k".into()));
    }
    if !o.refcount_bits.is_power_of_two() || o.refcount_bits > 64 {
        return Err(BlockError::Argument(
            "Refcount width must be a power of two and may not exceed 64 bits".into(),
        ));
    }
    if o.version < 3 && o.refcount_bits != 16 {
        return Err(BlockError::Argument(
            "Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)".into(),
        ));
    }
    if o.version < 3 && o.lazy_refcounts {
        return Err(BlockError::Argument(
            "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)".into(),
        ));
    }
    if o.backing_file.is_some() && o.preallocation != Preallocation::Off {
        return Err(BlockError::Argument(
            "Backing file and preallocation can only be used at the same time if extended_l2 is on".into(),
        ));
    }
    if let Some(b) = &o.backing_file
        && b.len() > MAX_BACKING_NAME as usize
    {
        return Err(BlockError::Argument("Backing file name too long".into()));
    }
    if !o.size.is_multiple_of(512) {
        return Err(BlockError::Argument("Image size must be a multiple of 512 bytes".into()));
    }
    let bits = cs.trailing_zeros();
    let per_l1 = cs * (cs / 8);
    if o.size.div_ceil(per_l1) > MAX_L1_BYTES / 8 {
        return Err(BlockError::Argument(
            "The image size is too large for file format 'qcow2' (try using a larger cluster size)".into(),
        ));
    }
    Ok(bits)
}

/// Creates a qcow2 image at `path`.
pub fn create(path: &Path, o: &CreateOptions) -> Result<()> {
    let bits = validate(o)?;
    let cs = o.cluster_size;
    let file = ImageFile::create(path)?;
    let mut h = Header {
        version: o.version,
        backing_file_offset: 0,
        backing_file_size: 0,
        cluster_bits: bits,
        size: 0,
        crypt_method: 0,
        l1_size: 0,
        l1_table_offset: 0,
        refcount_table_offset: cs,
        refcount_table_clusters: 1,
        nb_snapshots: 0,
        snapshots_offset: 0,
        incompatible_features: 0,
        compatible_features: if o.lazy_refcounts { COMPAT_LAZY_REFCOUNTS } else { 0 },
        autoclear_features: 0,
        refcount_order: o.refcount_bits.trailing_zeros(),
        header_length: if o.version >= 3 { 112 } else { 72 },
        compression_type: 0,
        backing_format: o.backing_format.clone(),
        backing_file: o.backing_file.clone(),
        other_extensions: Vec::new(),
    };
    file.write_at(&h.clone().serialize()?, 0)?;
    file.write_at(&encode_table(&[2 * cs], cs as usize), cs)?;
    let mut block = vec![0u8; cs as usize];
    file.write_at(&block, 2 * cs)?;
    let file = Arc::new(file);
    let mut meta = Meta::load(file.clone(), h.clone(), true)?;
    for c in 0..3 {
        meta.set_refcount(c, 1)?;
    }
    let n = h.l1_entries_for(o.size).max(1);
    let l1_clusters = (n * 8).div_ceil(cs);
    let l1_off = meta.alloc_clusters(l1_clusters)?;
    block.clear();
    file.write_at(&vec![0u8; (l1_clusters * cs) as usize], l1_off)?;
    meta.writeback()?;
    h.l1_size = n as u32;
    h.l1_table_offset = l1_off;
    h.size = o.size;
    h.refcount_table_offset = meta.h.refcount_table_offset;
    h.refcount_table_clusters = meta.h.refcount_table_clusters;
    meta.h = h.clone();
    meta.l1 = vec![0; n as usize];
    file.write_at(&h.clone().serialize()?, 0)?;
    if o.preallocation != Preallocation::Off {
        preallocate(&mut meta, o)?;
    }
    meta.writeback()?;
    file.sync()?;
    Ok(())
}

/// Allocates L2 tables and data clusters for the whole disk (data reads as zero: the
/// file is extended sparsely, or filled for `falloc`/`full`).
fn preallocate(meta: &mut Meta, o: &CreateOptions) -> Result<()> {
    let cs = meta.cluster_size();
    let per = meta.h.l2_entries();
    let clusters = o.size.div_ceil(cs);
    let mut g = 0;
    while g < clusters {
        let k = (per - g % per).min(clusters - g);
        let l1_idx = (g / per) as usize;
        meta.ensure_l2(l1_idx)?;
        let host = meta.alloc_clusters(k)?;
        for i in 0..k {
            meta.set_l2_entry((g + i) * cs, (host + i * cs) | OFLAG_COPIED)?;
        }
        g += k;
        meta.writeback()?;
    }
    let end = meta.file.len()?;
    let mut last = 0;
    for c in (0..(end.div_ceil(cs) + clusters * 2 + 16)).rev() {
        if meta.refcount(c)? > 0 {
            last = (c + 1) * cs;
            break;
        }
    }
    let file = &meta.file;
    match o.preallocation {
        Preallocation::Metadata | Preallocation::Off => file.set_len(last.max(end))?,
        Preallocation::Falloc | Preallocation::Full => {
            let zeroes = vec![0u8; 1 << 20];
            let mut pos = end;
            while pos < last {
                let n = (last - pos).min(zeroes.len() as u64);
                file.write_at(&zeroes[..n as usize], pos)?;
                pos += n;
            }
        }
    }
    Ok(())
}

impl Qcow2 {
    /// Creates an image and opens it read-write.
    pub fn create(path: &Path, o: &CreateOptions) -> Result<Qcow2> {
        create(path, o)?;
        Qcow2::open(ImageFile::open(path, true)?, true)
    }
}
