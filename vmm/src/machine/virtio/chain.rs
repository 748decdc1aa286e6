//! A descriptor chain, walked once and checked, turned into plain (address, length) lists:
//! the device-readable buffers, then the device-writable ones.
//!
//! virtio-queue's chain iterator stops quietly on anything wrong (a loop or over-long chain
//! exhausting its TTL, a `next` index past the table, an unreadable descriptor or indirect
//! table, more than 4 GiB in total). A chain is therefore accepted only when its last
//! descriptor has no NEXT flag: if the walk ended any other way, the chain was cut short.
//! Every buffer must lie entirely in guest RAM, and no readable buffer may follow a writable
//! one (the virtio layout rule). Zero-length descriptors are dropped.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{GuestAddress, GuestMemory, Permissions};

/// One guest buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub addr: u64,
    pub len: u32,
}

/// A checked chain.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    pub head: u16,
    pub readable: Vec<Segment>,
    pub writable: Vec<Segment>,
}

impl Chain {
    pub fn readable_len(&self) -> u64 {
        self.readable.iter().map(|s| u64::from(s.len)).sum()
    }

    pub fn writable_len(&self) -> u64 {
        self.writable.iter().map(|s| u64::from(s.len)).sum()
    }
}

/// Why a chain was refused (each one puts the device in NEEDS_RESET).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("descriptor chain {0} is empty or its head is unreadable")]
    Empty(u16),
    #[error("descriptor chain {0} loops, is too long, or points outside its table")]
    Truncated(u16),
    #[error("descriptor chain {0} has a device-readable buffer after a device-writable one")]
    WrongOrder(u16),
    #[error("descriptor chain {head}: buffer {addr:#x}+{len:#x} is outside guest memory")]
    OutsideMemory { head: u16, addr: u64, len: u32 },
    #[error("descriptor chain {0} has more than {MAX_SEGMENTS} buffers")]
    TooManySegments(u16),
}

/// More buffers than any sane request needs (an indirect table may hold 65535).
pub const MAX_SEGMENTS: usize = 1024;

/// Walks `chain`, checking it against `mem`.
pub fn collect<M>(chain: DescriptorChain<M>) -> Result<Chain, ChainError>
where
    M: Deref + Clone,
    M::Target: GuestMemory,
{
    let head = chain.head_index();
    let mut out = Chain { head, ..Default::default() };
    let mem_check = chain.clone();
    let mem = mem_check.memory();
    let mut last_has_next = None;
    let mut count = 0usize;
    for desc in chain {
        count += 1;
        if count > MAX_SEGMENTS {
            return Err(ChainError::TooManySegments(head));
        }
        last_has_next = Some(desc.has_next());
        let (addr, len) = (desc.addr().0, desc.len());
        if len == 0 {
            continue;
        }
        let access = if desc.is_write_only() { Permissions::Write } else { Permissions::Read };
        if !mem.check_range(GuestAddress(addr), len as usize, access) {
            return Err(ChainError::OutsideMemory { head, addr, len });
        }
        let seg = Segment { addr, len };
        if desc.is_write_only() {
            out.writable.push(seg);
        } else if !out.writable.is_empty() {
            return Err(ChainError::WrongOrder(head));
        } else {
            out.readable.push(seg);
        }
    }
    match last_has_next {
        None => Err(ChainError::Empty(head)),
        Some(true) => Err(ChainError::Truncated(head)),
        Some(false) => Ok(out),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use virtio_bindings::virtio_ring::{VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::desc::split::Descriptor;
    use virtio_queue::{Queue, QueueOwnedT, QueueT};
    use vm_memory::{Bytes, GuestMemoryMmap};

    use super::*;

    pub const DESC: u64 = 0x1000;
    pub const AVAIL: u64 = 0x2000;
    pub const USED: u64 = 0x3000;
    pub const QSIZE: u16 = 16;

    pub fn memory() -> GuestMemoryMmap<()> {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap()
    }

    /// Writes `descs` at the table, makes `heads` available, returns a ready queue.
    pub fn queue_with(mem: &GuestMemoryMmap<()>, descs: &[(u64, u32, u16, u16)], heads: &[u16]) -> Queue {
        for (i, &(addr, len, flags, next)) in descs.iter().enumerate() {
            let d = RawDescriptor::from(Descriptor::new(addr, len, flags, next));
            mem.write_obj(d, GuestAddress(DESC + 16 * i as u64)).unwrap();
        }
        for (i, h) in heads.iter().enumerate() {
            mem.write_obj(*h, GuestAddress(AVAIL + 4 + 2 * i as u64)).unwrap();
        }
        mem.write_obj(heads.len() as u16, GuestAddress(AVAIL + 2)).unwrap();
        let mut q = Queue::new(QSIZE).unwrap();
        q.set_desc_table_address(Some(DESC as u32), Some(0));
        q.set_avail_ring_address(Some(AVAIL as u32), Some(0));
        q.set_used_ring_address(Some(USED as u32), Some(0));
        q.set_ready(true);
        q
    }

    fn first(descs: &[(u64, u32, u16, u16)]) -> Result<Chain, ChainError> {
        let mem = memory();
        let mut q = queue_with(&mem, descs, &[0]);
        let chain = q.iter(&mem).unwrap().next().unwrap();
        collect(chain)
    }

    const N: u16 = VRING_DESC_F_NEXT as u16;
    const W: u16 = VRING_DESC_F_WRITE as u16;

    #[test]
    fn a_good_chain() {
        let c =
            first(&[(0x8000, 16, N, 1), (0x9000, 512, N | W, 2), (0x9200, 0, N | W, 3), (0xa000, 1, W, 0)])
                .unwrap();
        assert_eq!(c.readable, vec![Segment { addr: 0x8000, len: 16 }]);
        assert_eq!(c.writable.len(), 2, "the empty buffer is dropped");
        assert_eq!((c.readable_len(), c.writable_len()), (16, 513));
    }

    #[test]
    fn bad_chains() {
        assert_eq!(
            first(&[(0x8000, 16, W | N, 1), (0x9000, 1, W | N, 0)]),
            Err(ChainError::Truncated(0)),
            "loop"
        );
        assert_eq!(first(&[(0x8000, 16, N, 1), (0x9000, 1, W | N, 0)]), Err(ChainError::WrongOrder(0)));
        assert_eq!(first(&[(0x8000, 16, N, 40)]), Err(ChainError::Truncated(0)), "next out of the table");
        assert_eq!(first(&[(0x9000, 1, W, 0), (0, 0, 0, 0)]).map(|c| c.writable.len()), Ok(1));
        assert_eq!(first(&[(0x9000, 1, W | N, 1), (0x8000, 16, 0, 0)]), Err(ChainError::WrongOrder(0)));
        assert_eq!(
            first(&[(0xff000, 0x2000, 0, 0)]),
            Err(ChainError::OutsideMemory { head: 0, addr: 0xff000, len: 0x2000 })
        );
        assert_eq!(
            first(&[(u64::MAX - 4, 16, 0, 0)]),
            Err(ChainError::OutsideMemory { head: 0, addr: u64::MAX - 4, len: 16 })
        );
        // Indirect table outside memory, and an indirect inside an indirect.
        let ind = VRING_DESC_F_INDIRECT as u16;
        assert_eq!(first(&[(0x20_0000, 32, ind, 0)]), Err(ChainError::Empty(0)));
        let mem = memory();
        let d = RawDescriptor::from(Descriptor::new(0x5000, 32, ind, 0));
        mem.write_obj(d, GuestAddress(0x4000)).unwrap();
        let mut q = queue_with(&mem, &[(0x4000, 16, ind, 0)], &[0]);
        let chain = q.iter(&mem).unwrap().next().unwrap();
        assert!(collect(chain).is_err());
    }
}
