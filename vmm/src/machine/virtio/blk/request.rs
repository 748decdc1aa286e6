//! virtio-blk requests: parsing a checked chain into a request, and serving it against a
//! [`Disk`].
//!
//! Layout (no framing assumed, VIRTIO_F_VERSION_1 implies ANY_LAYOUT): the device-readable
//! bytes start with the 16-byte header (type, reserved, sector); for OUT, DISCARD and
//! WRITE_ZEROES the rest of the readable bytes is the payload. The last device-writable byte
//! is the status; for IN and GET_ID the writable bytes before it receive the data.
//!
//! A chain without a full header or without a status byte cannot be answered: that is a
//! [`Fatal`] error (the device goes to NEEDS_RESET). Everything else is answered with a status:
//! IOERR for a request beyond the end of the disk, a length that is not a whole number of
//! sectors or a write to a read-only disk; UNSUPP for an unknown type or unknown
//! DISCARD/WRITE_ZEROES flags. The range is checked before any byte moves, so the disk is never
//! written outside the request's range.
//!
//! A failed disk operation goes to the device's [`ErrorPolicy`] (QEMU's `rerror`/`werror`):
//! report it (IOERR), ignore it (OK), or stop: the request is then not answered
//! ([`Outcome::Retry`]) and is served again when the VM resumes.
//!
//! Data moves directly between guest memory and the block layer (no bounce buffer), in pieces
//! of at most [`CHUNK`] bytes whatever the request size. The guest memory of a request's data
//! buffers is handed to the block layer as a byte slice for the duration of one piece: the
//! buffers belong to the device until the request completes (virtio's rule), and a guest that
//! changes them meanwhile only changes what gets written or read, as with any DMA.

use virtio_bindings::virtio_blk::{
    VIRTIO_BLK_ID_BYTES, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_DISCARD,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_GET_ID, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, VIRTIO_BLK_T_WRITE_ZEROES,
    VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
};
use vm_memory::bitmap::Bitmap;
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

use std::sync::Arc;

use crate::blockdev::stats::{AcctOutcome, AcctTimer, AcctType};
use crate::machine::virtio::chain::{Chain, Segment};

pub const SECTOR: u64 = 512;
const HEADER_LEN: u64 = 16;
/// Largest piece of data moved at once between guest memory and the disk.
pub const CHUNK: usize = 1 << 20;
/// Most segments accepted in one DISCARD / WRITE_ZEROES request.
pub const MAX_DWZ_SEGMENTS: u32 = 16;
/// Most sectors in one DISCARD / WRITE_ZEROES segment (QEMU's BDRV_REQUEST_MAX_SECTORS).
pub const MAX_DWZ_SECTORS: u32 = (1 << 22) - 1;
const DWZ_SEGMENT_LEN: u64 = 16;

/// What the device serves requests from (a drive's `BlockBackend`, or memory in tests).
pub trait Disk: Send + Sync {
    fn size(&self) -> u64;
    fn read_only(&self) -> bool;
    fn read(&self, buf: &mut [u8], off: u64) -> Result<(), DiskError>;
    fn write(&self, buf: &[u8], off: u64) -> Result<(), DiskError>;
    fn flush(&self) -> Result<(), DiskError>;
    fn discard(&self, off: u64, len: u64) -> Result<(), DiskError>;
    fn write_zeroes(&self, off: u64, len: u64) -> Result<(), DiskError>;
    /// Accounts one finished request (QEMU's `block_acct_*`); nothing by default.
    fn account(&self, _kind: AcctType, _outcome: AcctOutcome) {}
    /// Waits for the drive's I/O limits before a read or write of `bytes`; none by default.
    fn throttle(&self, _is_write: bool, _bytes: u64) {}
    /// The device drains (VM pause): requests waiting on limits go at once until `drain_end`.
    fn drain_begin(&self) {}
    fn drain_end(&self) {}
}

/// A failed disk operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DiskError {
    /// The host's errno, when the failure was a system call's (ENOSPC decides `werror=enospc`).
    pub errno: Option<i32>,
    pub message: String,
}

impl From<String> for DiskError {
    fn from(message: String) -> Self {
        DiskError { errno: None, message }
    }
}

/// Which way a failed request went, as QEMU counts it: flush, discard and write-zeroes are writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoOp {
    Read,
    Write,
}

/// What happens to a request whose disk operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// The guest gets IOERR.
    Report,
    /// The guest gets OK, as if the operation had worked.
    Ignore,
    /// The request is held and served again once the VM, stopped meanwhile, resumes.
    Stop,
}

/// Decides (and makes known) what a failed request gets: QEMU's `rerror`/`werror` for the drive.
pub trait ErrorPolicy: Send + Sync {
    fn on_error(&self, op: IoOp, err: &DiskError) -> ErrorAction;
}

/// Every failure is reported to the guest (the default; tests and the fuzz target).
pub struct ReportErrors;

impl ErrorPolicy for ReportErrors {
    fn on_error(&self, _op: IoOp, _err: &DiskError) -> ErrorAction {
        ErrorAction::Report
    }
}

/// Device properties that shape the answers.
#[derive(Debug, Clone, Default)]
pub struct BlkProps {
    /// `serial=` (up to 20 bytes are reported).
    pub serial: Vec<u8>,
    /// DISCARD requests reach the disk (`discard=unmap`); otherwise they succeed doing nothing.
    pub discard_unmap: bool,
    /// Whether DISCARD / WRITE_ZEROES are offered at all (not on read-only disks).
    pub dwz_offered: bool,
}

/// A chain that cannot be answered: the device needs a reset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    #[error("virtio-blk request {0} has no complete header")]
    MissingHeader(u16),
    #[error("virtio-blk request {0} has no status byte")]
    MissingStatus(u16),
    #[error("virtio-blk request {0}: guest memory access failed")]
    Memory(u16),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestType {
    In,
    Out,
    Flush,
    GetId,
    Discard,
    WriteZeroes,
    Unsupported(u32),
}

impl RequestType {
    fn from(t: u32) -> Self {
        match t {
            VIRTIO_BLK_T_IN => RequestType::In,
            VIRTIO_BLK_T_OUT => RequestType::Out,
            VIRTIO_BLK_T_FLUSH => RequestType::Flush,
            VIRTIO_BLK_T_GET_ID => RequestType::GetId,
            VIRTIO_BLK_T_DISCARD => RequestType::Discard,
            VIRTIO_BLK_T_WRITE_ZEROES => RequestType::WriteZeroes,
            other => RequestType::Unsupported(other),
        }
    }
}

/// A parsed request: where its payload and status live in guest memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub head: u16,
    pub kind: RequestType,
    pub sector: u64,
    /// Payload: readable bytes after the header (OUT/DISCARD/WRITE_ZEROES) or writable bytes
    /// before the status (IN/GET_ID).
    pub data: Vec<Segment>,
    pub status: u64,
}

impl Request {
    pub fn data_len(&self) -> u64 {
        self.data.iter().map(|s| u64::from(s.len)).sum()
    }
}

/// `segments` with the first `skip` bytes removed.
fn skip_bytes(segments: &[Segment], mut skip: u64) -> Vec<Segment> {
    let mut out = Vec::new();
    for s in segments {
        let len = u64::from(s.len);
        if skip >= len {
            skip -= len;
            continue;
        }
        out.push(Segment { addr: s.addr + skip, len: (len - skip) as u32 });
        skip = 0;
    }
    out
}

/// Copies `buf.len()` bytes from the start of `segments`.
fn read_from<M: GuestMemory>(mem: &M, segments: &[Segment], buf: &mut [u8]) -> Result<(), ()> {
    let mut done = 0;
    for s in segments {
        if done == buf.len() {
            break;
        }
        let n = (s.len as usize).min(buf.len() - done);
        mem.read_slice(&mut buf[done..done + n], GuestAddress(s.addr)).map_err(|_| ())?;
        done += n;
    }
    if done == buf.len() { Ok(()) } else { Err(()) }
}

/// Parses a checked chain.
pub fn parse<M: GuestMemory>(chain: &Chain, mem: &M) -> Result<Request, Fatal> {
    let head = chain.head;
    if chain.readable_len() < HEADER_LEN {
        return Err(Fatal::MissingHeader(head));
    }
    let mut hdr = [0u8; HEADER_LEN as usize];
    read_from(mem, &chain.readable, &mut hdr).map_err(|_| Fatal::Memory(head))?;
    let kind = RequestType::from(u32::from_le_bytes([hdr[0], hdr[1], hdr[2], hdr[3]]));
    let sector = u64::from_le_bytes([hdr[8], hdr[9], hdr[10], hdr[11], hdr[12], hdr[13], hdr[14], hdr[15]]);
    let last = chain.writable.last().ok_or(Fatal::MissingStatus(head))?;
    let status = last.addr + u64::from(last.len) - 1;
    let data = match kind {
        RequestType::In | RequestType::GetId => {
            let mut w = chain.writable.clone();
            if let Some(l) = w.last_mut() {
                l.len -= 1;
                if l.len == 0 {
                    w.pop();
                }
            }
            w
        }
        _ => skip_bytes(&chain.readable, HEADER_LEN),
    };
    Ok(Request { head, kind, sector, data, status })
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub status: u8,
    /// Bytes written into the device-writable buffers (status included).
    pub used_len: u32,
}

/// Byte range of `sectors` sectors from `sector`, if it lies within a disk of `size` bytes.
fn range(sector: u64, len: u64, size: u64) -> Option<u64> {
    let off = sector.checked_mul(SECTOR)?;
    (len.is_multiple_of(SECTOR) && off.checked_add(len)? <= size / SECTOR * SECTOR).then_some(off)
}

/// Runs `f` on each host piece (at most [`CHUNK`] bytes) of the guest range `seg`, with the
/// piece's offset in the segment; stops at the first error. Err(None): not guest memory.
fn for_each_piece<M: GuestMemory>(
    mem: &M,
    seg: &Segment,
    access: Permissions,
    mut f: impl FnMut(&mut [u8], u64) -> Result<(), DiskError>,
) -> Result<(), Option<DiskError>> {
    let slices = mem.get_slices(GuestAddress(seg.addr), seg.len as usize, access).map_err(|_| None)?;
    let mut done = 0u64;
    for vs in slices {
        let vs = vs.map_err(|_| None)?;
        let mut off = 0usize;
        while off < vs.len() {
            let n = (vs.len() - off).min(CHUNK);
            let piece = vs.subslice(off, n).map_err(|_| None)?;
            let guard = piece.ptr_guard_mut();
            // SAFETY: `piece` is `n` bytes of a guest RAM mapping that stays mapped while `mem`
            // is borrowed, and the slice lives only for this call. The guest may access the same
            // bytes concurrently (it owns them again only after completion); that can change
            // the data moved, not memory safety: the block layer only copies through it.
            let bytes = unsafe { std::slice::from_raw_parts_mut(guard.as_ptr(), n) };
            f(bytes, done).map_err(Some)?;
            if access == Permissions::Write {
                piece.bitmap().mark_dirty(0, n);
            }
            off += n;
            done += n as u64;
        }
    }
    Ok(())
}

/// The accounting class of a request type (write-zeroes counts as a write, as in QEMU).
fn acct_type(kind: RequestType) -> Option<AcctType> {
    match kind {
        RequestType::In => Some(AcctType::Read),
        RequestType::Out | RequestType::WriteZeroes => Some(AcctType::Write),
        RequestType::Flush => Some(AcctType::Flush),
        RequestType::Discard => Some(AcctType::Unmap),
        RequestType::GetId | RequestType::Unsupported(_) => None,
    }
}

/// The bytes a request covers: its data, or the sectors its DISCARD/WRITE_ZEROES segments name.
fn acct_bytes<M: GuestMemory>(req: &Request, mem: &M) -> u64 {
    match req.kind {
        RequestType::In | RequestType::Out => req.data_len(),
        RequestType::Discard | RequestType::WriteZeroes => {
            let len = (req.data_len() as usize).min(MAX_DWZ_SEGMENTS as usize * DWZ_SEGMENT_LEN as usize);
            let len = len - len % DWZ_SEGMENT_LEN as usize;
            let mut raw = vec![0u8; len];
            if read_from(mem, &req.data, &mut raw).is_err() {
                return 0;
            }
            raw.chunks_exact(DWZ_SEGMENT_LEN as usize)
                .map(|s| u64::from(u32::from_le_bytes([s[8], s[9], s[10], s[11]])) * SECTOR)
                .sum()
        }
        _ => 0,
    }
}

/// Why a request was not served.
enum Failure {
    /// Answered with this status (a bad request).
    Status(u8),
    /// The disk operation failed: the error policy decides.
    Disk(IoOp, DiskError),
}

impl From<u8> for Failure {
    fn from(status: u8) -> Self {
        Failure::Status(status)
    }
}

const IOERR: u8 = VIRTIO_BLK_S_IOERR as u8;
const UNSUPP: u8 = VIRTIO_BLK_S_UNSUPP as u8;

/// A failed piece of guest data: the disk's error, or IOERR if the buffer was not guest memory.
fn failed(op: IoOp) -> impl Fn(Option<DiskError>) -> Failure {
    move |e| match e {
        Some(e) => Failure::Disk(op, e),
        None => Failure::Status(IOERR),
    }
}

/// What became of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered: the status byte is written.
    Done(Completion),
    /// Held by the error policy (`stop`): serve it again once the VM resumes.
    Retry,
}

/// Serves requests (stateless: one per device, shared by its I/O threads).
pub struct Executor {
    pub props: BlkProps,
    policy: Arc<dyn ErrorPolicy>,
}

impl Executor {
    /// An executor that reports every disk failure to the guest.
    pub fn new(props: BlkProps) -> Self {
        Self::with_policy(props, Arc::new(ReportErrors))
    }

    pub fn with_policy(props: BlkProps, policy: Arc<dyn ErrorPolicy>) -> Self {
        Executor { props, policy }
    }

    /// Serves `req` against `disk` and writes the status byte (unless the request is held).
    pub fn execute<M: GuestMemory>(&self, req: &Request, disk: &dyn Disk, mem: &M) -> Result<Outcome, Fatal> {
        const OK: u8 = VIRTIO_BLK_S_OK as u8;
        let timer = AcctTimer::start();
        let bytes = acct_bytes(req, mem);
        match req.kind {
            RequestType::In => disk.throttle(false, bytes),
            RequestType::Out | RequestType::WriteZeroes => disk.throttle(true, bytes),
            _ => {}
        }
        let served = self.serve(req, disk, mem);
        // QEMU's block_acct_*: once per request, GET_ID and unknown types not at all.
        let acct = |outcome| {
            if let Some(kind) = acct_type(req.kind) {
                disk.account(kind, outcome);
            }
        };
        let done = || AcctOutcome::Done { bytes, ns: timer.ns() };
        let (status, data_written) = match served {
            Ok(n) => {
                acct(done());
                (OK, n)
            }
            Err(Failure::Status(s)) => {
                if s == IOERR {
                    acct(AcctOutcome::Invalid);
                }
                (s, 0)
            }
            Err(Failure::Disk(op, e)) => {
                tracing::debug!("virtio-blk: {:?} at sector {} failed: {e}", req.kind, req.sector);
                match self.policy.on_error(op, &e) {
                    ErrorAction::Report => {
                        acct(AcctOutcome::Failed { ns: timer.ns() });
                        (IOERR, 0)
                    }
                    ErrorAction::Ignore => {
                        acct(done());
                        (OK, if req.kind == RequestType::In { req.data_len() as u32 } else { 0 })
                    }
                    ErrorAction::Stop => return Ok(Outcome::Retry),
                }
            }
        };
        mem.write_obj(status, GuestAddress(req.status)).map_err(|_| Fatal::Memory(req.head))?;
        Ok(Outcome::Done(Completion { status, used_len: data_written.saturating_add(1) }))
    }

    /// Ok(bytes written to the guest) or why not.
    fn serve<M: GuestMemory>(&self, req: &Request, disk: &dyn Disk, mem: &M) -> Result<u32, Failure> {
        match req.kind {
            RequestType::In => {
                let len = req.data_len();
                let mut off = range(req.sector, len, disk.size()).ok_or(IOERR)?;
                for seg in &req.data {
                    for_each_piece(mem, seg, Permissions::Write, |buf, at| disk.read(buf, off + at))
                        .map_err(failed(IoOp::Read))?;
                    off += u64::from(seg.len);
                }
                Ok(len as u32)
            }
            RequestType::Out => {
                if disk.read_only() {
                    return Err(IOERR.into());
                }
                let mut off = range(req.sector, req.data_len(), disk.size()).ok_or(IOERR)?;
                for seg in &req.data {
                    for_each_piece(mem, seg, Permissions::Read, |buf, at| disk.write(buf, off + at))
                        .map_err(failed(IoOp::Write))?;
                    off += u64::from(seg.len);
                }
                Ok(0)
            }
            RequestType::Flush => disk.flush().map(|()| 0).map_err(|e| Failure::Disk(IoOp::Write, e)),
            RequestType::GetId => {
                let mut id = [0u8; VIRTIO_BLK_ID_BYTES as usize];
                let n = self.props.serial.len().min(id.len());
                id[..n].copy_from_slice(&self.props.serial[..n]);
                let want = (req.data_len() as usize).min(id.len());
                let mut done = 0usize;
                for seg in &req.data {
                    if done == want {
                        break;
                    }
                    let n = (seg.len as usize).min(want - done);
                    mem.write_slice(&id[done..done + n], GuestAddress(seg.addr)).map_err(|_| IOERR)?;
                    done += n;
                }
                Ok(done as u32)
            }
            RequestType::Discard | RequestType::WriteZeroes => {
                if !self.props.dwz_offered {
                    return Err(UNSUPP.into());
                }
                if disk.read_only() {
                    return Err(IOERR.into());
                }
                let len = req.data_len();
                if len == 0
                    || !len.is_multiple_of(DWZ_SEGMENT_LEN)
                    || len / DWZ_SEGMENT_LEN > u64::from(MAX_DWZ_SEGMENTS)
                {
                    return Err(UNSUPP.into());
                }
                let mut raw = [0u8; (MAX_DWZ_SEGMENTS as usize) * DWZ_SEGMENT_LEN as usize];
                let raw = &mut raw[..len as usize];
                read_from(mem, &req.data, raw).map_err(|_| IOERR)?;
                let mut ranges = Vec::new();
                for s in raw.chunks_exact(DWZ_SEGMENT_LEN as usize) {
                    let sector = u64::from_le_bytes([s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]]);
                    let count = u32::from_le_bytes([s[8], s[9], s[10], s[11]]);
                    let flags = u32::from_le_bytes([s[12], s[13], s[14], s[15]]);
                    let allowed =
                        if req.kind == RequestType::Discard { 0 } else { VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP };
                    if flags & !allowed != 0 {
                        return Err(UNSUPP.into());
                    }
                    if count > MAX_DWZ_SECTORS {
                        return Err(IOERR.into());
                    }
                    let bytes = u64::from(count) * SECTOR;
                    let off = range(sector, bytes, disk.size()).ok_or(IOERR)?;
                    ranges.push((off, bytes));
                }
                for (off, bytes) in ranges {
                    if bytes == 0 {
                        continue;
                    }
                    if req.kind == RequestType::Discard {
                        if self.props.discard_unmap {
                            disk.discard(off, bytes).map_err(|e| Failure::Disk(IoOp::Write, e))?;
                        }
                    } else {
                        disk.write_zeroes(off, bytes).map_err(|e| Failure::Disk(IoOp::Write, e))?;
                    }
                }
                Ok(0)
            }
            RequestType::Unsupported(t) => {
                tracing::debug!("virtio-blk: unsupported request type {t}");
                Err(UNSUPP.into())
            }
        }
    }
}

/// An in-memory disk that records what was written where (tests and the fuzz target).
#[derive(Debug, Default)]
pub struct MemDisk {
    pub data: std::sync::Mutex<Vec<u8>>,
    pub read_only: bool,
    /// (offset, length) of every write, write-zeroes and discard.
    pub writes: std::sync::Mutex<Vec<(u64, u64)>>,
    pub flushes: std::sync::atomic::AtomicU32,
}

impl MemDisk {
    pub fn new(size: usize, read_only: bool) -> Self {
        MemDisk { data: std::sync::Mutex::new(vec![0; size]), read_only, ..Default::default() }
    }

    fn slice(&self, off: u64, len: u64) -> Result<std::ops::Range<usize>, String> {
        let size = self.size();
        match off.checked_add(len) {
            Some(end) if end <= size => Ok(off as usize..end as usize),
            _ => Err(format!("{off}+{len} beyond {size}")),
        }
    }

    fn record(&self, off: u64, len: u64) -> Result<std::ops::Range<usize>, String> {
        if self.read_only {
            return Err("read-only".into());
        }
        let r = self.slice(off, len)?;
        self.writes.lock().unwrap_or_else(|p| p.into_inner()).push((off, len));
        Ok(r)
    }
}

impl Disk for MemDisk {
    fn size(&self) -> u64 {
        self.data.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }
    fn read_only(&self) -> bool {
        self.read_only
    }
    fn read(&self, buf: &mut [u8], off: u64) -> Result<(), DiskError> {
        let r = self.slice(off, buf.len() as u64)?;
        buf.copy_from_slice(&self.data.lock().unwrap_or_else(|p| p.into_inner())[r]);
        Ok(())
    }
    fn write(&self, buf: &[u8], off: u64) -> Result<(), DiskError> {
        let r = self.record(off, buf.len() as u64)?;
        self.data.lock().unwrap_or_else(|p| p.into_inner())[r].copy_from_slice(buf);
        Ok(())
    }
    fn flush(&self) -> Result<(), DiskError> {
        self.flushes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
    fn discard(&self, off: u64, len: u64) -> Result<(), DiskError> {
        self.write_zeroes(off, len)
    }
    fn write_zeroes(&self, off: u64, len: u64) -> Result<(), DiskError> {
        let r = self.record(off, len)?;
        self.data.lock().unwrap_or_else(|p| p.into_inner())[r].fill(0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use vm_memory::GuestMemoryMmap;

    use super::*;

    fn mem() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    const HDR: u64 = 0x1000;
    const DATA: u64 = 0x2000;
    const STATUS: u64 = 0x8000;

    /// A chain: header at HDR, data at DATA (readable or writable), status at STATUS.
    fn chain(mem: &GuestMemoryMmap<()>, kind: u32, sector: u64, data_len: u32, data_writable: bool) -> Chain {
        let mut h = [0u8; 16];
        h[..4].copy_from_slice(&kind.to_le_bytes());
        h[8..].copy_from_slice(&sector.to_le_bytes());
        mem.write_slice(&h, GuestAddress(HDR)).unwrap();
        mem.write_obj(0xaau8, GuestAddress(STATUS)).unwrap();
        let mut c = Chain { head: 3, readable: vec![Segment { addr: HDR, len: 16 }], writable: vec![] };
        if data_len > 0 {
            let s = Segment { addr: DATA, len: data_len };
            if data_writable { c.writable.push(s) } else { c.readable.push(s) }
        }
        c.writable.push(Segment { addr: STATUS, len: 1 });
        c
    }

    fn run(disk: &MemDisk, props: BlkProps, c: &Chain, mem: &GuestMemoryMmap<()>) -> Completion {
        let req = parse(c, mem).unwrap();
        let done = completed(Executor::new(props).execute(&req, disk, mem));
        assert_eq!(mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), done.status);
        done
    }

    fn completed(o: Result<Outcome, Fatal>) -> Completion {
        match o {
            Ok(Outcome::Done(c)) => c,
            other => panic!("not completed: {other:?}"),
        }
    }

    fn props() -> BlkProps {
        BlkProps { serial: b"SERIAL-0123456789-ABCDEF".to_vec(), discard_unmap: true, dwz_offered: true }
    }

    #[test]
    fn read_write_flush_getid() {
        let m = mem();
        let disk = MemDisk::new(64 * 1024, false);
        m.write_slice(&[0x5a; 1024], GuestAddress(DATA)).unwrap();
        let w = run(&disk, props(), &chain(&m, VIRTIO_BLK_T_OUT, 4, 1024, false), &m);
        assert_eq!(w, Completion { status: 0, used_len: 1 });
        assert_eq!(*disk.writes.lock().unwrap(), vec![(2048, 1024)]);
        m.write_slice(&[0; 1024], GuestAddress(DATA)).unwrap();
        let r = run(&disk, props(), &chain(&m, VIRTIO_BLK_T_IN, 4, 1024, true), &m);
        assert_eq!(r, Completion { status: 0, used_len: 1025 });
        let mut back = [0u8; 1024];
        m.read_slice(&mut back, GuestAddress(DATA)).unwrap();
        assert_eq!(back, [0x5a; 1024]);
        run(&disk, props(), &chain(&m, VIRTIO_BLK_T_FLUSH, 0, 0, false), &m);
        assert_eq!(disk.flushes.load(std::sync::atomic::Ordering::SeqCst), 1);
        let id = run(&disk, props(), &chain(&m, VIRTIO_BLK_T_GET_ID, 0, 20, true), &m);
        assert_eq!(id.used_len, 21);
        let mut s = [0u8; 20];
        m.read_slice(&mut s, GuestAddress(DATA)).unwrap();
        assert_eq!(&s, b"SERIAL-0123456789-AB");
    }

    #[test]
    fn requests_that_get_an_error_status() {
        let m = mem();
        let disk = MemDisk::new(8192, false);
        // Beyond the end, straddling the end, sector overflow, not a whole sector.
        for (sector, len) in [(16, 512), (15, 1024), (u64::MAX / 256, 512), (0, 100)] {
            let c = chain(&m, VIRTIO_BLK_T_OUT, sector, len, false);
            assert_eq!(run(&disk, props(), &c, &m).status, 1, "write {sector}+{len}");
            let c = chain(&m, VIRTIO_BLK_T_IN, sector, len, true);
            assert_eq!(run(&disk, props(), &c, &m), Completion { status: 1, used_len: 1 });
        }
        assert!(disk.writes.lock().unwrap().is_empty());
        assert_eq!(run(&disk, props(), &chain(&m, 99, 0, 0, false), &m).status, 2);
        let ro = MemDisk::new(8192, true);
        assert_eq!(run(&ro, props(), &chain(&m, VIRTIO_BLK_T_OUT, 0, 512, false), &m).status, 1);
        assert_eq!(run(&ro, props(), &chain(&m, VIRTIO_BLK_T_IN, 0, 512, true), &m).status, 0);
        assert_eq!(run(&ro, props(), &chain(&m, VIRTIO_BLK_T_FLUSH, 0, 0, false), &m).status, 0);
    }

    fn dwz_segment(m: &GuestMemoryMmap<()>, at: u64, sector: u64, count: u32, flags: u32) {
        let mut s = [0u8; 16];
        s[..8].copy_from_slice(&sector.to_le_bytes());
        s[8..12].copy_from_slice(&count.to_le_bytes());
        s[12..].copy_from_slice(&flags.to_le_bytes());
        m.write_slice(&s, GuestAddress(at)).unwrap();
    }

    #[test]
    fn discard_and_write_zeroes() {
        let m = mem();
        let disk = MemDisk::new(8192, false);
        disk.data.lock().unwrap().fill(0xff);
        let c = chain(&m, VIRTIO_BLK_T_WRITE_ZEROES, 0, 32, false);
        dwz_segment(&m, DATA, 1, 2, 0);
        dwz_segment(&m, DATA + 16, 10, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
        assert_eq!(run(&disk, props(), &c, &m).status, 0);
        assert_eq!(*disk.writes.lock().unwrap(), vec![(512, 1024), (5120, 512)]);
        let c = chain(&m, VIRTIO_BLK_T_DISCARD, 0, 16, false);
        dwz_segment(&m, DATA, 0, 1, VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP);
        assert_eq!(run(&disk, props(), &c, &m).status, 2, "discard has no flags");
        dwz_segment(&m, DATA, 15, 2, 0);
        assert_eq!(run(&disk, props(), &c, &m).status, 1, "beyond the end");
        dwz_segment(&m, DATA, 3, 1, 0);
        let mut p = props();
        p.discard_unmap = false;
        assert_eq!(run(&disk, p, &c, &m).status, 0);
        assert_eq!(disk.writes.lock().unwrap().len(), 2, "discard=ignore does nothing");
        assert_eq!(run(&disk, props(), &c, &m).status, 0);
        assert_eq!(disk.writes.lock().unwrap().len(), 3);
        let c = chain(&m, VIRTIO_BLK_T_DISCARD, 0, 15, false);
        assert_eq!(run(&disk, props(), &c, &m).status, 2, "partial segment");
        let mut p = props();
        p.dwz_offered = false;
        assert_eq!(run(&disk, p, &chain(&m, VIRTIO_BLK_T_DISCARD, 0, 16, false), &m).status, 2);
    }

    /// A disk whose flush looks at the guest's status byte: still unwritten while flushing.
    struct FlushProbe {
        inner: MemDisk,
        mem: GuestMemoryMmap<()>,
        status_during_flush: std::sync::Mutex<Option<u8>>,
    }

    impl Disk for FlushProbe {
        fn size(&self) -> u64 {
            self.inner.size()
        }
        fn read_only(&self) -> bool {
            false
        }
        fn read(&self, buf: &mut [u8], off: u64) -> Result<(), DiskError> {
            self.inner.read(buf, off)
        }
        fn write(&self, buf: &[u8], off: u64) -> Result<(), DiskError> {
            self.inner.write(buf, off)
        }
        fn flush(&self) -> Result<(), DiskError> {
            *self.status_during_flush.lock().unwrap() = self.mem.read_obj::<u8>(GuestAddress(STATUS)).ok();
            Err(DiskError { errno: Some(libc::EIO), message: "disk gone".into() })
        }
        fn discard(&self, off: u64, len: u64) -> Result<(), DiskError> {
            self.inner.discard(off, len)
        }
        fn write_zeroes(&self, off: u64, len: u64) -> Result<(), DiskError> {
            self.inner.write_zeroes(off, len)
        }
    }

    #[test]
    fn flush_completes_only_after_the_disk_flushed() {
        let m = mem();
        let disk = FlushProbe {
            inner: MemDisk::new(4096, false),
            mem: m.clone(),
            status_during_flush: Default::default(),
        };
        let c = chain(&m, VIRTIO_BLK_T_FLUSH, 0, 0, false);
        let done = completed(Executor::new(props()).execute(&parse(&c, &m).unwrap(), &disk, &m));
        assert_eq!(
            *disk.status_during_flush.lock().unwrap(),
            Some(0xaa),
            "status written before the flush returned"
        );
        assert_eq!(done.status, 1, "a failed flush is an I/O error");
    }

    #[test]
    fn fatal_layouts_and_split_headers() {
        let m = mem();
        let disk = MemDisk::new(8192, false);
        let mut c = chain(&m, VIRTIO_BLK_T_IN, 0, 512, true);
        c.readable[0].len = 15;
        assert_eq!(parse(&c, &m), Err(Fatal::MissingHeader(3)));
        let mut c = chain(&m, VIRTIO_BLK_T_OUT, 0, 512, false);
        c.writable.clear();
        assert_eq!(parse(&c, &m), Err(Fatal::MissingStatus(3)));
        // Header split over two buffers, status sharing the data buffer's last byte.
        let c0 = chain(&m, VIRTIO_BLK_T_IN, 2, 0, false);
        let c = Chain {
            head: 1,
            readable: vec![Segment { addr: HDR, len: 5 }, Segment { addr: HDR + 5, len: 11 }],
            writable: vec![Segment { addr: DATA, len: 513 }],
        };
        drop(c0);
        disk.data.lock().unwrap()[1024..1536].fill(7);
        let req = parse(&c, &m).unwrap();
        assert_eq!((req.kind, req.sector, req.data_len(), req.status), (RequestType::In, 2, 512, DATA + 512));
        let done = completed(Executor::new(props()).execute(&req, &disk, &m));
        assert_eq!(done, Completion { status: 0, used_len: 513 });
    }

    /// Writes fail with ENOSPC, reads with EIO.
    struct FullDisk(MemDisk);

    impl Disk for FullDisk {
        fn size(&self) -> u64 {
            self.0.size()
        }
        fn read_only(&self) -> bool {
            false
        }
        fn read(&self, _buf: &mut [u8], _off: u64) -> Result<(), DiskError> {
            Err(DiskError { errno: Some(libc::EIO), message: "Input/output error".into() })
        }
        fn write(&self, _buf: &[u8], _off: u64) -> Result<(), DiskError> {
            Err(DiskError { errno: Some(libc::ENOSPC), message: "No space left on device".into() })
        }
        fn flush(&self) -> Result<(), DiskError> {
            self.0.flush()
        }
        fn discard(&self, off: u64, len: u64) -> Result<(), DiskError> {
            self.0.discard(off, len)
        }
        fn write_zeroes(&self, off: u64, len: u64) -> Result<(), DiskError> {
            self.0.write_zeroes(off, len)
        }
    }

    /// A fixed answer, remembering what it was asked.
    struct Fixed(ErrorAction, std::sync::Mutex<Vec<(IoOp, Option<i32>)>>);

    impl ErrorPolicy for Fixed {
        fn on_error(&self, op: IoOp, err: &DiskError) -> ErrorAction {
            self.1.lock().unwrap().push((op, err.errno));
            self.0
        }
    }

    #[test]
    fn the_error_policy_decides_what_a_failed_request_gets() {
        let m = mem();
        let disk = FullDisk(MemDisk::new(8192, false));
        let run_with = |action, kind, len, writable| {
            m.write_obj(0xaau8, GuestAddress(STATUS)).unwrap();
            let policy = Arc::new(Fixed(action, Default::default()));
            let exec = Executor::with_policy(props(), policy.clone());
            let c = chain(&m, kind, 0, len, writable);
            let out = exec.execute(&parse(&c, &m).unwrap(), &disk, &m).unwrap();
            let asked = policy.1.lock().unwrap().clone();
            (out, m.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), asked)
        };
        let (out, status, asked) = run_with(ErrorAction::Report, VIRTIO_BLK_T_OUT, 512, false);
        assert_eq!(out, Outcome::Done(Completion { status: 1, used_len: 1 }));
        assert_eq!((status, asked), (1, vec![(IoOp::Write, Some(libc::ENOSPC))]));
        let (out, status, _) = run_with(ErrorAction::Ignore, VIRTIO_BLK_T_OUT, 512, false);
        assert_eq!((out, status), (Outcome::Done(Completion { status: 0, used_len: 1 }), 0));
        let (out, status, asked) = run_with(ErrorAction::Ignore, VIRTIO_BLK_T_IN, 512, true);
        assert_eq!((out, status), (Outcome::Done(Completion { status: 0, used_len: 513 }), 0));
        assert_eq!(asked, vec![(IoOp::Read, Some(libc::EIO))]);
        // Held: no status byte, nothing for the used ring.
        let (out, status, _) = run_with(ErrorAction::Stop, VIRTIO_BLK_T_OUT, 512, false);
        assert_eq!((out, status), (Outcome::Retry, 0xaa));
        // Bad requests never reach the policy.
        let (out, _, asked) = run_with(ErrorAction::Stop, VIRTIO_BLK_T_OUT, 512 * 100, false);
        assert!(matches!(out, Outcome::Done(Completion { status: 1, .. })), "{out:?}");
        assert!(asked.is_empty());
    }
}
