//! The qcow2 header: parsing with QEMU's checks and messages, and serialising it back.
//!
//! Layout (big-endian): magic, version, backing file offset/size, cluster_bits, size,
//! crypt_method, l1_size, l1_table_offset, refcount_table_offset/clusters, nb_snapshots,
//! snapshots_offset; v3 adds feature bitmaps, refcount_order, header_length and the
//! compression type byte. Header extensions follow, then the backing file name.

use crate::error::{BlockError, Result};

pub const QCOW2_MAGIC: u32 = 0x5146_49fb;
pub const EXT_END: u32 = 0;
pub const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
pub const EXT_FEATURE_TABLE: u32 = 0x6803_f857;
pub const EXT_BITMAPS: u32 = 0x2385_2875;
pub const EXT_CRYPTO: u32 = 0x0537_be77;
pub const EXT_DATA_FILE: u32 = 0x4441_5441;

pub const INCOMPAT_DIRTY: u64 = 1 << 0;
pub const INCOMPAT_CORRUPT: u64 = 1 << 1;
pub const INCOMPAT_DATA_FILE: u64 = 1 << 2;
pub const INCOMPAT_COMPRESSION: u64 = 1 << 3;
pub const INCOMPAT_EXTL2: u64 = 1 << 4;
pub const COMPAT_LAZY_REFCOUNTS: u64 = 1 << 0;
pub const AUTOCLEAR_BITMAPS: u64 = 1 << 0;

/// Largest L1 table QEMU opens (32 MiB).
pub const MAX_L1_BYTES: u64 = 32 << 20;
/// Largest refcount table QEMU opens (8 MiB).
pub const MAX_REFTABLE_BYTES: u64 = 8 << 20;
/// Most internal snapshots QEMU accepts.
pub const MAX_SNAPSHOTS: u32 = 65536;
/// Longest backing file name QEMU accepts.
pub const MAX_BACKING_NAME: u32 = 1023;

/// An unknown header extension kept verbatim so a header rewrite preserves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawExtension {
    pub kind: u32,
    pub data: Vec<u8>,
}

/// The parsed qcow2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub version: u32,
    pub backing_file_offset: u64,
    pub backing_file_size: u32,
    pub cluster_bits: u32,
    pub size: u64,
    pub crypt_method: u32,
    pub l1_size: u32,
    pub l1_table_offset: u64,
    pub refcount_table_offset: u64,
    pub refcount_table_clusters: u32,
    pub nb_snapshots: u32,
    pub snapshots_offset: u64,
    pub incompatible_features: u64,
    pub compatible_features: u64,
    pub autoclear_features: u64,
    pub refcount_order: u32,
    pub header_length: u32,
    pub compression_type: u8,
    /// From the backing-format header extension.
    pub backing_format: Option<String>,
    /// The backing file name as stored (not resolved).
    pub backing_file: Option<String>,
    /// Extensions other than backing format / feature table, kept for rewrites.
    pub other_extensions: Vec<RawExtension>,
}

fn be32(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn be64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_be_bytes(a)
}

fn invalid(msg: impl Into<String>) -> BlockError {
    BlockError::Invalid(msg.into())
}

/// QEMU's `validate_table_offset`: the table must be cluster-aligned and not overflow.
pub fn table_offset_valid(offset: u64, entries: u64, entry_len: u64, cluster_size: u64) -> bool {
    let Some(size) = entries.checked_mul(entry_len) else {
        return false;
    };
    if size > i64::MAX as u64 || offset > i64::MAX as u64 - size {
        return false;
    }
    offset.is_multiple_of(cluster_size)
}

impl Header {
    pub fn cluster_size(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// Entries in one L2 table.
    pub fn l2_entries(&self) -> u64 {
        self.cluster_size() / 8
    }

    pub fn refcount_bits(&self) -> u32 {
        1 << self.refcount_order
    }

    pub fn is_dirty(&self) -> bool {
        self.incompatible_features & INCOMPAT_DIRTY != 0
    }

    pub fn is_corrupt(&self) -> bool {
        self.incompatible_features & INCOMPAT_CORRUPT != 0
    }

    pub fn lazy_refcounts(&self) -> bool {
        self.compatible_features & COMPAT_LAZY_REFCOUNTS != 0
    }

    /// L1 entries needed to map `size` bytes.
    pub fn l1_entries_for(&self, size: u64) -> u64 {
        let per_l1 = self.cluster_size() * self.l2_entries();
        size.div_ceil(per_l1)
    }

    /// Parses and validates a header from the first bytes of the file (`buf` holds at
    /// least the first cluster or the whole file if shorter; `file_len` is the file size).
    /// `writable` enables the "corrupt image" refusal QEMU applies to read-write opens.
    pub fn parse(buf: &[u8], writable: bool) -> Result<Header> {
        if buf.len() < 72 {
            if buf.len() >= 4 && be32(buf, 0) != QCOW2_MAGIC {
                return Err(invalid("Image is not in qcow2 format"));
            }
            return Err(invalid("qcow2 header too short"));
        }
        if be32(buf, 0) != QCOW2_MAGIC {
            return Err(invalid("Image is not in qcow2 format"));
        }
        let version = be32(buf, 4);
        if !(2..=3).contains(&version) {
            return Err(BlockError::Unsupported(format!("Unsupported qcow2 version {version}")));
        }
        let cluster_bits = be32(buf, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(invalid(format!("Unsupported cluster size: 2^{cluster_bits}")));
        }
        let cluster_size = 1u64 << cluster_bits;
        let mut h = Header {
            version,
            backing_file_offset: be64(buf, 8),
            backing_file_size: be32(buf, 16),
            cluster_bits,
            size: be64(buf, 24),
            crypt_method: be32(buf, 32),
            l1_size: be32(buf, 36),
            l1_table_offset: be64(buf, 40),
            refcount_table_offset: be64(buf, 48),
            refcount_table_clusters: be32(buf, 56),
            nb_snapshots: be32(buf, 60),
            snapshots_offset: be64(buf, 64),
            incompatible_features: 0,
            compatible_features: 0,
            autoclear_features: 0,
            refcount_order: 4,
            header_length: 72,
            compression_type: 0,
            backing_format: None,
            backing_file: None,
            other_extensions: Vec::new(),
        };
        if version == 3 {
            if buf.len() < 104 {
                return Err(invalid("qcow2 header too short"));
            }
            h.incompatible_features = be64(buf, 72);
            h.compatible_features = be64(buf, 80);
            h.autoclear_features = be64(buf, 88);
            h.refcount_order = be32(buf, 96);
            h.header_length = be32(buf, 100);
            if h.header_length < 104 {
                return Err(invalid("qcow2 header too short"));
            }
            if u64::from(h.header_length) > cluster_size {
                return Err(invalid("qcow2 header exceeds cluster size"));
            }
            if h.header_length > 104 && buf.len() > 104 {
                h.compression_type = buf[104];
            }
        }
        if h.backing_file_offset > cluster_size {
            return Err(invalid("Invalid backing file offset"));
        }
        h.parse_extensions(buf)?;
        let known =
            INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2;
        let unknown = h.incompatible_features & !known;
        if unknown != 0 {
            return Err(BlockError::Unsupported(format!(
                "Unsupported qcow2 feature(s): Unknown incompatible feature: {unknown:x}"
            )));
        }
        if h.is_corrupt() && writable {
            return Err(invalid("qcow2: Image is corrupt; cannot be opened read/write"));
        }
        if h.incompatible_features & INCOMPAT_COMPRESSION == 0 && h.compression_type != 0 {
            return Err(invalid("qcow2: Compression type incompatible feature bit must be set"));
        }
        if h.compression_type > 1 {
            return Err(invalid(format!("qcow2: unknown compression type: {}", h.compression_type)));
        }
        if h.refcount_order > 6 {
            return Err(invalid("Reference count entry width too large; may not exceed 64 bits"));
        }
        if h.crypt_method > 2 {
            return Err(invalid(format!("Unsupported encryption method {}", h.crypt_method)));
        }
        if h.crypt_method != 0 {
            return Err(BlockError::Unsupported("Encrypted qcow2 images are not supported".into()));
        }
        if h.incompatible_features & INCOMPAT_DATA_FILE != 0 {
            return Err(BlockError::Unsupported(
                "qcow2 images with an external data file are not supported".into(),
            ));
        }
        if h.incompatible_features & INCOMPAT_EXTL2 != 0 {
            return Err(BlockError::Unsupported(
                "qcow2 images with extended L2 entries are not supported".into(),
            ));
        }
        if u64::from(h.refcount_table_clusters) > MAX_REFTABLE_BYTES / cluster_size {
            return Err(invalid("Reference count table too large"));
        }
        if h.refcount_table_clusters == 0 {
            return Err(invalid("Image does not contain a reference count table"));
        }
        if !table_offset_valid(
            h.refcount_table_offset,
            h.refcount_table_clusters.into(),
            cluster_size,
            cluster_size,
        ) {
            return Err(invalid("Reference count table offset invalid"));
        }
        if h.nb_snapshots > MAX_SNAPSHOTS {
            return Err(invalid("Snapshot table too large"));
        }
        if !table_offset_valid(h.snapshots_offset, h.nb_snapshots.into(), 40, cluster_size) {
            return Err(invalid("Snapshot table offset invalid"));
        }
        if u64::from(h.l1_size) > MAX_L1_BYTES / 8 {
            return Err(invalid("Active L1 table too large"));
        }
        let need = h.l1_entries_for(h.size);
        if need > i32::MAX as u64 || h.size > i64::MAX as u64 {
            return Err(invalid("Image is too big"));
        }
        if u64::from(h.l1_size) < need {
            return Err(invalid("L1 table is too small"));
        }
        if h.l1_size > 0 && !table_offset_valid(h.l1_table_offset, h.l1_size.into(), 8, cluster_size) {
            return Err(invalid("Active L1 table offset invalid"));
        }
        if h.backing_file_offset != 0 {
            let len = h.backing_file_size;
            if len > MAX_BACKING_NAME || u64::from(len) >= cluster_size {
                return Err(invalid("Backing file name too long"));
            }
            let start = h.backing_file_offset as usize;
            let end = start + len as usize;
            let bytes = buf.get(start..end.min(buf.len())).unwrap_or(&[]);
            let mut name = bytes.to_vec();
            name.resize(len as usize, 0);
            h.backing_file = Some(String::from_utf8_lossy(&name).into_owned());
        }
        Ok(h)
    }

    fn parse_extensions(&mut self, buf: &[u8]) -> Result<()> {
        let cluster_size = self.cluster_size() as usize;
        let mut off = self.header_length as usize;
        let end =
            if self.backing_file_offset != 0 { self.backing_file_offset as usize } else { cluster_size };
        let end = end.min(buf.len());
        while off + 8 <= end {
            let kind = be32(buf, off);
            let len = be32(buf, off + 4) as usize;
            off += 8;
            if len > end - off {
                return Err(invalid(format!(
                    "Invalid header extension 0x{kind:x}: length {len} exceeds the header"
                )));
            }
            let data = &buf[off..off + len];
            match kind {
                EXT_END => return Ok(()),
                EXT_BACKING_FORMAT => {
                    if len > 15 {
                        return Err(invalid(format!(
                            "ERROR: ext_backing_format: len={len} too large (>=16)"
                        )));
                    }
                    let s = data.split(|&b| b == 0).next().unwrap_or(&[]);
                    self.backing_format = Some(String::from_utf8_lossy(s).into_owned());
                }
                EXT_FEATURE_TABLE => {}
                _ => self.other_extensions.push(RawExtension { kind, data: data.to_vec() }),
            }
            off += len.next_multiple_of(8);
        }
        Ok(())
    }

    /// Serialises the header cluster: header, extensions (backing format, a feature name
    /// table, preserved unknown ones), end marker and backing file name. Sets
    /// `backing_file_offset/size` and `header_length` to match what is written.
    pub fn serialize(&mut self) -> Result<Vec<u8>> {
        let cs = self.cluster_size() as usize;
        let mut b = Vec::with_capacity(cs);
        let hlen = if self.version >= 3 { self.header_length.max(112) } else { 72 };
        self.header_length = hlen;
        b.resize(hlen as usize, 0);
        b[0..4].copy_from_slice(&QCOW2_MAGIC.to_be_bytes());
        b[4..8].copy_from_slice(&self.version.to_be_bytes());
        b[20..24].copy_from_slice(&self.cluster_bits.to_be_bytes());
        b[24..32].copy_from_slice(&self.size.to_be_bytes());
        b[32..36].copy_from_slice(&self.crypt_method.to_be_bytes());
        b[36..40].copy_from_slice(&self.l1_size.to_be_bytes());
        b[40..48].copy_from_slice(&self.l1_table_offset.to_be_bytes());
        b[48..56].copy_from_slice(&self.refcount_table_offset.to_be_bytes());
        b[56..60].copy_from_slice(&self.refcount_table_clusters.to_be_bytes());
        b[60..64].copy_from_slice(&self.nb_snapshots.to_be_bytes());
        b[64..72].copy_from_slice(&self.snapshots_offset.to_be_bytes());
        if self.version >= 3 {
            b[72..80].copy_from_slice(&self.incompatible_features.to_be_bytes());
            b[80..88].copy_from_slice(&self.compatible_features.to_be_bytes());
            b[88..96].copy_from_slice(&self.autoclear_features.to_be_bytes());
            b[96..100].copy_from_slice(&self.refcount_order.to_be_bytes());
            b[100..104].copy_from_slice(&hlen.to_be_bytes());
            b[104] = self.compression_type;
        }
        let push_ext = |b: &mut Vec<u8>, kind: u32, data: &[u8]| {
            b.extend_from_slice(&kind.to_be_bytes());
            b.extend_from_slice(&(data.len() as u32).to_be_bytes());
            b.extend_from_slice(data);
            b.resize(b.len().next_multiple_of(8), 0);
        };
        if let Some(fmt) = &self.backing_format {
            push_ext(&mut b, EXT_BACKING_FORMAT, fmt.as_bytes());
        }
        if self.version >= 3 {
            push_ext(&mut b, EXT_FEATURE_TABLE, &feature_table());
        }
        for e in &self.other_extensions {
            push_ext(&mut b, e.kind, &e.data);
        }
        push_ext(&mut b, EXT_END, &[]);
        if let Some(name) = &self.backing_file {
            if name.len() > MAX_BACKING_NAME as usize {
                return Err(BlockError::Argument("Backing file name too long".into()));
            }
            self.backing_file_offset = b.len() as u64;
            self.backing_file_size = name.len() as u32;
            b.extend_from_slice(name.as_bytes());
        } else {
            self.backing_file_offset = 0;
            self.backing_file_size = 0;
        }
        if b.len() > cs {
            return Err(BlockError::Argument(
                "Header extensions and backing file name do not fit in the first cluster".into(),
            ));
        }
        b[8..16].copy_from_slice(&self.backing_file_offset.to_be_bytes());
        b[16..20].copy_from_slice(&self.backing_file_size.to_be_bytes());
        Ok(b)
    }
}

/// The feature name table QEMU writes (type, bit, 46-byte name).
fn feature_table() -> Vec<u8> {
    let entries: [(u8, u8, &str); 7] = [
        (0, 0, "dirty bit"),
        (0, 1, "corrupt bit"),
        (0, 2, "external data file"),
        (0, 3, "compression type"),
        (0, 4, "extended L2 entries"),
        (1, 0, "lazy refcounts"),
        (2, 0, "bitmaps"),
    ];
    let mut v = Vec::new();
    for (kind, bit, name) in entries {
        let mut e = [0u8; 48];
        e[0] = kind;
        e[1] = bit;
        e[2..2 + name.len()].copy_from_slice(name.as_bytes());
        v.extend_from_slice(&e);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            version: 3,
            backing_file_offset: 0,
            backing_file_size: 0,
            cluster_bits: 16,
            size: 64 << 20,
            crypt_method: 0,
            l1_size: 1,
            l1_table_offset: 0x30000,
            refcount_table_offset: 0x10000,
            refcount_table_clusters: 1,
            nb_snapshots: 0,
            snapshots_offset: 0,
            incompatible_features: 0,
            compatible_features: 0,
            autoclear_features: 0,
            refcount_order: 4,
            header_length: 112,
            compression_type: 0,
            backing_format: Some("qcow2".into()),
            backing_file: Some("base.qcow2".into()),
            other_extensions: vec![],
        }
    }

    #[test]
    fn round_trip() {
        let mut h = sample();
        let b = h.serialize().unwrap();
        let p = Header::parse(&b, true).unwrap();
        assert_eq!(p.backing_file.as_deref(), Some("base.qcow2"));
        assert_eq!(p.backing_format.as_deref(), Some("qcow2"));
        assert_eq!(p.size, 64 << 20);
        assert_eq!(p.l1_table_offset, 0x30000);
    }

    #[test]
    fn qemu_messages() {
        let mut h = sample();
        let b = h.serialize().unwrap();
        let cases: [(usize, u32, &str); 4] = [
            (4, 4, "Unsupported qcow2 version 4"),
            (20, 8, "Unsupported cluster size: 2^8"),
            (36, 0x7fff_ffff, "Active L1 table too large"),
            (96, 7, "Reference count entry width too large; may not exceed 64 bits"),
        ];
        for (off, val, msg) in cases {
            let mut x = b.clone();
            x[off..off + 4].copy_from_slice(&val.to_be_bytes());
            assert_eq!(Header::parse(&x, false).unwrap_err().to_string(), msg);
        }
        assert_eq!(Header::parse(&b[..50], false).unwrap_err().to_string(), "qcow2 header too short");
        let mut x = b.clone();
        x[0] = 0;
        assert_eq!(Header::parse(&x, false).unwrap_err().to_string(), "Image is not in qcow2 format");
    }
}
