//! Image information as data: QEMU's `ImageInfo` (the shape of `qemu-img info
//! --output=json` and of `query-block`'s `image` member), and its human-readable dump.

use crate::error::Result;
use crate::node::{BlockNode, combine_backing_path};
use crate::qcow2::snapshot::Snapshot;
use serde::{Deserialize, Serialize};

/// One internal snapshot (QEMU's `SnapshotInfo`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icount: Option<u64>,
    #[serde(rename = "vm-clock-nsec")]
    pub vm_clock_nsec: u64,
    pub name: String,
    #[serde(rename = "date-sec")]
    pub date_sec: u64,
    #[serde(rename = "date-nsec")]
    pub date_nsec: u64,
    #[serde(rename = "vm-clock-sec")]
    pub vm_clock_sec: u64,
    pub id: String,
    #[serde(rename = "vm-state-size")]
    pub vm_state_size: u64,
}

impl From<&Snapshot> for SnapshotInfo {
    fn from(s: &Snapshot) -> Self {
        SnapshotInfo {
            icount: s.icount.filter(|&i| i != u64::MAX),
            vm_clock_nsec: s.vm_clock_nsec % 1_000_000_000,
            name: s.name.clone(),
            date_sec: s.date_sec.into(),
            date_nsec: s.date_nsec.into(),
            vm_clock_sec: s.vm_clock_nsec / 1_000_000_000,
            id: s.id.clone(),
            vm_state_size: s.vm_state_size,
        }
    }
}

/// qcow2-specific fields (`format-specific.data`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Qcow2Specific {
    pub compat: String,
    #[serde(rename = "compression-type")]
    pub compression_type: String,
    #[serde(rename = "lazy-refcounts", skip_serializing_if = "Option::is_none")]
    pub lazy_refcounts: Option<bool>,
    #[serde(rename = "refcount-bits")]
    pub refcount_bits: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub corrupt: Option<bool>,
    #[serde(rename = "extended-l2", skip_serializing_if = "Option::is_none")]
    pub extended_l2: Option<bool>,
}

/// `format-specific`: `{"type": "qcow2", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormatSpecific {
    #[serde(rename = "type")]
    pub kind: String,
    pub data: Qcow2Specific,
}

/// QEMU's `ImageInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<Vec<SnapshotInfo>>,
    #[serde(rename = "backing-filename-format", skip_serializing_if = "Option::is_none")]
    pub backing_filename_format: Option<String>,
    #[serde(rename = "virtual-size")]
    pub virtual_size: u64,
    pub filename: String,
    #[serde(rename = "cluster-size", skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u64>,
    pub format: String,
    #[serde(rename = "actual-size", skip_serializing_if = "Option::is_none")]
    pub actual_size: Option<u64>,
    #[serde(rename = "format-specific", skip_serializing_if = "Option::is_none")]
    pub format_specific: Option<FormatSpecific>,
    #[serde(rename = "full-backing-filename", skip_serializing_if = "Option::is_none")]
    pub full_backing_filename: Option<String>,
    #[serde(rename = "backing-filename", skip_serializing_if = "Option::is_none")]
    pub backing_filename: Option<String>,
    #[serde(rename = "dirty-flag")]
    pub dirty_flag: bool,
    /// The backing file's info (query-block nests the whole chain here).
    #[serde(rename = "backing-image", skip_serializing_if = "Option::is_none")]
    pub backing_image: Option<Box<ImageInfo>>,
}

impl BlockNode {
    /// Information about this layer only (`backing_image` is left empty).
    pub fn info(&self) -> Result<ImageInfo> {
        let actual = self.file().allocated_bytes().ok();
        let mut info = ImageInfo {
            snapshots: None,
            backing_filename_format: None,
            virtual_size: self.size(),
            filename: self.filename().to_string(),
            cluster_size: None,
            format: self.format().name().to_string(),
            actual_size: actual,
            format_specific: None,
            full_backing_filename: None,
            backing_filename: None,
            dirty_flag: false,
            backing_image: None,
        };
        if let Some(q) = self.qcow2() {
            let h = q.header();
            info.cluster_size = Some(h.cluster_size());
            info.dirty_flag = h.is_dirty();
            let v3 = h.version >= 3;
            info.format_specific = Some(FormatSpecific {
                kind: "qcow2".into(),
                data: Qcow2Specific {
                    compat: if v3 { "1.1" } else { "0.10" }.into(),
                    compression_type: if h.compression_type == 1 { "zstd" } else { "zlib" }.into(),
                    lazy_refcounts: v3.then_some(h.lazy_refcounts()),
                    refcount_bits: h.refcount_bits(),
                    corrupt: v3.then_some(h.is_corrupt()),
                    extended_l2: v3.then_some(false),
                },
            });
            if let Some(b) = &h.backing_file {
                info.backing_filename = Some(b.clone());
                info.full_backing_filename = Some(combine_backing_path(self.filename(), b));
                info.backing_filename_format = h.backing_format.clone();
            }
            let snaps = q.snapshots()?;
            if !snaps.is_empty() {
                info.snapshots = Some(snaps.iter().map(SnapshotInfo::from).collect());
            }
        }
        Ok(info)
    }

    /// Information with the whole backing chain nested in `backing_image`.
    pub fn info_recursive(&self) -> Result<ImageInfo> {
        let mut info = self.info()?;
        if let Some(b) = self.backing() {
            info.backing_image = Some(Box::new(b.info_recursive()?));
        }
        Ok(info)
    }
}

/// QEMU's `%0.3g` for the non-negative values `size_to_str` prints.
fn fmt_g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let exp = v.abs().log10().floor() as i32;
    if !(-4..3).contains(&exp) {
        return format!("{v:.2e}");
    }
    let decimals = (2 - exp).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

/// QEMU's `size_to_str`: `196 KiB`, `1.26 MiB`, `64 MiB`, `0 B`.
pub fn size_to_str(val: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let x = val as f64 / (1000.0 / 1024.0);
    let i = if x < 1.0 { 0 } else { ((x.log2().floor() as i64) / 10).clamp(0, 6) as usize };
    let div = (1u128 << (i * 10)) as f64;
    format!("{} {}B", fmt_g3(val as f64 / div), SUFFIXES[i])
}

/// Local time `YYYY-mm-dd HH:MM:SS` of a Unix timestamp (as GLib formats it).
pub fn local_date(secs: u64) -> String {
    let t = secs as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fully initialises on success; both
    // pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return secs.to_string();
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// The `Snapshot list:` table header and rows as `qemu-img snapshot -l` prints them.
pub fn snapshot_table(snaps: &[SnapshotInfo]) -> String {
    let mut s = format!(
        "{:<10}{:<17}{:>8}{:>20}{:>13}{:>11}\n",
        "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT"
    );
    for sn in snaps {
        let secs = sn.vm_clock_sec;
        let clock = format!(
            "{:02}:{:02}:{:02}.{:03}",
            secs / 3600,
            (secs / 60) % 60,
            secs % 60,
            sn.vm_clock_nsec / 1_000_000
        );
        let icount = sn.icount.map(|i| i.to_string()).unwrap_or_default();
        s.push_str(&format!(
            "{:<9} {:<16} {:>8}{:>20}{:>13}{:>11}\n",
            sn.id,
            sn.name,
            size_to_str(sn.vm_state_size),
            local_date(sn.date_sec),
            clock,
            icount
        ));
    }
    s
}

/// `qemu-img info`'s human-readable dump of one image.
pub fn human(info: &ImageInfo) -> String {
    let mut s = format!(
        "image: {}\nfile format: {}\nvirtual size: {} ({} bytes)\ndisk size: {}\n",
        info.filename,
        info.format,
        size_to_str(info.virtual_size),
        info.virtual_size,
        info.actual_size.map(size_to_str).unwrap_or_else(|| "unavailable".into())
    );
    if let Some(cs) = info.cluster_size {
        s.push_str(&format!("cluster_size: {cs}\n"));
    }
    if info.dirty_flag {
        s.push_str("cleanly shut down: no\n");
    }
    if let Some(b) = &info.backing_filename {
        s.push_str(&format!("backing file: {b}"));
        match &info.full_backing_filename {
            None => s.push_str(" (cannot determine actual path)"),
            Some(f) if f != b => s.push_str(&format!(" (actual path: {f})")),
            Some(_) => {}
        }
        s.push('\n');
        if let Some(f) = &info.backing_filename_format {
            s.push_str(&format!("backing file format: {f}\n"));
        }
    }
    if let Some(snaps) = &info.snapshots {
        s.push_str("Snapshot list:\n");
        s.push_str(&snapshot_table(snaps));
    }
    if let Some(fs) = &info.format_specific {
        let d = &fs.data;
        s.push_str("Format specific information:\n");
        s.push_str(&format!("    compat: {}\n", d.compat));
        s.push_str(&format!("    compression type: {}\n", d.compression_type));
        if let Some(l) = d.lazy_refcounts {
            s.push_str(&format!("    lazy refcounts: {l}\n"));
        }
        s.push_str(&format!("    refcount bits: {}\n", d.refcount_bits));
        if let Some(c) = d.corrupt {
            s.push_str(&format!("    corrupt: {c}\n"));
        }
        if let Some(e) = d.extended_l2 {
            s.push_str(&format!("    extended l2: {e}\n"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_qemu() {
        assert_eq!(size_to_str(0), "0 B");
        assert_eq!(size_to_str(200704), "196 KiB");
        assert_eq!(size_to_str(1323008), "1.26 MiB");
        assert_eq!(size_to_str(64 << 20), "64 MiB");
        assert_eq!(size_to_str(1 << 30), "1 GiB");
        assert_eq!(size_to_str(4096), "4 KiB");
        assert_eq!(size_to_str(1000), "0.977 KiB");
        assert_eq!(size_to_str(512), "512 B");
    }
}
