//! A drive as devices see it (QEMU's BlockBackend): a name, the node at the top of its chain, and
//! the indirection that lets the top change underneath a running guest.
//!
//! Devices do every request through [`BlockBackend`]; each request holds the backend's read lock
//! for its duration. [`BlockBackend::swap_root`] and [`BlockBackend::drain`] take the write lock,
//! so they wait for requests in flight and no request ever sees half a pivot (external snapshot:
//! new overlay on top; active commit completion: back to the base). A write marks the node's
//! dirty bitmaps before its request ends, so an active commit that drains the drive and then
//! copies what the bitmap reports has every acknowledged write before it pivots.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard};

use block::{BlockError, BlockNode};

use super::drive::OnError;
use super::stats::AcctStats;
use super::throttle::Throttle;

/// QEMU's BlockDeviceIoStatus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoStatus {
    Ok,
    Failed,
    NoSpace,
}

/// One drive.
pub struct BlockBackend {
    /// The drive name (`drive0`, `virtio0`, `ide0-hd0`); empty for the anonymous backend a
    /// `-device ...,drive=NODE` puts over a `-blockdev` node.
    name: String,
    root: RwLock<Arc<BlockNode>>,
    read_only: bool,
    /// The QOM path of the device using it (`/machine/peripheral/vd0/virtio-backend`).
    attached_to: Mutex<Option<String>>,
    /// Whether writes go through to disk before completion (`cache=writethrough|directsync`).
    writethrough: bool,
    io_status: Mutex<IoStatus>,
    /// Set by `cache=unsafe`: flushes are ignored.
    ignore_flush: AtomicBool,
    /// Called with the new size after `block_resize` (a device tells its guest).
    resize_notify: Mutex<Option<ResizeNotify>>,
    /// `rerror` / `werror`: what a failed guest read / write gets.
    on_error: Mutex<(OnError, OnError)>,
    /// The device's I/O accounting (`query-blockstats`).
    acct: AcctStats,
    /// I/O limits (`block_set_io_throttle`).
    throttle: Throttle,
}

/// A device's capacity-change callback.
pub type ResizeNotify = Box<dyn Fn(u64) + Send + Sync>;

impl std::fmt::Debug for BlockBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockBackend")
            .field("name", &self.name)
            .field("root", &self.root().filename())
            .finish()
    }
}

impl BlockBackend {
    pub fn new(
        name: &str,
        root: Arc<BlockNode>,
        read_only: bool,
        writethrough: bool,
        ignore_flush: bool,
    ) -> Self {
        BlockBackend {
            name: name.to_string(),
            root: RwLock::new(root),
            read_only,
            attached_to: Mutex::new(None),
            writethrough,
            io_status: Mutex::new(IoStatus::Ok),
            ignore_flush: AtomicBool::new(ignore_flush),
            resize_notify: Mutex::new(None),
            on_error: Mutex::new((OnError::Report, OnError::Enospc)),
            acct: AcctStats::default(),
            throttle: Throttle::default(),
        }
    }

    /// Blocks new requests and waits for those in flight; the top can be replaced through the
    /// guard. Requests resume when it is dropped.
    pub fn drain(&self) -> RwLockWriteGuard<'_, Arc<BlockNode>> {
        self.root.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers the device's capacity-change callback (virtio-blk config change).
    pub fn set_resize_notify(&self, f: ResizeNotify) {
        *self.resize_notify.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// Tells the device the drive's size changed.
    pub fn notify_resize(&self, size: u64) {
        if let Some(f) = self.resize_notify.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            f(size);
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The node at the top of the chain right now.
    pub fn root(&self) -> Arc<BlockNode> {
        self.root.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the top node once no request is in flight; returns the old one.
    pub fn swap_root(&self, new: Arc<BlockNode>) -> Arc<BlockNode> {
        let mut root = self.root.write().unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *root, new)
    }

    /// Runs `f` with every request blocked (for a pivot that needs more than one step).
    pub fn quiesced<T>(&self, f: impl FnOnce(&mut Arc<BlockNode>) -> T) -> T {
        let mut root = self.root.write().unwrap_or_else(|p| p.into_inner());
        f(&mut root)
    }

    pub fn read_only(&self) -> bool {
        self.read_only
    }

    pub fn writethrough(&self) -> bool {
        self.writethrough
    }

    pub fn ignores_flush(&self) -> bool {
        self.ignore_flush.load(Ordering::Relaxed)
    }

    pub fn attached_to(&self) -> Option<String> {
        self.attached_to.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Records the device that uses this drive (one at most).
    pub fn attach(&self, qom_path: &str) -> Result<(), String> {
        let mut a = self.attached_to.lock().unwrap_or_else(|p| p.into_inner());
        if a.is_some() {
            return Err(format!("Drive '{}' is already in use by another device", self.name));
        }
        *a = Some(qom_path.to_string());
        Ok(())
    }

    pub fn acct(&self) -> &AcctStats {
        &self.acct
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    /// `(rerror, werror)`; QEMU's defaults are `report` and `enospc`.
    pub fn on_error(&self) -> (OnError, OnError) {
        *self.on_error.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_on_error(&self, rerror: OnError, werror: OnError) {
        *self.on_error.lock().unwrap_or_else(|p| p.into_inner()) = (rerror, werror);
    }

    pub fn io_status(&self) -> IoStatus {
        *self.io_status.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_io_status(&self, s: IoStatus) {
        *self.io_status.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Size in bytes of the current top.
    pub fn size(&self) -> u64 {
        self.root.read().unwrap_or_else(|p| p.into_inner()).size()
    }

    pub fn read(&self, buf: &mut [u8], off: u64) -> Result<(), BlockError> {
        self.root.read().unwrap_or_else(|p| p.into_inner()).read(buf, off)
    }

    pub fn write(&self, buf: &[u8], off: u64) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let root = self.root.read().unwrap_or_else(|p| p.into_inner());
        root.write(buf, off)?;
        if self.writethrough {
            root.flush()?;
        }
        Ok(())
    }

    pub fn write_zeroes(&self, off: u64, len: u64) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.root.read().unwrap_or_else(|p| p.into_inner()).write_zeroes(off, len)
    }

    pub fn discard(&self, off: u64, len: u64) -> Result<(), BlockError> {
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        self.root.read().unwrap_or_else(|p| p.into_inner()).discard(off, len)
    }

    pub fn flush(&self) -> Result<(), BlockError> {
        if self.ignores_flush() {
            return Ok(());
        }
        self.root.read().unwrap_or_else(|p| p.into_inner()).flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use block::OpenOptions;

    fn raw(dir: &std::path::Path, name: &str, fill: u8) -> Arc<BlockNode> {
        let p = dir.join(name);
        std::fs::write(&p, vec![fill; 65536]).unwrap();
        BlockNode::open(
            p.to_str().unwrap(),
            &OpenOptions { format: Some(block::Format::Raw), ..Default::default() },
        )
        .unwrap()
    }

    #[test]
    fn io_goes_to_the_current_root() {
        let dir = tempfile::tempdir().unwrap();
        let b = BlockBackend::new("drive0", raw(dir.path(), "a.img", 0xaa), false, false, false);
        let mut buf = [0u8; 512];
        b.read(&mut buf, 0).unwrap();
        assert_eq!(buf[0], 0xaa);
        let old = b.swap_root(raw(dir.path(), "b.img", 0xbb));
        assert_eq!(old.filename(), dir.path().join("a.img").to_str().unwrap());
        b.read(&mut buf, 512).unwrap();
        assert_eq!(buf[0], 0xbb);
        b.write(&[1u8; 512], 0).unwrap();
        b.flush().unwrap();
        assert!(b.attach("/machine/peripheral/vd0/virtio-backend").is_ok());
        assert!(b.attach("/other").is_err());
    }

    #[test]
    fn read_only_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let b = BlockBackend::new("ro", raw(dir.path(), "a.img", 0), true, false, false);
        assert!(matches!(b.write(&[0u8; 512], 0), Err(BlockError::ReadOnly)));
        assert!(matches!(b.discard(0, 512), Err(BlockError::ReadOnly)));
    }
}
