//! Guest RAM: anonymous, lazily-populated host mappings (pages are only backed once the guest
//! touches them) split around the 32-bit MMIO hole, and the E820 map that describes them.

use vm_memory::{GuestAddress, GuestMemoryMmap};

use super::layout::{BIOS_END, EBDA_START, HIGH_RAM_START, MMIO32_START, RAM_ABOVE_4G};
use crate::machine::MachineError;

pub type GuestMemory = GuestMemoryMmap<()>;

/// Smallest RAM that holds the boot structures, the ACPI tables and a kernel at 1 MiB.
pub const MIN_RAM: u64 = 2 << 20;

pub const E820_RAM: u32 = 1;
pub const E820_RESERVED: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct E820Entry {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// The RAM ranges for `size` bytes of guest memory.
pub fn ram_ranges(size: u64) -> Vec<(GuestAddress, u64)> {
    if size <= MMIO32_START {
        vec![(GuestAddress(0), size)]
    } else {
        vec![(GuestAddress(0), MMIO32_START), (GuestAddress(RAM_ABOVE_4G), size - MMIO32_START)]
    }
}

/// End of RAM below 4 GiB.
pub fn low_ram_end(size: u64) -> u64 {
    size.min(MMIO32_START)
}

/// The E820 map handed to the guest (boot_params or the PVH memory map).
pub fn e820_map(size: u64) -> Vec<E820Entry> {
    let mut map = vec![
        E820Entry { addr: 0, size: EBDA_START, kind: E820_RAM },
        E820Entry { addr: EBDA_START, size: BIOS_END - EBDA_START, kind: E820_RESERVED },
        E820Entry { addr: HIGH_RAM_START, size: low_ram_end(size) - HIGH_RAM_START, kind: E820_RAM },
    ];
    if size > MMIO32_START {
        map.push(E820Entry { addr: RAM_ABOVE_4G, size: size - MMIO32_START, kind: E820_RAM });
    }
    map
}

/// Total host RAM plus swap, in bytes (what `-m` may not exceed).
pub fn host_memory_limit() -> Option<u64> {
    // SAFETY: sysinfo only writes into the zeroed struct we pass.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: a valid pointer to a sysinfo struct.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return None;
    }
    let unit = u64::from(info.mem_unit.max(1));
    Some((info.totalram as u64).saturating_add(info.totalswap as u64).saturating_mul(unit))
}

/// Map `size` bytes of guest RAM (anonymous, MAP_NORESERVE: untouched pages cost nothing).
pub fn create_guest_memory(size: u64) -> Result<GuestMemory, MachineError> {
    if size < MIN_RAM {
        return Err(MachineError::Config(format!(
            "memory size {} MiB is too small (at least {} MiB)",
            size >> 20,
            MIN_RAM >> 20
        )));
    }
    if let Some(limit) = host_memory_limit()
        && size > limit
    {
        return Err(MachineError::Config(format!(
            "cannot set up guest memory 'pc.ram': Cannot allocate memory \
             ({} MiB requested, the host has {} MiB)",
            size >> 20,
            limit >> 20
        )));
    }
    let ranges: Vec<(GuestAddress, usize)> = ram_ranges(size)
        .into_iter()
        .map(|(a, s)| usize::try_from(s).map(|s| (a, s)))
        .collect::<Result<_, _>>()
        .map_err(|_| MachineError::Config("memory size does not fit this host".into()))?;
    GuestMemoryMmap::from_ranges(&ranges)
        .map_err(|e| MachineError::Config(format!("cannot set up guest memory 'pc.ram': {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e820_splits_around_the_hole() {
        let map = e820_map(4 << 30);
        assert_eq!(map.len(), 4);
        assert_eq!(map[2].addr + map[2].size, MMIO32_START);
        assert_eq!(map[3], E820Entry { addr: RAM_ABOVE_4G, size: (4 << 30) - MMIO32_START, kind: E820_RAM });
        let usable: u64 = map.iter().filter(|e| e.kind == E820_RAM).map(|e| e.size).sum();
        assert_eq!(usable, (4 << 30) - (BIOS_END - EBDA_START) - (HIGH_RAM_START - BIOS_END));
    }

    #[test]
    fn small_memory_is_one_range() {
        assert_eq!(ram_ranges(128 << 20), vec![(GuestAddress(0), 128 << 20)]);
        assert_eq!(e820_map(128 << 20).len(), 3);
    }

    #[test]
    fn too_much_or_too_little_memory_is_refused() {
        assert!(create_guest_memory(1 << 20).is_err());
        let err = create_guest_memory(1 << 60).unwrap_err().to_string();
        assert!(err.contains("cannot set up guest memory"), "{err}");
    }
}
