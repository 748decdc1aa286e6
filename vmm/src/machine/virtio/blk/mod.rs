//! virtio-blk: a disk for the guest, served from a drive's `BlockBackend` on one thread per
//! queue.
//!
//! Offered: VERSION_1, INDIRECT_DESC, EVENT_IDX, SEG_MAX, BLK_SIZE (512), FLUSH, and either RO
//! (read-only drive) or DISCARD + WRITE_ZEROES; MQ with more than one queue. Requests are
//! parsed and served by [`request`]; a flush completes only once the block layer's flush has
//! returned.

pub mod policy;
pub mod request;

use std::sync::Arc;

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_DISCARD, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_MQ, VIRTIO_BLK_F_RO,
    VIRTIO_BLK_F_SEG_MAX, VIRTIO_BLK_F_WRITE_ZEROES,
};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};

use self::request::{
    BlkProps, Disk, DiskError, ErrorPolicy, Executor, MAX_DWZ_SECTORS, MAX_DWZ_SEGMENTS, Outcome,
    ReportErrors, SECTOR,
};
use super::chain::Chain;
use super::worker::{ChainHandler, Handled, QueueWorker, WorkerSetup};
use super::{Activation, VirtioDevice};
use crate::blockdev::BlockBackend;
use crate::blockdev::stats::{AcctOutcome, AcctType};
use crate::machine::kvm::memory::GuestMemory;

pub const VIRTIO_ID_BLOCK: u16 = 2;
/// PCI class: mass storage, SCSI (what QEMU uses for virtio-blk).
const CLASS_STORAGE_SCSI: u32 = 0x010000;
pub const DEFAULT_QUEUE_SIZE: u16 = 256;
const CONFIG_LEN: usize = 60;

impl Disk for BlockBackend {
    fn size(&self) -> u64 {
        BlockBackend::size(self)
    }
    fn read_only(&self) -> bool {
        BlockBackend::read_only(self)
    }
    fn read(&self, buf: &mut [u8], off: u64) -> Result<(), DiskError> {
        BlockBackend::read(self, buf, off).map_err(disk_error)
    }
    fn write(&self, buf: &[u8], off: u64) -> Result<(), DiskError> {
        BlockBackend::write(self, buf, off).map_err(disk_error)
    }
    fn flush(&self) -> Result<(), DiskError> {
        BlockBackend::flush(self).map_err(disk_error)
    }
    fn discard(&self, off: u64, len: u64) -> Result<(), DiskError> {
        BlockBackend::discard(self, off, len).map_err(disk_error)
    }
    fn write_zeroes(&self, off: u64, len: u64) -> Result<(), DiskError> {
        BlockBackend::write_zeroes(self, off, len).map_err(disk_error)
    }
    fn account(&self, kind: AcctType, outcome: AcctOutcome) {
        self.acct().account(kind, outcome);
    }
    fn throttle(&self, is_write: bool, bytes: u64) {
        BlockBackend::throttle(self).admit(is_write, bytes);
    }
    fn drain_begin(&self) {
        BlockBackend::throttle(self).bypass_begin();
    }
    fn drain_end(&self) {
        BlockBackend::throttle(self).bypass_end();
    }
}

fn disk_error(e: block::BlockError) -> DiskError {
    DiskError { errno: e.errno(), message: e.to_string() }
}

/// `-device virtio-blk-pci` properties.
#[derive(Debug, Clone)]
pub struct BlkConfig {
    pub serial: Option<String>,
    pub num_queues: u16,
    pub queue_size: u16,
    /// The drive's `discard=unmap`.
    pub discard_unmap: bool,
}

impl Default for BlkConfig {
    fn default() -> Self {
        BlkConfig { serial: None, num_queues: 1, queue_size: DEFAULT_QUEUE_SIZE, discard_unmap: false }
    }
}

/// Serves the chains of a queue (shared by its I/O threads).
struct BlkHandler {
    disk: Arc<dyn Disk>,
    exec: Executor,
}

impl ChainHandler for BlkHandler {
    fn handle(&self, chain: &Chain, mem: &GuestMemory) -> Result<Handled, String> {
        let req = request::parse(chain, mem).map_err(|e| e.to_string())?;
        match self.exec.execute(&req, self.disk.as_ref(), mem).map_err(|e| e.to_string())? {
            Outcome::Done(done) => Ok(Handled::Used(done.used_len)),
            Outcome::Retry => Ok(Handled::Retry),
        }
    }
}

/// The virtio-blk device.
pub struct VirtioBlk {
    disk: Arc<dyn Disk>,
    config: BlkConfig,
    props: BlkProps,
    policy: Arc<dyn ErrorPolicy>,
    workers: Vec<QueueWorker>,
    name: String,
}

impl VirtioBlk {
    /// `name` prefixes the device's thread names (`blk vd0` gives `blk vd0 q0`, `blk vd0 q0 io1`;
    /// Linux keeps 15 bytes of a thread name).
    pub fn new(disk: Arc<dyn Disk>, config: BlkConfig, name: &str) -> Result<Self, String> {
        if config.num_queues == 0 || usize::from(config.num_queues) > super::pci::MAX_QUEUES {
            return Err(format!("num-queues must be 1 to {}", super::pci::MAX_QUEUES));
        }
        if !config.queue_size.is_power_of_two() || !(4..=1024).contains(&config.queue_size) {
            return Err("queue-size must be a power of 2 between 4 and 1024".into());
        }
        if config.serial.as_ref().is_some_and(|s| s.len() > 20) {
            tracing::warn!("virtio-blk: serial is longer than 20 bytes and will be truncated");
        }
        let props = BlkProps {
            serial: config.serial.clone().unwrap_or_default().into_bytes(),
            discard_unmap: config.discard_unmap,
            dwz_offered: !disk.read_only(),
        };
        let policy = Arc::new(ReportErrors);
        Ok(VirtioBlk { disk, config, props, policy, workers: Vec::new(), name: name.to_string() })
    }

    /// What failed disk operations get (default: reported to the guest).
    pub fn with_error_policy(mut self, policy: Arc<dyn ErrorPolicy>) -> Self {
        self.policy = policy;
        self
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut c = [0u8; CONFIG_LEN];
        c[0..8].copy_from_slice(&(self.disk.size() / SECTOR).to_le_bytes());
        c[12..16].copy_from_slice(&u32::from(self.config.queue_size - 2).to_le_bytes()); // seg_max
        c[20..24].copy_from_slice(&(SECTOR as u32).to_le_bytes()); // blk_size
        c[34..36].copy_from_slice(&self.config.num_queues.to_le_bytes());
        c[36..40].copy_from_slice(&MAX_DWZ_SECTORS.to_le_bytes()); // max_discard_sectors
        c[40..44].copy_from_slice(&MAX_DWZ_SEGMENTS.to_le_bytes()); // max_discard_seg
        c[44..48].copy_from_slice(&1u32.to_le_bytes()); // discard_sector_alignment
        c[48..52].copy_from_slice(&MAX_DWZ_SECTORS.to_le_bytes()); // max_write_zeroes_sectors
        c[52..56].copy_from_slice(&MAX_DWZ_SEGMENTS.to_le_bytes()); // max_write_zeroes_seg
        c[56] = 0; // write_zeroes_may_unmap
        c
    }
}

impl VirtioDevice for VirtioBlk {
    fn device_id(&self) -> u16 {
        VIRTIO_ID_BLOCK
    }

    fn pci_class(&self) -> u32 {
        CLASS_STORAGE_SCSI
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![self.config.queue_size; usize::from(self.config.num_queues)]
    }

    fn features(&self) -> u64 {
        let mut f = (1u64 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_BLK_F_SEG_MAX)
            | (1 << VIRTIO_BLK_F_BLK_SIZE)
            | (1 << VIRTIO_BLK_F_FLUSH);
        if self.disk.read_only() {
            f |= 1 << VIRTIO_BLK_F_RO;
        } else {
            f |= (1 << VIRTIO_BLK_F_DISCARD) | (1 << VIRTIO_BLK_F_WRITE_ZEROES);
        }
        if self.config.num_queues > 1 {
            f |= 1 << VIRTIO_BLK_F_MQ;
        }
        f
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let c = self.config_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = usize::try_from(offset).ok().and_then(|o| c.get(o + i)).copied().unwrap_or(0);
        }
    }

    fn write_config(&mut self, offset: u64, _data: &[u8]) {
        tracing::debug!(offset, "virtio-blk: write to the read-only configuration ignored");
    }

    fn activate(&mut self, a: Activation) -> Result<(), String> {
        self.reset();
        for q in a.queues {
            let handler = BlkHandler {
                disk: Arc::clone(&self.disk),
                exec: Executor::with_policy(self.props.clone(), Arc::clone(&self.policy)),
            };
            let worker = QueueWorker::spawn(WorkerSetup {
                name: format!("{} q{}", self.name, q.index),
                queue: q.queue,
                notify: q.notify,
                vector: q.vector,
                mem: a.mem.clone(),
                interrupt: Arc::clone(&a.interrupt),
                handler: Arc::new(handler),
            })?;
            self.workers.push(worker);
        }
        Ok(())
    }

    fn reset(&mut self) {
        self.disk.drain_begin();
        for mut w in self.workers.drain(..) {
            w.stop();
        }
        self.disk.drain_end();
    }

    /// Every request in flight completes first; those waiting on I/O limits go at once.
    fn pause(&mut self) {
        self.disk.drain_begin();
        for w in &self.workers {
            w.pause();
        }
        self.disk.drain_end();
    }

    fn resume(&mut self) {
        for w in &self.workers {
            w.resume();
        }
    }

    fn shutdown(&mut self) {
        self.reset();
        if !self.disk.read_only()
            && let Err(e) = self.disk.flush()
        {
            tracing::warn!("virtio-blk: flush at shutdown failed: {e}");
        }
    }
}
