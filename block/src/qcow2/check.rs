//! `qemu-img check` for qcow2: recount every reference and compare with the refcounts.
//!
//! Walks the header, the refcount table and blocks, the active L1/L2 tree and every
//! snapshot's tree (each L1 counts once per path, as QEMU counts), then compares with the
//! stored refcounts and checks the COPIED flags of the active tree. Messages and the
//! counters match QEMU's so `vmm-img check` prints what qemu-img prints. Memory is bounded
//! by the file size (one counter per host cluster of the file); references past the end of
//! the file are reported as corruptions without being stored.

use super::Qcow2;
use super::header::{MAX_L1_BYTES, table_offset_valid};
use super::meta::{
    L2Kind, Meta, OFFSET_MASK, OFLAG_COMPRESSED, OFLAG_COPIED, REFT_OFFSET_MASK, classify, read_table_prefix,
};
use super::snapshot::{fix_copied, read_snapshots, table_size};
use crate::error::Result;

/// Which inconsistencies to repair (`-r leaks` / `-r all`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    None,
    Leaks,
    All,
}

/// What a check found (QEMU's BdrvCheckResult).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckResult {
    pub corruptions: u64,
    pub leaks: u64,
    pub check_errors: u64,
    pub corruptions_fixed: u64,
    pub leaks_fixed: u64,
    pub image_end_offset: u64,
    pub total_clusters: u64,
    pub allocated_clusters: u64,
    pub fragmented_clusters: u64,
    pub compressed_clusters: u64,
    /// Lines QEMU prints on stderr while checking ("Leaked cluster 5 refcount=1 reference=0").
    pub messages: Vec<String>,
}

/// At most this many per-cluster messages are kept (hostile images can have millions).
const MAX_MESSAGES: usize = 1000;

struct Walker {
    refs: Vec<u64>,
    cs: u64,
    res: CheckResult,
    next_contiguous: u64,
}

impl Walker {
    fn msg(&mut self, m: String) {
        if self.res.messages.len() < MAX_MESSAGES {
            self.res.messages.push(m);
        }
    }

    fn inc(&mut self, off: u64, len: u64) {
        if len == 0 {
            return;
        }
        let first = off / self.cs;
        let last = (off + len - 1) / self.cs;
        for c in first..=last {
            match self.refs.get_mut(c as usize) {
                Some(r) => *r += 1,
                None => {
                    self.res.corruptions += 1;
                    if self.res.messages.len() >= MAX_MESSAGES {
                        continue;
                    }
                    self.msg(format!(
                        "ERROR cluster {c} is referenced but lies past the end of the image file"
                    ));
                }
            }
        }
    }

    fn walk_l1(&mut self, meta: &mut Meta, l1: &[u64], active: bool) -> Result<()> {
        let cs = self.cs;
        let bits = meta.h.cluster_bits;
        let per = meta.h.l2_entries();
        for (i, e) in l1.iter().enumerate() {
            let l2 = e & OFFSET_MASK;
            if l2 == 0 {
                continue;
            }
            if !l2.is_multiple_of(cs) {
                self.res.corruptions += 1;
                self.msg(format!("ERROR l2_offset={l2:x}: Table is not cluster aligned; L1 entry corrupted"));
                continue;
            }
            self.inc(l2, cs);
            if (l2 / cs) as usize >= self.refs.len() {
                continue;
            }
            for idx in 0..per {
                let entry = meta.l2_get(l2, idx)?;
                let guest = (i as u64 * per + idx) * cs;
                match classify(entry, bits) {
                    L2Kind::Compressed { offset, size } => {
                        if entry & OFLAG_COPIED != 0 {
                            self.res.corruptions += 1;
                            self.msg(format!(
                                "ERROR: coffset=0x{offset:x}: copied flag must never be set for compressed clusters"
                            ));
                        }
                        if active {
                            self.res.allocated_clusters += 1;
                            self.res.compressed_clusters += 1;
                            // compressed clusters count as fragmented (QEMU)
                            self.res.fragmented_clusters += 1;
                        }
                        self.inc(offset, size);
                    }
                    L2Kind::Normal(h) | L2Kind::Zero(Some(h)) => {
                        if !h.is_multiple_of(cs) {
                            self.res.corruptions += 1;
                            self.msg(format!(
                                "ERROR offset={h:x}: Cluster is not properly aligned; L2 entry corrupted."
                            ));
                            continue;
                        }
                        if active && matches!(classify(entry, bits), L2Kind::Normal(_)) {
                            self.res.allocated_clusters += 1;
                            if self.next_contiguous != 0 && self.next_contiguous != h {
                                self.res.fragmented_clusters += 1;
                            }
                            self.next_contiguous = h + cs;
                        }
                        let _ = guest;
                        self.inc(h, cs);
                    }
                    L2Kind::Zero(None) | L2Kind::Unallocated => {}
                }
            }
        }
        Ok(())
    }
}

/// Checks (and optionally repairs) an image. With repair, the returned result is that of
/// the re-check after repairing, with the `*_fixed` counters of the repair pass.
pub fn check(q: &Qcow2, repair: Repair) -> Result<CheckResult> {
    let h = q.header();
    if h.other_extensions.iter().any(|e| e.kind == super::header::EXT_BITMAPS) {
        return Err(crate::error::BlockError::Unsupported(
            "Checking images with persistent dirty bitmaps is not supported".into(),
        ));
    }
    let _g = q.exclusive()?;
    let mut meta = q.meta()?;
    if q.writable() {
        meta.writeback()?;
    }
    let first = check_once(&mut meta, repair)?;
    if repair == Repair::None || (first.leaks_fixed == 0 && first.corruptions_fixed == 0) {
        return Ok(first);
    }
    meta.writeback()?;
    let mut second = check_once(&mut meta, Repair::None)?;
    second.leaks_fixed = first.leaks_fixed;
    second.corruptions_fixed = first.corruptions_fixed;
    let mut msgs = first.messages;
    msgs.append(&mut second.messages);
    second.messages = msgs;
    Ok(second)
}

fn check_once(meta: &mut Meta, repair: Repair) -> Result<CheckResult> {
    let cs = meta.cluster_size();
    let file_len = meta.file.len()?;
    let nb = file_len.div_ceil(cs);
    let mut w = Walker { refs: vec![0u64; nb as usize], cs, res: CheckResult::default(), next_contiguous: 0 };
    w.res.total_clusters = meta.h.size.div_ceil(cs);
    // header
    w.inc(0, cs);
    // active L1
    let l1 = meta.l1.clone();
    w.inc(meta.h.l1_table_offset, u64::from(meta.h.l1_size) * 8);
    w.walk_l1(meta, &l1, true)?;
    // snapshots
    let snaps = read_snapshots(&meta.file, meta.h.snapshots_offset, meta.h.nb_snapshots)?;
    for sn in &snaps {
        if u64::from(sn.l1_size) > MAX_L1_BYTES / 8 {
            w.res.corruptions += 1;
            w.msg(format!(
                "ERROR snapshot {} ({}) l1_size={:#x}: L1 table is too large; snapshot table entry corrupted",
                sn.id, sn.name, sn.l1_size
            ));
            continue;
        }
        if !table_offset_valid(sn.l1_table_offset, sn.l1_size.into(), 8, cs) {
            w.res.corruptions += 1;
            w.msg(format!(
                "ERROR snapshot {} ({}) l1_offset={:#x}: L1 table is not cluster aligned; snapshot table entry corrupted",
                sn.id, sn.name, sn.l1_table_offset
            ));
            continue;
        }
        w.inc(sn.l1_table_offset, u64::from(sn.l1_size) * 8);
        let sl1 = read_table_prefix(&meta.file, sn.l1_table_offset, sn.l1_size.into())?;
        w.walk_l1(meta, &sl1, false)?;
    }
    if meta.h.nb_snapshots > 0 {
        w.inc(meta.h.snapshots_offset, table_size(&snaps, meta.h.version));
    }
    // refcount table and blocks
    w.inc(meta.h.refcount_table_offset, u64::from(meta.h.refcount_table_clusters) * cs);
    let reftable = meta.reftable.clone();
    let mut bad_blocks = std::collections::HashSet::new();
    for (i, e) in reftable.iter().enumerate() {
        let off = e & REFT_OFFSET_MASK;
        if off == 0 {
            continue;
        }
        if !off.is_multiple_of(cs) {
            w.res.corruptions += 1;
            w.msg(format!("ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted"));
            bad_blocks.insert(i);
            continue;
        }
        if off / cs >= nb {
            w.res.corruptions += 1;
            w.msg(format!("ERROR refcount block {i} is outside image"));
            bad_blocks.insert(i);
            continue;
        }
        w.inc(off, cs);
    }
    for (i, e) in reftable.iter().enumerate() {
        let off = e & REFT_OFFSET_MASK;
        if off == 0 || bad_blocks.contains(&i) {
            continue;
        }
        let r = w.refs[(off / cs) as usize];
        if r != 1 {
            w.res.corruptions += 1;
            w.msg(format!("ERROR refcount block {i} refcount={r}"));
        }
    }
    // compare
    let epb = cs * 8 / u64::from(meta.h.refcount_bits());
    let covered = reftable.len() as u64 * epb;
    let mut highest = 0u64;
    for c in 0..nb.max(covered.min(nb)) {
        let reference = w.refs.get(c as usize).copied().unwrap_or(0);
        let refcount = if bad_blocks.contains(&((c / epb) as usize)) {
            0
        } else {
            match meta.refcount(c) {
                Ok(v) => v,
                Err(e) => {
                    w.res.check_errors += 1;
                    w.msg(format!("Can't get refcount for cluster {c}: {e}"));
                    continue;
                }
            }
        };
        if reference > 0 || refcount > 0 {
            highest = c;
        }
        if refcount == reference {
            continue;
        }
        let fixable = (refcount > reference && repair != Repair::None)
            || (refcount < reference && repair == Repair::All);
        if fixable && meta.set_refcount(c, reference).is_ok() {
            w.msg(format!("Repairing cluster {c} refcount={refcount} reference={reference}"));
            if refcount > reference {
                w.res.leaks_fixed += 1;
            } else {
                w.res.corruptions_fixed += 1;
            }
            continue;
        }
        if refcount < reference {
            w.msg(format!("ERROR cluster {c} refcount={refcount} reference={reference}"));
            w.res.corruptions += 1;
        } else {
            w.msg(format!("Leaked cluster {c} refcount={refcount} reference={reference}"));
            w.res.leaks += 1;
        }
    }
    // COPIED flags of the active tree
    let bits = meta.h.cluster_bits;
    let per = meta.h.l2_entries();
    let mut copied_errors = 0u64;
    for (i, e) in l1.iter().enumerate() {
        let l2 = e & OFFSET_MASK;
        if l2 == 0 || !l2.is_multiple_of(cs) || l2 / cs >= nb {
            continue;
        }
        let rc = meta.refcount(l2 / cs).unwrap_or(0);
        if (rc == 1) != (e & OFLAG_COPIED != 0) {
            copied_errors += 1;
            w.msg(format!("ERROR OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={e:x} refcount={rc}"));
        }
        for idx in 0..per {
            let entry = meta.l2_get(l2, idx)?;
            if entry & OFLAG_COMPRESSED != 0 {
                continue;
            }
            if let L2Kind::Normal(h) | L2Kind::Zero(Some(h)) = classify(entry, bits) {
                if !h.is_multiple_of(cs) {
                    continue;
                }
                let rc = meta.refcount(h / cs).unwrap_or(0);
                if (rc == 1) != (entry & OFLAG_COPIED != 0) {
                    copied_errors += 1;
                    w.msg(format!("ERROR OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={rc}"));
                }
            }
        }
    }
    if copied_errors > 0 {
        if repair == Repair::All {
            let n = fix_copied(meta)?;
            w.res.corruptions_fixed += n.min(copied_errors);
        } else {
            w.res.corruptions += copied_errors;
        }
    }
    if repair != Repair::None {
        meta.writeback()?;
    }
    w.res.image_end_offset = (highest + 1) * cs;
    Ok(w.res)
}

impl Qcow2 {
    /// Runs a consistency check (QEMU's `qcow2_check`).
    pub fn check(&self, repair: Repair) -> Result<CheckResult> {
        check(self, repair)
    }
}
