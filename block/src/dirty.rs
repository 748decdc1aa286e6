//! Dirty bitmaps: which parts of a node were written since tracking started.
//!
//! Active commit (and mirror) jobs copy a node while the guest keeps writing to it: they
//! attach a bitmap, copy everything once, then keep copying what the bitmap reports until
//! it is clean. Writes mark the bitmap after they complete, so a range whose bit a copier
//! cleared and then read is marked again if a write lands after the read.

use std::sync::Mutex;

/// One bit per `granularity` bytes of a node.
#[derive(Debug)]
pub struct DirtyBitmap {
    granularity: u64,
    size: u64,
    words: Mutex<Vec<u64>>,
}

impl DirtyBitmap {
    /// A clean bitmap for a node of `size` bytes (`granularity` is rounded up to a power
    /// of two, at least 512).
    pub fn new(size: u64, granularity: u64) -> Self {
        let granularity = granularity.max(512).next_power_of_two();
        let bits = size.div_ceil(granularity);
        DirtyBitmap { granularity, size, words: Mutex::new(vec![0; bits.div_ceil(64) as usize]) }
    }

    pub fn granularity(&self) -> u64 {
        self.granularity
    }

    fn words(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        match self.words.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn bit_range(&self, off: u64, len: u64) -> (u64, u64) {
        let end = off.saturating_add(len).min(self.size);
        (off / self.granularity, end.div_ceil(self.granularity))
    }

    /// Marks `[off, off+len)` dirty.
    pub fn mark(&self, off: u64, len: u64) {
        let (a, b) = self.bit_range(off, len);
        let mut w = self.words();
        for i in a..b {
            if let Some(x) = w.get_mut((i / 64) as usize) {
                *x |= 1 << (i % 64);
            }
        }
    }

    /// Marks everything dirty.
    pub fn mark_all(&self) {
        self.mark(0, self.size);
    }

    /// Clears `[off, off+len)` (rounded out to whole granules).
    pub fn clear(&self, off: u64, len: u64) {
        let (a, b) = self.bit_range(off, len);
        let mut w = self.words();
        for i in a..b {
            if let Some(x) = w.get_mut((i / 64) as usize) {
                *x &= !(1 << (i % 64));
            }
        }
    }

    /// Bytes marked dirty (in whole granules).
    pub fn dirty_bytes(&self) -> u64 {
        let n: u64 = self.words().iter().map(|w| u64::from(w.count_ones())).sum();
        (n * self.granularity).min(self.size)
    }

    /// Finds the first dirty run at or after `from`, clears it and returns it as
    /// `(offset, len)`, at most `max_len` bytes (at least one granule).
    pub fn take_next(&self, from: u64, max_len: u64) -> Option<(u64, u64)> {
        let total = self.size.div_ceil(self.granularity);
        let mut w = self.words();
        let mut i = from / self.granularity;
        while i < total {
            let word = w[(i / 64) as usize] >> (i % 64);
            if word == 0 {
                i = (i / 64 + 1) * 64;
                continue;
            }
            i += u64::from(word.trailing_zeros());
            break;
        }
        if i >= total {
            return None;
        }
        let max_bits = (max_len / self.granularity).max(1);
        let start = i;
        while i < total && i - start < max_bits && w[(i / 64) as usize] & (1 << (i % 64)) != 0 {
            w[(i / 64) as usize] &= !(1 << (i % 64));
            i += 1;
        }
        let off = start * self.granularity;
        let end = (i * self.granularity).min(self.size);
        Some((off, end - off))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_take_clear() {
        let b = DirtyBitmap::new(10 << 20, 65536);
        assert_eq!(b.take_next(0, 1 << 30), None);
        b.mark(100, 1);
        b.mark(5 << 20, 200 << 10);
        assert_eq!(b.dirty_bytes(), 65536 * 5);
        assert_eq!(b.take_next(0, 1 << 30), Some((0, 65536)));
        assert_eq!(b.take_next(0, 131072), Some((5 << 20, 131072)));
        assert_eq!(b.take_next(0, 1 << 30), Some(((5 << 20) + 131072, 131072)));
        assert_eq!(b.take_next(0, 1 << 30), None);
        b.mark_all();
        b.clear(0, 10 << 20);
        assert_eq!(b.dirty_bytes(), 0);
    }
}
