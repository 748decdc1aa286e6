//! The raw format: guest offset = file offset; holes read as zero.

use crate::error::{BlockError, Result};
use crate::file::ImageFile;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub struct Raw {
    file: ImageFile,
    size: AtomicU64,
}

impl Raw {
    pub fn open(file: ImageFile) -> Result<Raw> {
        let size = file.len()?;
        Ok(Raw { file, size: AtomicU64::new(size) })
    }

    pub fn file(&self) -> &ImageFile {
        &self.file
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn read(&self, buf: &mut [u8], off: u64) -> Result<()> {
        self.file.read_at(buf, off)
    }

    pub fn write(&self, buf: &[u8], off: u64) -> Result<()> {
        self.file.write_at(buf, off)
    }

    /// Punches a hole (reads as zero afterwards).
    pub fn write_zeroes(&self, off: u64, len: u64) -> Result<()> {
        if !self.file.writable() {
            return Err(BlockError::ReadOnly);
        }
        self.file.punch_hole(off, len)
    }

    pub fn flush(&self) -> Result<()> {
        self.file.sync()
    }

    pub fn resize(&self, size: u64) -> Result<()> {
        self.file.set_len(size)?;
        self.size.store(size, Ordering::Release);
        Ok(())
    }

    /// `(is_data, run_end)` for the run starting at `off` (host holes are zero runs).
    pub fn status(&self, off: u64, end: u64) -> (bool, u64) {
        self.file.data_run(off, end)
    }
}
