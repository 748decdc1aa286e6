//! Arbitrary descriptor tables, available rings and guest memory fed to the virtio-blk request
//! path exactly as a queue thread runs it: virtio-queue's ring walk, the chain checks
//! (`chain::collect`), `request::parse` and `Executor::execute` against an in-memory disk.
//!
//! Invariants: no panic; every disk write lies inside the range the request asked for (so the
//! image is never written outside a request's range); nothing is written to a read-only disk;
//! the status byte in guest memory is the one reported, and a valid status; the used length
//! never exceeds the chain's device-writable bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueOwnedT, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::machine::virtio::blk::request::{self, BlkProps, Disk, Executor, MemDisk, RequestType, SECTOR};
use vmm::machine::virtio::chain;

const DESC: u64 = 0x0;
const AVAIL: u64 = 0x1000;
const USED: u64 = 0x2000;
/// Guest RAM: two regions with a hole between them.
const REGIONS: [(u64, usize); 2] = [(0, 0x10000), (0x20000, 0x10000)];
const DISK_SIZE: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    let qsize = 1u16 << (data[0] % 6); // 1..32
    let read_only = data[1] & 1 != 0;
    let event_idx = data[1] & 2 != 0;
    let dwz = data[1] & 4 != 0;
    let avail_count = u16::from(data[2]) % (qsize + 2);
    let ranges: Vec<(GuestAddress, usize)> = REGIONS.iter().map(|&(a, l)| (GuestAddress(a), l)).collect();
    let Ok(mem) = GuestMemoryMmap::<()>::from_ranges(&ranges) else { return };
    // The rest of the input becomes guest memory from address 0 (descriptor table, rings,
    // headers, payloads), then from the second region.
    let body = &data[3..];
    let first = body.len().min(REGIONS[0].1);
    let _ = mem.write_slice(&body[..first], GuestAddress(0));
    if body.len() > first {
        let second = (body.len() - first).min(REGIONS[1].1);
        let _ = mem.write_slice(&body[first..first + second], GuestAddress(REGIONS[1].0));
    }
    let _ = mem.write_obj(avail_count, GuestAddress(AVAIL + 2));

    let mut q = match Queue::new(qsize) {
        Ok(q) => q,
        Err(_) => return,
    };
    q.set_desc_table_address(Some(DESC as u32), Some(0));
    q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
    q.set_used_ring_address(Some(USED as u32), Some(0));
    q.set_event_idx(event_idx);
    q.set_ready(true);
    if !q.is_valid(&mem) {
        return;
    }
    let disk = MemDisk::new(DISK_SIZE, read_only);
    let exec = Executor::new(BlkProps { serial: b"fuzz".to_vec(), discard_unmap: true, dwz_offered: dwz });
    for _ in 0..=qsize {
        let next = match q.iter(&mem) {
            Ok(mut it) => it.next(),
            Err(_) => break, // the device would go to NEEDS_RESET
        };
        let Some(c) = next else { break };
        let head = c.head_index();
        let Ok(chain) = chain::collect(c) else { break };
        let Ok(req) = request::parse(&chain, &mem) else { break };
        let before = disk.writes.lock().unwrap().len();
        // The default policy reports every failure: nothing is held for a retry.
        let done = match exec.execute(&req, &disk, &mem) {
            Ok(request::Outcome::Done(done)) => done,
            Ok(request::Outcome::Retry) => panic!("a request was held under the report policy"),
            Err(_) => break,
        };
        let writes: Vec<(u64, u64)> = disk.writes.lock().unwrap()[before..].to_vec();
        check_writes(&req, &writes, &mem, read_only);
        assert!(done.status <= 2, "status {}", done.status);
        assert_eq!(mem.read_obj::<u8>(GuestAddress(req.status)).ok(), Some(done.status));
        assert!(u64::from(done.used_len) <= chain.writable_len(), "used {} > writable", done.used_len);
        if q.add_used(&mem, head, done.used_len).is_err() {
            break;
        }
        let _ = q.needs_notification(&mem);
    }
    assert!(disk.size() == DISK_SIZE as u64);
});

/// Every write must lie inside what the request named.
fn check_writes(req: &request::Request, writes: &[(u64, u64)], mem: &GuestMemoryMmap<()>, read_only: bool) {
    if writes.is_empty() {
        return;
    }
    assert!(!read_only, "write to a read-only disk: {writes:?}");
    let allowed: Vec<(u64, u64)> = match req.kind {
        RequestType::Out => vec![(req.sector * SECTOR, req.data_len())],
        RequestType::Discard | RequestType::WriteZeroes => {
            let mut raw = vec![0u8; req.data_len().min(4096) as usize];
            let mut done = 0;
            for s in &req.data {
                let n = (s.len as usize).min(raw.len() - done);
                mem.read_slice(&mut raw[done..done + n], GuestAddress(s.addr)).unwrap();
                done += n;
            }
            raw.chunks_exact(16)
                .map(|s| {
                    let sector = u64::from_le_bytes(s[..8].try_into().unwrap());
                    let count = u64::from(u32::from_le_bytes(s[8..12].try_into().unwrap()));
                    (sector * SECTOR, count * SECTOR)
                })
                .collect()
        }
        other => panic!("{other:?} wrote to the disk: {writes:?}"),
    };
    for &(off, len) in writes {
        assert!(
            allowed.iter().any(|&(a, l)| off >= a && off + len <= a + l),
            "write {off}+{len} outside the request's ranges {allowed:?}"
        );
    }
}
