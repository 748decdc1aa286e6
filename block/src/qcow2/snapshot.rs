//! Internal snapshots: the snapshot table, and create / apply / delete.
//!
//! A snapshot is a copy of the active L1 table plus one more reference on every L2 table
//! and data cluster it reaches; writes after it copy on write because the active entries
//! lose their COPIED flag. Operations run with no request in flight (the node's exclusive
//! gate). Order: refcount increments are written before anything refers to them, and
//! decrements happen only after the snapshot table or L1 no longer refers to the clusters,
//! so an interrupted operation leaves leaked clusters rather than dangling references.
//! (As in QEMU, a crash between the refcount update and the COPIED-flag update of a create
//! can leave flag mismatches that `check -r all` repairs.)

use super::Qcow2;
use super::header::{MAX_L1_BYTES, table_offset_valid};
use super::meta::{
    L2Kind, Meta, OFFSET_MASK, OFLAG_COPIED, classify, encode_table, entry_host_range, read_table_prefix,
};
use crate::error::{BlockError, Result};
use crate::file::ImageFile;
use std::time::{SystemTime, UNIX_EPOCH};

/// Most extra data QEMU accepts per snapshot table entry.
const MAX_EXTRA_DATA: u32 = 1024;
/// Largest snapshot table QEMU accepts.
const MAX_TABLE_BYTES: u64 = 64 << 20;

/// One snapshot table entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub l1_table_offset: u64,
    pub l1_size: u32,
    pub id: String,
    pub name: String,
    pub date_sec: u32,
    pub date_nsec: u32,
    pub vm_clock_nsec: u64,
    pub vm_state_size: u64,
    /// Guest size when the snapshot was taken (v3 extra data).
    pub disk_size: Option<u64>,
    pub icount: Option<u64>,
}

fn u16be(b: &[u8], o: usize) -> u16 {
    u16::from_be_bytes([b[o], b[o + 1]])
}
fn u32be(b: &[u8], o: usize) -> u32 {
    u32::from_be_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64be(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_be_bytes(a)
}

/// Sequential reader over the snapshot table: one 64 KiB `pread` serves many entries, and
/// bytes past the end of the file read as zero without a system call.
struct TableReader<'a> {
    file: &'a ImageFile,
    file_len: u64,
    buf: Vec<u8>,
    buf_off: u64,
}

impl TableReader<'_> {
    fn read(&mut self, out: &mut [u8], pos: u64) -> Result<()> {
        let end = pos + out.len() as u64;
        if pos >= self.file_len {
            out.fill(0);
            return Ok(());
        }
        if pos < self.buf_off || end > self.buf_off + self.buf.len() as u64 {
            let len = (out.len() as u64).max(64 << 10).min(self.file_len - pos.min(self.file_len));
            self.buf.resize(len.max(out.len() as u64) as usize, 0);
            self.file.read_at(&mut self.buf, pos)?;
            self.buf_off = pos;
        }
        let s = (pos - self.buf_off) as usize;
        out.copy_from_slice(&self.buf[s..s + out.len()]);
        Ok(())
    }
}

/// Reads the snapshot table (bounded as QEMU bounds it).
pub fn read_snapshots(file: &ImageFile, offset: u64, count: u32) -> Result<Vec<Snapshot>> {
    let mut out = Vec::with_capacity(count.min(1024) as usize);
    let mut r = TableReader { file, file_len: file.len()?, buf: Vec::new(), buf_off: 0 };
    let mut pos = offset;
    for i in 0..count {
        let mut fixed = [0u8; 40];
        r.read(&mut fixed, pos)?;
        let extra_len = u32be(&fixed, 36);
        if extra_len > MAX_EXTRA_DATA {
            return Err(BlockError::Invalid(format!("Too much extra metadata in snapshot table entry {i}")));
        }
        let mut extra = vec![0u8; extra_len as usize];
        r.read(&mut extra, pos + 40)?;
        let id_len = u16be(&fixed, 12) as usize;
        let name_len = u16be(&fixed, 14) as usize;
        let mut strs = vec![0u8; id_len + name_len];
        r.read(&mut strs, pos + 40 + u64::from(extra_len))?;
        let mut vm_state_size = u64::from(u32be(&fixed, 32));
        let mut disk_size = None;
        let mut icount = None;
        if extra.len() >= 8 {
            vm_state_size = u64be(&extra, 0);
        }
        if extra.len() >= 16 {
            disk_size = Some(u64be(&extra, 8));
        }
        if extra.len() >= 24 {
            icount = Some(u64be(&extra, 16));
        }
        out.push(Snapshot {
            l1_table_offset: u64be(&fixed, 0),
            l1_size: u32be(&fixed, 8),
            id: String::from_utf8_lossy(&strs[..id_len]).into_owned(),
            name: String::from_utf8_lossy(&strs[id_len..]).into_owned(),
            date_sec: u32be(&fixed, 16),
            date_nsec: u32be(&fixed, 20),
            vm_clock_nsec: u64be(&fixed, 24),
            vm_state_size,
            disk_size,
            icount,
        });
        pos += (40 + u64::from(extra_len) + (id_len + name_len) as u64).next_multiple_of(8);
        if pos - offset > MAX_TABLE_BYTES {
            return Err(BlockError::Invalid("Snapshot table too large".into()));
        }
    }
    Ok(out)
}

/// Size in bytes of the serialised table.
pub fn table_size(list: &[Snapshot], version: u32) -> u64 {
    list.iter()
        .map(|s| {
            let extra = if version >= 3 { 24 } else { 0 };
            (40 + extra + s.id.len() + s.name.len()).next_multiple_of(8) as u64
        })
        .sum()
}

fn serialize(list: &[Snapshot], version: u32) -> Vec<u8> {
    let mut b = Vec::new();
    for s in list {
        let extra: Vec<u8> = if version >= 3 {
            let mut e = Vec::with_capacity(24);
            e.extend_from_slice(&s.vm_state_size.to_be_bytes());
            e.extend_from_slice(&s.disk_size.unwrap_or(0).to_be_bytes());
            e.extend_from_slice(&s.icount.unwrap_or(u64::MAX).to_be_bytes());
            e
        } else {
            Vec::new()
        };
        b.extend_from_slice(&s.l1_table_offset.to_be_bytes());
        b.extend_from_slice(&s.l1_size.to_be_bytes());
        b.extend_from_slice(&(s.id.len() as u16).to_be_bytes());
        b.extend_from_slice(&(s.name.len() as u16).to_be_bytes());
        b.extend_from_slice(&s.date_sec.to_be_bytes());
        b.extend_from_slice(&s.date_nsec.to_be_bytes());
        b.extend_from_slice(&s.vm_clock_nsec.to_be_bytes());
        b.extend_from_slice(&(s.vm_state_size.min(u64::from(u32::MAX)) as u32).to_be_bytes());
        b.extend_from_slice(&(extra.len() as u32).to_be_bytes());
        b.extend_from_slice(&extra);
        b.extend_from_slice(s.id.as_bytes());
        b.extend_from_slice(s.name.as_bytes());
        b.resize(b.len().next_multiple_of(8), 0);
    }
    b
}

/// Adds one reference (`delta` = 1) or schedules the release of one (`delta` = -1) to
/// every L2 table and data cluster reachable from `l1`.
pub(crate) fn update_tree(meta: &mut Meta, l1: &[u64], delta: i64) -> Result<()> {
    let cs = meta.cluster_size();
    let bits = meta.h.cluster_bits;
    let per = meta.h.l2_entries();
    for (i, e) in l1.iter().enumerate() {
        let l2 = e & OFFSET_MASK;
        if l2 == 0 {
            continue;
        }
        if !l2.is_multiple_of(cs) {
            return Err(BlockError::Invalid(format!("L2 table offset {l2:#x} unaligned (L1 index: {i:#x})")));
        }
        for idx in 0..per {
            let entry = meta.l2_get(l2, idx)?;
            if let Some((h, len)) = entry_host_range(classify(entry, bits), cs) {
                if delta > 0 {
                    meta.add_refcount(h, len, delta)?;
                } else {
                    meta.free_deferred(h, len);
                }
            }
        }
        if delta > 0 {
            meta.add_refcount(l2, cs, delta)?;
        } else {
            meta.free_deferred(l2, cs);
        }
    }
    Ok(())
}

/// Checks that one more reference to every cluster reachable from `l1` fits the refcount
/// width, before anything is changed (1-bit refcounts cannot hold snapshots at all).
pub(crate) fn check_tree_increment(meta: &mut Meta, l1: &[u64]) -> Result<()> {
    let cs = meta.cluster_size();
    let bits = meta.h.cluster_bits;
    let per = meta.h.l2_entries();
    let max = meta.max_refcount();
    let mut adds: std::collections::HashMap<u64, u64> = std::collections::HashMap::new();
    for e in l1 {
        let l2 = e & OFFSET_MASK;
        if l2 == 0 || !l2.is_multiple_of(cs) {
            continue;
        }
        *adds.entry(l2 / cs).or_default() += 1;
        for idx in 0..per {
            let entry = meta.l2_get(l2, idx)?;
            if let Some((h, len)) = entry_host_range(classify(entry, bits), cs) {
                for c in h / cs..=(h + len.max(1) - 1) / cs {
                    *adds.entry(c).or_default() += 1;
                }
            }
        }
    }
    for (c, n) in adds {
        let cur = meta.refcount(c)?;
        if cur.checked_add(n).is_none_or(|v| v > max) {
            return Err(BlockError::Argument(format!(
                "Refcount overflow: cluster {c} cannot take {n} more references with {}-bit refcounts",
                meta.h.refcount_bits()
            )));
        }
    }
    Ok(())
}

/// Sets COPIED exactly where the refcount is 1 in the active tree.
pub(crate) fn fix_copied(meta: &mut Meta) -> Result<u64> {
    let cs = meta.cluster_size();
    let bits = meta.h.cluster_bits;
    let per = meta.h.l2_entries();
    let mut fixed = 0;
    for i in 0..meta.l1.len() {
        let e = meta.l1[i];
        let l2 = e & OFFSET_MASK;
        if l2 == 0 || !l2.is_multiple_of(cs) {
            continue;
        }
        let rc = meta.refcount(l2 / cs)?;
        let want = if rc == 1 { OFLAG_COPIED } else { 0 };
        if e & OFLAG_COPIED != want {
            meta.l1[i] = (e & !OFLAG_COPIED) | want;
            meta.l1_dirty = true;
            fixed += 1;
        }
        for idx in 0..per {
            let entry = meta.l2_get(l2, idx)?;
            let want = match classify(entry, bits) {
                L2Kind::Normal(h) | L2Kind::Zero(Some(h))
                    if h.is_multiple_of(cs) && meta.refcount(h / cs)? == 1 =>
                {
                    OFLAG_COPIED
                }
                _ => 0,
            };
            let is_compressed = entry & super::meta::OFLAG_COMPRESSED != 0;
            if !is_compressed && entry & OFLAG_COPIED != want {
                meta.l2_set(l2, idx, (entry & !OFLAG_COPIED) | want)?;
                fixed += 1;
            }
        }
    }
    Ok(fixed)
}

fn write_table(meta: &mut Meta, list: &[Snapshot]) -> Result<()> {
    let cs = meta.cluster_size();
    let raw = serialize(list, meta.h.version);
    let off = if raw.is_empty() { 0 } else { meta.alloc_clusters((raw.len() as u64).div_ceil(cs))? };
    meta.writeback()?;
    if !raw.is_empty() {
        meta.file.write_at(&raw, off)?;
        meta.file.sync()?;
    }
    let old_off = meta.h.snapshots_offset;
    let old_size = table_size(&read_snapshots(&meta.file, old_off, meta.h.nb_snapshots)?, meta.h.version)
        .max(u64::from(meta.h.nb_snapshots.min(1)) * 8);
    let mut f = [0u8; 12];
    f[..4].copy_from_slice(&(list.len() as u32).to_be_bytes());
    f[4..].copy_from_slice(&off.to_be_bytes());
    meta.file.write_at(&f, 60)?;
    meta.file.sync()?;
    if meta.h.nb_snapshots > 0 && old_off != 0 {
        meta.free_deferred(old_off, old_size);
    }
    meta.h.nb_snapshots = list.len() as u32;
    meta.h.snapshots_offset = off;
    Ok(())
}

impl Qcow2 {
    /// Lists the internal snapshots.
    pub fn snapshots(&self) -> Result<Vec<Snapshot>> {
        let h = self.header();
        read_snapshots(self.file(), h.snapshots_offset, h.nb_snapshots)
    }

    /// Finds a snapshot by ID, then by name (QEMU's `find_snapshot_by_id_or_name`).
    pub fn find_snapshot(&self, id_or_name: &str) -> Result<Option<Snapshot>> {
        let list = self.snapshots()?;
        let found =
            list.iter().find(|s| s.id == id_or_name).or_else(|| list.iter().find(|s| s.name == id_or_name));
        Ok(found.cloned())
    }

    /// Creates an internal snapshot of the current disk state, as `qemu-img snapshot -c` does
    /// (its icount is 0).
    pub fn snapshot_create(&self, name: &str, vm_clock_nsec: u64) -> Result<Snapshot> {
        self.snapshot_create_inner(name, vm_clock_nsec, 0, Some(0))
    }

    /// Creates an internal snapshot from a running VMM (`blockdev-snapshot-internal-sync`):
    /// no instruction count is recorded (QEMU's -1 without record/replay).
    pub fn snapshot_create_live(&self, name: &str, vm_clock_nsec: u64) -> Result<Snapshot> {
        self.snapshot_create_inner(name, vm_clock_nsec, 0, None)
    }

    /// Writes VM state (savevm's RAM and device state) at `pos` of the active image's VM
    /// state area, past the guest disk, where QEMU keeps it. Call before
    /// [`Qcow2::snapshot_create_vmstate`], which captures it into the snapshot.
    pub fn write_vmstate(&self, buf: &[u8], pos: u64) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let end = pos
            .checked_add(buf.len() as u64)
            .ok_or_else(|| BlockError::Argument("VM state too large".into()))?;
        {
            let _g = self.exclusive()?;
            let mut meta = self.meta()?;
            let need = meta.h.l1_entries_for(meta.vmstate_offset() + end);
            if need > super::header::MAX_L1_BYTES / 8 {
                return Err(BlockError::Argument("VM state too large".into()));
            }
            if need > u64::from(meta.h.l1_size) {
                let mut l1 = meta.l1.clone();
                l1.resize(need as usize, 0);
                meta.replace_l1(l1)?;
            }
        }
        let base = self.meta()?.vmstate_offset();
        self.write(buf, base + pos, None)
    }

    /// Reads VM state from the active image's VM state area (after
    /// [`Qcow2::snapshot_apply`] it holds the applied snapshot's state).
    pub fn read_vmstate(&self, buf: &mut [u8], pos: u64) -> Result<()> {
        let _g = self.shared()?;
        let base = self.meta()?.vmstate_offset();
        let start = base + pos;
        let extents = self.meta()?.map_to(start, start + buf.len() as u64)?;
        let cs = self.cluster_size();
        let mut done = 0usize;
        for (len, ext) in extents {
            let part = &mut buf[done..done + len as usize];
            match ext {
                super::meta::Extent::Data(h) => self.file().read_at(part, h)?,
                super::meta::Extent::Compressed(e) => {
                    self.read_compressed(e, part, (start + done as u64) % cs)?
                }
                _ => part.fill(0),
            }
            done += len as usize;
        }
        buf[done..].fill(0);
        Ok(())
    }

    /// Creates an internal snapshot whose VM state is the first `vm_state_size` bytes
    /// written with [`Qcow2::write_vmstate`]; the active image then drops its copy of the
    /// state (the snapshot keeps it), as QEMU does.
    pub fn snapshot_create_vmstate(
        &self,
        name: &str,
        vm_clock_nsec: u64,
        vm_state_size: u64,
    ) -> Result<Snapshot> {
        let sn = self.snapshot_create_inner(name, vm_clock_nsec, vm_state_size, None)?;
        if vm_state_size > 0 {
            let (base, cs) = {
                let m = self.meta()?;
                (m.vmstate_offset(), m.cluster_size())
            };
            self.discard_impl_unclamped(base, vm_state_size.next_multiple_of(cs))?;
            self.flush()?;
        }
        Ok(sn)
    }

    fn snapshot_create_inner(
        &self,
        name: &str,
        vm_clock_nsec: u64,
        vm_state_size: u64,
        icount: Option<u64>,
    ) -> Result<Snapshot> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        if name.len() > u16::MAX as usize {
            return Err(BlockError::Argument("Snapshot name too long".into()));
        }
        let _g = self.exclusive()?;
        let mut meta = self.meta()?;
        meta.writeback()?;
        let mut list = read_snapshots(&meta.file, meta.h.snapshots_offset, meta.h.nb_snapshots)?;
        if list.len() as u32 >= super::header::MAX_SNAPSHOTS {
            return Err(BlockError::Argument("Too many snapshots".into()));
        }
        let cs = meta.cluster_size();
        let mut l1: Vec<u64> = meta.l1.iter().map(|e| e & !OFLAG_COPIED).collect();
        l1.resize(meta.h.l1_size as usize, 0);
        check_tree_increment(&mut meta, &l1)?;
        let l1_bytes = (l1.len() as u64 * 8).max(8);
        let l1_off = meta.alloc_clusters(l1_bytes.div_ceil(cs))?;
        meta.file.write_at(&encode_table(&l1, 0), l1_off)?;
        update_tree(&mut meta, &l1, 1)?;
        // Refcounts first, then the cleared COPIED flags (writeback orders them).
        meta.writeback()?;
        fix_copied(&mut meta)?;
        meta.writeback()?;
        let next_id = list.iter().filter_map(|s| s.id.parse::<u64>().ok()).max().unwrap_or(0) + 1;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let sn = Snapshot {
            l1_table_offset: l1_off,
            l1_size: l1.len() as u32,
            id: next_id.to_string(),
            name: name.to_string(),
            date_sec: now.as_secs() as u32,
            date_nsec: now.subsec_micros() * 1000,
            vm_clock_nsec,
            vm_state_size,
            disk_size: Some(meta.h.size),
            icount,
        };
        list.push(sn.clone());
        write_table(&mut meta, &list)?;
        meta.writeback()?;
        meta.apply_pending_frees()?;
        meta.writeback()?;
        Ok(sn)
    }

    fn snapshot_l1(meta: &Meta, sn: &Snapshot) -> Result<Vec<u64>> {
        if u64::from(sn.l1_size) > MAX_L1_BYTES / 8 {
            return Err(BlockError::Invalid("Snapshot L1 table too large".into()));
        }
        if !table_offset_valid(sn.l1_table_offset, sn.l1_size.into(), 8, meta.cluster_size()) {
            return Err(BlockError::Invalid("Snapshot L1 table offset invalid".into()));
        }
        Ok(read_table_prefix(&meta.file, sn.l1_table_offset, sn.l1_size.into())?
            .into_iter()
            .map(|e| e & !OFLAG_COPIED)
            .collect())
    }

    /// Reverts the disk to a snapshot (by ID or name).
    pub fn snapshot_apply(&self, id_or_name: &str) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let Some(sn) = self.find_snapshot(id_or_name)? else {
            return Err(BlockError::io(
                "Failed to load snapshot",
                std::io::Error::from_raw_os_error(libc::ENOENT),
            ));
        };
        let _g = self.exclusive()?;
        let mut meta = self.meta()?;
        meta.writeback()?;
        let sn_l1 = Self::snapshot_l1(&meta, &sn)?;
        let new_size = sn.disk_size.unwrap_or(meta.h.size);
        let need = meta.h.l1_entries_for(new_size).max(sn_l1.len() as u64);
        check_tree_increment(&mut meta, &sn_l1)?;
        update_tree(&mut meta, &sn_l1, 1)?;
        meta.writeback()?;
        let old_l1 = meta.l1.clone();
        let cur_size = meta.h.l1_size as usize;
        let mut new_l1 = sn_l1;
        new_l1.resize((need as usize).max(cur_size), 0);
        if new_l1.len() > cur_size {
            meta.replace_l1(new_l1)?;
        } else {
            meta.l1 = new_l1;
            meta.l1_dirty = true;
        }
        if new_size != meta.h.size {
            meta.h.size = new_size;
            meta.file.write_at(&new_size.to_be_bytes(), 24)?;
        }
        meta.writeback()?;
        update_tree(&mut meta, &old_l1, -1)?;
        meta.apply_pending_frees()?;
        meta.writeback()?;
        fix_copied(&mut meta)?;
        meta.writeback()?;
        drop(meta);
        if let Ok(mut last) = self.last_compressed.lock() {
            *last = None;
        }
        Ok(())
    }

    /// Deletes a snapshot (by ID or name). Errors with `snapshot not found`.
    pub fn snapshot_delete(&self, id_or_name: &str) -> Result<()> {
        if !self.writable() {
            return Err(BlockError::ReadOnly);
        }
        let _g = self.exclusive()?;
        let mut meta = self.meta()?;
        meta.writeback()?;
        let mut list = read_snapshots(&meta.file, meta.h.snapshots_offset, meta.h.nb_snapshots)?;
        let pos = list
            .iter()
            .position(|s| s.id == id_or_name)
            .or_else(|| list.iter().position(|s| s.name == id_or_name));
        let Some(pos) = pos else {
            return Err(BlockError::Argument("snapshot not found".into()));
        };
        let sn = list.remove(pos);
        let sn_l1 = Self::snapshot_l1(&meta, &sn)?;
        write_table(&mut meta, &list)?;
        update_tree(&mut meta, &sn_l1, -1)?;
        meta.free_deferred(sn.l1_table_offset, (u64::from(sn.l1_size) * 8).max(1));
        meta.writeback()?;
        meta.apply_pending_frees()?;
        fix_copied(&mut meta)?;
        meta.writeback()
    }
}
