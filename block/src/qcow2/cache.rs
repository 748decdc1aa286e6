//! A bounded cache of metadata clusters (L2 tables or refcount blocks), keyed by host offset.
//!
//! Entries are raw cluster bytes; a dirty entry must be written back before it is evicted,
//! which the owner (`Meta`) does as part of an ordered metadata flush.

use std::collections::HashMap;

#[derive(Debug)]
pub struct Entry {
    pub data: Vec<u8>,
    pub dirty: bool,
    last_use: u64,
}

#[derive(Debug)]
pub struct TableCache {
    map: HashMap<u64, Entry>,
    max_entries: usize,
    clock: u64,
}

impl TableCache {
    pub fn new(cluster_size: u64, max_bytes: u64) -> Self {
        TableCache { map: HashMap::new(), max_entries: (max_bytes / cluster_size).max(4) as usize, clock: 0 }
    }

    pub fn get_mut(&mut self, off: u64) -> Option<&mut Entry> {
        self.clock += 1;
        let c = self.clock;
        let e = self.map.get_mut(&off)?;
        e.last_use = c;
        Some(e)
    }

    pub fn contains(&self, off: u64) -> bool {
        self.map.contains_key(&off)
    }

    /// True when inserting another entry needs a clean entry to evict and none exists.
    pub fn full_of_dirty(&self) -> bool {
        self.map.len() >= self.max_entries && self.map.values().all(|e| e.dirty)
    }

    /// Inserts; evicts the least recently used clean entry if full. The caller makes sure
    /// (via `full_of_dirty` and a flush) that a clean entry exists when the cache is full.
    pub fn insert(&mut self, off: u64, data: Vec<u8>, dirty: bool) {
        if self.map.len() >= self.max_entries && !self.map.contains_key(&off) {
            let victim =
                self.map.iter().filter(|(_, e)| !e.dirty).min_by_key(|(_, e)| e.last_use).map(|(k, _)| *k);
            if let Some(v) = victim {
                self.map.remove(&v);
            }
        }
        self.clock += 1;
        self.map.insert(off, Entry { data, dirty, last_use: self.clock });
    }

    pub fn remove(&mut self, off: u64) {
        self.map.remove(&off);
    }

    /// Offsets of dirty entries, sorted (sequential write-back).
    pub fn dirty_offsets(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.map.iter().filter(|(_, e)| e.dirty).map(|(k, _)| *k).collect();
        v.sort_unstable();
        v
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}
