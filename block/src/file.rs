//! A host file with positioned I/O, shared by every thread of a node.
//!
//! `pread`/`pwrite` need no seek position, so one `File` serves concurrent requests
//! without a lock. Reads past the end of the file return zeroes, as QEMU's file driver does.

use crate::error::{BlockError, IoContext, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// An open image file.
#[derive(Debug)]
pub struct ImageFile {
    file: File,
    path: PathBuf,
    writable: bool,
    /// QEMU's `cache.no-flush` / `cache=unsafe`: flushes succeed without syncing.
    no_flush: AtomicBool,
    stats: Counters,
}

/// What `query-blockstats` reports for a file node.
#[derive(Debug, Default)]
struct Counters {
    wr_highest_offset: AtomicU64,
    discard_nb_ok: AtomicU64,
    discard_nb_failed: AtomicU64,
    discard_bytes_ok: AtomicU64,
}

/// A file node's statistics (QEMU's `wr_highest_offset` and file-posix discard counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FileStats {
    /// The end of the highest range written or discarded.
    pub wr_highest_offset: u64,
    pub discard_nb_ok: u64,
    pub discard_nb_failed: u64,
    pub discard_bytes_ok: u64,
}

impl ImageFile {
    /// Opens `path`; errors read `Could not open 'path': <strerror>`.
    pub fn open(path: &Path, writable: bool) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .ctx(|| format!("Could not open '{}'", path.display()))?;
        if file.metadata().ctx(|| format!("Could not open '{}'", path.display()))?.is_dir() {
            return Err(BlockError::io(
                format!("Could not open '{}'", path.display()),
                std::io::Error::from_raw_os_error(libc::EISDIR),
            ));
        }
        Ok(ImageFile {
            file,
            path: path.to_path_buf(),
            writable,
            no_flush: AtomicBool::new(false),
            stats: Counters::default(),
        })
    }

    /// Creates (truncating) `path` for writing.
    pub fn create(path: &Path) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .ctx(|| format!("Could not create '{}'", path.display()))?;
        Ok(ImageFile {
            file,
            path: path.to_path_buf(),
            writable: true,
            no_flush: AtomicBool::new(false),
            stats: Counters::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn writable(&self) -> bool {
        self.writable
    }

    /// Reads exactly `buf.len()` bytes at `offset`; the part past EOF reads as zeroes.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => {
                    buf[done..].fill(0);
                    return Ok(());
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(BlockError::io(format!("Could not read '{}'", self.path.display()), e));
                }
            }
        }
        Ok(())
    }

    /// Writes all of `buf` at `offset`.
    pub fn write_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        if !self.writable {
            return Err(BlockError::ReadOnly);
        }
        self.file
            .write_all_at(buf, offset)
            .ctx(|| format!("Could not write to '{}'", self.path.display()))?;
        self.stats.wr_highest_offset.fetch_max(offset.saturating_add(buf.len() as u64), Ordering::Relaxed);
        Ok(())
    }

    pub fn stats(&self) -> FileStats {
        let s = &self.stats;
        FileStats {
            wr_highest_offset: s.wr_highest_offset.load(Ordering::Relaxed),
            discard_nb_ok: s.discard_nb_ok.load(Ordering::Relaxed),
            discard_nb_failed: s.discard_nb_failed.load(Ordering::Relaxed),
            discard_bytes_ok: s.discard_bytes_ok.load(Ordering::Relaxed),
        }
    }

    /// Makes flushes no-ops (`cache=unsafe`); metadata ordering is kept, durability is not.
    pub fn set_no_flush(&self, on: bool) {
        self.no_flush.store(on, Ordering::Relaxed);
    }

    /// Makes written data durable.
    pub fn sync(&self) -> Result<()> {
        if !self.writable || self.no_flush.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.file.sync_data().ctx(|| format!("Could not flush '{}'", self.path.display()))
    }

    /// Starts writing the file's dirty pages to disk without waiting for them
    /// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`), so that a later [`sync`](Self::sync) has
    /// less left to do. Long copies (block jobs) call it as they go. Best effort: errors are
    /// reported by the `sync` that follows.
    pub fn start_writeback(&self) {
        if !self.writable || self.no_flush.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: sync_file_range only reads its integer arguments; the fd is valid for the
        // lifetime of `self.file`.
        unsafe {
            libc::sync_file_range(self.file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }

    /// Current file length.
    pub fn len(&self) -> Result<u64> {
        Ok(self.file.metadata().ctx(|| format!("Could not stat '{}'", self.path.display()))?.len())
    }

    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Bytes the file occupies on the host (qemu-img's "disk size" / `actual-size`).
    pub fn allocated_bytes(&self) -> Result<u64> {
        Ok(self.file.metadata().ctx(|| format!("Could not stat '{}'", self.path.display()))?.blocks() * 512)
    }

    /// Sets the file length.
    pub fn set_len(&self, len: u64) -> Result<()> {
        if !self.writable {
            return Err(BlockError::ReadOnly);
        }
        self.file.set_len(len).ctx(|| format!("Could not resize '{}'", self.path.display()))
    }

    /// Deallocates `[offset, offset+len)` on the host, leaving a hole that reads as zeroes.
    /// Falls back to writing zeroes where the file system cannot punch holes.
    pub fn punch_hole(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: fallocate only reads its integer arguments; the fd is valid for the
        // lifetime of `self.file`.
        let r = unsafe {
            libc::fallocate(
                self.file.as_raw_fd(),
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                offset as libc::off_t,
                len as libc::off_t,
            )
        };
        let result = if r == 0 {
            Ok(())
        } else {
            let zeroes = vec![0u8; len.min(1 << 20) as usize];
            let mut done = 0;
            let mut result = Ok(());
            while done < len && result.is_ok() {
                let n = (len - done).min(zeroes.len() as u64);
                result = self.write_at(&zeroes[..n as usize], offset + done);
                done += n;
            }
            result
        };
        let s = &self.stats;
        s.wr_highest_offset.fetch_max(offset.saturating_add(len), Ordering::Relaxed);
        if result.is_ok() {
            s.discard_nb_ok.fetch_add(1, Ordering::Relaxed);
            s.discard_bytes_ok.fetch_add(len, Ordering::Relaxed);
        } else {
            s.discard_nb_failed.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Returns `(is_data, run_end)`: whether `offset` lies in data (true) or in a hole, and
    /// where that run ends (bounded by `limit`). Uses SEEK_DATA/SEEK_HOLE; a file system
    /// without them reports everything as data.
    pub fn data_run(&self, offset: u64, limit: u64) -> (bool, u64) {
        let fd = self.file.as_raw_fd();
        // SAFETY: lseek on a valid fd with integer arguments; it does not touch memory.
        let data = unsafe { libc::lseek(fd, offset as libc::off_t, libc::SEEK_DATA) };
        if data < 0 {
            let errno = std::io::Error::last_os_error().raw_os_error();
            if errno == Some(libc::ENXIO) {
                return (false, limit);
            }
            return (true, limit);
        }
        let data = data as u64;
        if data > offset {
            return (false, data.min(limit));
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, offset as libc::off_t, libc::SEEK_HOLE) };
        if hole < 0 {
            return (true, limit);
        }
        (true, (hole as u64).min(limit).max(offset + 1))
    }
}

/// A read-only memory mapping of part of an image file (see [`ImageFile::map`]).
pub struct Mapping {
    ptr: *mut libc::c_void,
    map_len: usize,
    skip: usize,
    len: usize,
}

// SAFETY: the mapping is read-only and owned by this value; sharing references to its
// bytes between threads is as safe as sharing a `&[u8]`.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl std::ops::Deref for Mapping {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` maps `map_len` readable bytes for the lifetime of `self`, and
        // `skip + len <= map_len` by construction.
        unsafe { std::slice::from_raw_parts((self.ptr as *const u8).add(self.skip), self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`map_len` come from a successful mmap that is unmapped only here.
        unsafe {
            libc::munmap(self.ptr, self.map_len);
        }
    }
}

impl ImageFile {
    /// Maps `[offset, offset+len)` read-only (prefaulted), for copies without a bounce
    /// buffer. Returns `None` when the range is not entirely inside the file (pages past
    /// EOF would fault) or the mapping fails; callers then fall back to `read_at`.
    pub fn map(&self, offset: u64, len: usize) -> Option<Mapping> {
        let flen = self.len().ok()?;
        if len == 0 || offset.checked_add(len as u64)? > flen {
            return None;
        }
        let page = 4096u64;
        let start = offset / page * page;
        let skip = (offset - start) as usize;
        let map_len = skip + len;
        // SAFETY: a fresh read-only shared mapping of a valid fd; the kernel chooses the
        // address, so no existing memory is affected. The result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                self.file.as_raw_fd(),
                start as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return None;
        }
        Some(Mapping { ptr, map_len, skip, len })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_eof_are_zero_and_holes_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = ImageFile::create(&p).unwrap();
        f.write_at(&[7u8; 4096], 0).unwrap();
        f.set_len(1 << 20).unwrap();
        let mut b = [1u8; 8192];
        f.read_at(&mut b, 2 << 20).unwrap();
        assert!(b.iter().all(|&x| x == 0));
        f.read_at(&mut b, 0).unwrap();
        assert_eq!(b[4095], 7);
        let (d, end) = f.data_run(0, 1 << 20);
        assert!(d);
        assert!(end >= 4096);
        let (d, _) = f.data_run(512 << 10, 1 << 20);
        assert!(!d);
    }

    #[test]
    fn missing_file_has_qemu_message() {
        let e = ImageFile::open(Path::new("/nonexistent/x.img"), false).unwrap_err();
        assert_eq!(e.to_string(), "Could not open '/nonexistent/x.img': No such file or directory");
    }
}
