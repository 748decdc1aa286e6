//! The 256-byte configuration space of one PCI function (type 0 header), as the guest sees it
//! through conf1 or ECAM.
//!
//! Every byte has a write mask (what the guest may change) and a write-1-to-clear mask (status
//! bits); everything else is read-only, so a guest writing garbage to the vendor ID or the class
//! code changes nothing. BARs are handled as registers of their own: the address bits below the
//! BAR's size are read-only zero, which gives the standard sizing protocol (write all ones, read
//! back the size mask) without a special mode, and the type bits are fixed.

/// Offsets of the type-0 header.
pub const VENDOR_ID: usize = 0x00;
pub const DEVICE_ID: usize = 0x02;
pub const COMMAND: usize = 0x04;
pub const STATUS: usize = 0x06;
pub const REVISION: usize = 0x08;
pub const CLASS_PROG: usize = 0x09;
pub const HEADER_TYPE: usize = 0x0e;
pub const BAR0: usize = 0x10;
pub const SUBSYSTEM_VENDOR_ID: usize = 0x2c;
pub const SUBSYSTEM_ID: usize = 0x2e;
pub const CAPABILITIES: usize = 0x34;
pub const INTERRUPT_LINE: usize = 0x3c;
pub const INTERRUPT_PIN: usize = 0x3d;

pub const COMMAND_IO: u16 = 1 << 0;
pub const COMMAND_MEMORY: u16 = 1 << 1;
pub const COMMAND_MASTER: u16 = 1 << 2;
const COMMAND_PARITY: u16 = 1 << 6;
const COMMAND_SERR: u16 = 1 << 8;
const COMMAND_INTX_DISABLE: u16 = 1 << 10;
const STATUS_CAP_LIST: u16 = 1 << 4;
/// Error bits of the status register (write 1 to clear).
const STATUS_W1C: u16 = 0xf900;

pub const CONFIG_SIZE: usize = 256;
const FIRST_CAP: usize = 0x40;
pub const BAR_COUNT: usize = 6;

/// What kind of address space a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Mem32,
    /// Takes two BAR registers (this one and the next).
    Mem64,
}

/// A BAR as the device declares it: kind, size (a power of two) and prefetchability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSpec {
    pub kind: BarKind,
    pub size: u64,
    pub prefetchable: bool,
}

/// Where a BAR decodes right now (memory or I/O decoding enabled, address programmed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarMapping {
    pub index: usize,
    pub kind: BarKind,
    pub addr: u64,
    pub size: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bar {
    spec: BarSpec,
    addr: u64,
}

/// Identity of a function (read-only header fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciId {
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    /// Class code, subclass and programming interface (`0x010000`: SCSI storage).
    pub class: u32,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("BAR {0} is invalid or already used")]
    BadBar(usize),
    #[error("BAR size {0:#x} is not a power of two of at least 16 bytes (4 for I/O)")]
    BadBarSize(u64),
    #[error("no room left for a capability of {0} bytes")]
    NoRoom(usize),
}

/// One function's configuration space.
#[derive(Debug, Clone)]
pub struct PciConfig {
    regs: [u8; CONFIG_SIZE],
    wmask: [u8; CONFIG_SIZE],
    w1c: [u8; CONFIG_SIZE],
    bars: [Option<Bar>; BAR_COUNT],
    /// Register index of the upper half of a 64-bit BAR.
    bar_high: [bool; BAR_COUNT],
    last_cap: Option<usize>,
    next_cap: usize,
    /// Power-on copy (for reset): registers and BAR addresses.
    initial: Option<Box<([u8; CONFIG_SIZE], [u64; BAR_COUNT])>>,
}

impl PciConfig {
    pub fn new(id: PciId) -> Self {
        let mut c = PciConfig {
            regs: [0; CONFIG_SIZE],
            wmask: [0; CONFIG_SIZE],
            w1c: [0; CONFIG_SIZE],
            bars: [None; BAR_COUNT],
            bar_high: [false; BAR_COUNT],
            last_cap: None,
            next_cap: FIRST_CAP,
            initial: None,
        };
        c.put16(VENDOR_ID, id.vendor);
        c.put16(DEVICE_ID, id.device);
        c.regs[REVISION] = id.revision;
        c.regs[CLASS_PROG] = id.class as u8;
        c.regs[CLASS_PROG + 1] = (id.class >> 8) as u8;
        c.regs[CLASS_PROG + 2] = (id.class >> 16) as u8;
        c.regs[HEADER_TYPE] = 0;
        c.put16(SUBSYSTEM_VENDOR_ID, id.subsystem_vendor);
        c.put16(SUBSYSTEM_ID, id.subsystem);
        let cmd = COMMAND_IO
            | COMMAND_MEMORY
            | COMMAND_MASTER
            | COMMAND_PARITY
            | COMMAND_SERR
            | COMMAND_INTX_DISABLE;
        c.wmask[COMMAND] = cmd as u8;
        c.wmask[COMMAND + 1] = (cmd >> 8) as u8;
        c.w1c[STATUS] = STATUS_W1C as u8;
        c.w1c[STATUS + 1] = (STATUS_W1C >> 8) as u8;
        c.wmask[INTERRUPT_LINE] = 0xff;
        c
    }

    fn put16(&mut self, off: usize, v: u16) {
        self.regs[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn get16(&self, off: usize) -> u16 {
        u16::from_le_bytes([self.regs[off], self.regs[off + 1]])
    }

    pub fn read_u8(&self, off: usize) -> u8 {
        let mut b = [0u8; 1];
        self.read(off, &mut b);
        b[0]
    }

    pub fn read_u16(&self, off: usize) -> u16 {
        let mut b = [0u8; 2];
        self.read(off, &mut b);
        u16::from_le_bytes(b)
    }

    pub fn read_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        self.read(off, &mut b);
        u32::from_le_bytes(b)
    }

    pub fn command(&self) -> u16 {
        self.get16(COMMAND)
    }

    /// The legacy interrupt pin (0: none). INTx is not wired on this machine.
    pub fn interrupt_pin(&self) -> u8 {
        self.regs[INTERRUPT_PIN]
    }

    /// Declares BAR `index`; its address is set with [`PciConfig::set_bar_addr`].
    pub fn add_bar(&mut self, index: usize, spec: BarSpec) -> Result<(), ConfigError> {
        let min = if spec.kind == BarKind::Io { 4 } else { 16 };
        if !spec.size.is_power_of_two()
            || spec.size < min
            || (spec.kind != BarKind::Mem64 && spec.size > 1 << 31)
        {
            return Err(ConfigError::BadBarSize(spec.size));
        }
        let last = if spec.kind == BarKind::Mem64 { index + 1 } else { index };
        if last >= BAR_COUNT || (index..=last).any(|i| self.bars[i].is_some() || self.bar_high[i]) {
            return Err(ConfigError::BadBar(index));
        }
        self.bars[index] = Some(Bar { spec, addr: 0 });
        if spec.kind == BarKind::Mem64 {
            self.bar_high[index + 1] = true;
        }
        Ok(())
    }

    /// Programs a BAR's address (initial allocation, done by the VMM as firmware would).
    pub fn set_bar_addr(&mut self, index: usize, addr: u64) {
        if let Some(bar) = self.bars.get_mut(index).and_then(Option::as_mut) {
            bar.addr = addr & !(bar.spec.size - 1);
        }
    }

    /// The declared BARs.
    pub fn bar_specs(&self) -> impl Iterator<Item = (usize, BarSpec)> + '_ {
        self.bars.iter().enumerate().filter_map(|(i, b)| b.map(|b| (i, b.spec)))
    }

    /// The programmed address of BAR `index` (whether or not decoding is on).
    pub fn bar_addr(&self, index: usize) -> Option<u64> {
        self.bars.get(index).and_then(|b| b.map(|b| b.addr))
    }

    /// The BARs that decode right now: decoding enabled in the command register and an address
    /// that is not zero and does not wrap.
    pub fn mappings(&self) -> Vec<BarMapping> {
        let cmd = self.command();
        self.bars
            .iter()
            .enumerate()
            .filter_map(|(index, b)| {
                let b = (*b)?;
                let enabled = match b.spec.kind {
                    BarKind::Io => cmd & COMMAND_IO != 0,
                    _ => cmd & COMMAND_MEMORY != 0,
                };
                let limit = match b.spec.kind {
                    BarKind::Io => 0x1_0000,
                    BarKind::Mem32 => 1 << 32,
                    BarKind::Mem64 => u64::MAX,
                };
                let fits = b.addr.checked_add(b.spec.size).is_some_and(|end| end <= limit);
                (enabled && b.addr != 0 && fits).then_some(BarMapping {
                    index,
                    kind: b.spec.kind,
                    addr: b.addr,
                    size: b.spec.size,
                })
            })
            .collect()
    }

    /// Appends a capability: `body` starts with the capability ID (the next pointer at byte 1 is
    /// filled in here); `wmask` marks the guest-writable bits of `body` (same length or shorter).
    /// Returns the capability's offset.
    pub fn add_capability(&mut self, body: &[u8], wmask: &[u8]) -> Result<usize, ConfigError> {
        let len = body.len().max(2);
        let off = self.next_cap;
        if off + len > CONFIG_SIZE {
            return Err(ConfigError::NoRoom(len));
        }
        self.regs[off..off + body.len()].copy_from_slice(body);
        self.regs[off + 1] = 0;
        for (i, m) in wmask.iter().enumerate().take(body.len()) {
            self.wmask[off + i] = *m;
        }
        self.wmask[off] = 0;
        self.wmask[off + 1] = 0;
        match self.last_cap {
            Some(prev) => self.regs[prev + 1] = off as u8,
            None => {
                self.regs[CAPABILITIES] = off as u8;
                let st = self.get16(STATUS) | STATUS_CAP_LIST;
                self.put16(STATUS, st);
            }
        }
        self.last_cap = Some(off);
        self.next_cap = (off + len).div_ceil(4) * 4;
        Ok(off)
    }

    /// Raw access for the device's own capability logic (no masks applied).
    pub fn raw(&self) -> &[u8; CONFIG_SIZE] {
        &self.regs
    }

    /// Raw write for the device's own capability logic (no masks applied).
    pub fn raw_write(&mut self, off: usize, data: &[u8]) {
        if let Some(dst) = self.regs.get_mut(off..off + data.len()) {
            dst.copy_from_slice(data);
        }
    }

    /// Snapshot of the current state as the power-on state (call once set up).
    pub fn freeze_initial_state(&mut self) {
        let mut addrs = [0u64; BAR_COUNT];
        for (i, b) in self.bars.iter().enumerate() {
            if let Some(b) = b {
                addrs[i] = b.addr;
            }
        }
        self.initial = Some(Box::new((self.regs, addrs)));
    }

    /// Back to the power-on state (as saved by [`PciConfig::freeze_initial_state`]).
    pub fn reset(&mut self) {
        if let Some(init) = self.initial.as_deref() {
            self.regs = init.0;
            for (i, b) in self.bars.iter_mut().enumerate() {
                if let Some(b) = b {
                    b.addr = init.1[i];
                }
            }
        }
    }

    fn bar_register(&self, reg: usize) -> u32 {
        if self.bar_high[reg] {
            return self.bars[reg - 1].map(|b| (b.addr >> 32) as u32).unwrap_or(0);
        }
        let Some(b) = self.bars[reg] else { return 0 };
        let low = b.addr as u32;
        match b.spec.kind {
            BarKind::Io => (low & !0x3) | 0x1,
            BarKind::Mem32 => (low & !0xf) | if b.spec.prefetchable { 0x8 } else { 0 },
            BarKind::Mem64 => (low & !0xf) | 0x4 | if b.spec.prefetchable { 0x8 } else { 0 },
        }
    }

    fn write_bar_register(&mut self, reg: usize, value: u32) {
        if self.bar_high[reg] {
            if let Some(b) = self.bars[reg - 1].as_mut() {
                let addr = (b.addr & 0xffff_ffff) | (u64::from(value) << 32);
                b.addr = addr & !(b.spec.size - 1);
            }
            return;
        }
        let Some(b) = self.bars[reg].as_mut() else { return };
        let low_mask: u64 = if b.spec.kind == BarKind::Io { !0x3 } else { !0xf };
        let addr = (b.addr & !0xffff_ffff) | (u64::from(value) & low_mask & 0xffff_ffff);
        b.addr = addr & !(b.spec.size - 1);
        if b.spec.kind == BarKind::Io {
            b.addr &= 0xffff;
        }
    }

    /// Guest read of `data.len()` bytes at `off` (beyond the space: all ones).
    pub fn read(&self, off: usize, data: &mut [u8]) {
        for (i, d) in data.iter_mut().enumerate() {
            let o = off + i;
            *d = if o >= CONFIG_SIZE {
                0xff
            } else if (BAR0..BAR0 + 4 * BAR_COUNT).contains(&o) {
                let reg = (o - BAR0) / 4;
                self.bar_register(reg).to_le_bytes()[(o - BAR0) % 4]
            } else {
                self.regs[o]
            };
        }
    }

    /// Guest write: only writable bits change, W1C bits clear; BARs are decoded as BARs.
    /// Returns true if a BAR or the command register changed (the caller remaps).
    pub fn write(&mut self, off: usize, data: &[u8]) -> bool {
        let before = (self.command(), self.bars.map(|b| b.map(|b| b.addr)));
        let mut bar_bytes: Vec<(usize, usize, u8)> = Vec::new();
        for (i, &v) in data.iter().enumerate() {
            let o = off + i;
            if o >= CONFIG_SIZE {
                break;
            }
            if (BAR0..BAR0 + 4 * BAR_COUNT).contains(&o) {
                bar_bytes.push(((o - BAR0) / 4, (o - BAR0) % 4, v));
                continue;
            }
            let keep = self.regs[o] & !self.wmask[o];
            let mut new = keep | (v & self.wmask[o]);
            new &= !(v & self.w1c[o]);
            self.regs[o] = new;
        }
        // BAR registers: read-modify-write of the whole dword, then decode.
        let mut reg_cur: Option<(usize, [u8; 4])> = None;
        for (reg, byte, v) in bar_bytes {
            match &mut reg_cur {
                Some((r, bytes)) if *r == reg => bytes[byte] = v,
                _ => {
                    if let Some((r, bytes)) = reg_cur.take() {
                        self.write_bar_register(r, u32::from_le_bytes(bytes));
                    }
                    let mut bytes = self.bar_register(reg).to_le_bytes();
                    bytes[byte] = v;
                    reg_cur = Some((reg, bytes));
                }
            }
        }
        if let Some((r, bytes)) = reg_cur {
            self.write_bar_register(r, u32::from_le_bytes(bytes));
        }
        before != (self.command(), self.bars.map(|b| b.map(|b| b.addr)))
    }
}

/// Fixtures for the PCI tests: a function shaped like virtio-blk-pci.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    pub fn id() -> PciId {
        PciId {
            vendor: 0x1af4,
            device: 0x1042,
            revision: 1,
            class: 0x010000,
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
        }
    }

    /// With virtio-pci's BARs: 4 KiB 32-bit at BAR1, 16 KiB 64-bit prefetchable at BAR4.
    pub fn virtio_like() -> PciConfig {
        let mut cfg = PciConfig::new(id());
        cfg.add_bar(1, BarSpec { kind: BarKind::Mem32, size: 0x1000, prefetchable: false }).unwrap();
        cfg.add_bar(4, BarSpec { kind: BarKind::Mem64, size: 0x4000, prefetchable: true }).unwrap();
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::id;
    use super::*;

    #[test]
    fn header_is_read_only_where_it_should_be() {
        let mut c = PciConfig::new(id());
        assert_eq!(c.read_u32(0), 0x1042_1af4);
        c.write(0, &[0xff; 4]);
        assert_eq!(c.read_u32(0), 0x1042_1af4, "vendor/device are read-only");
        c.write(CLASS_PROG, &[1, 2, 3]);
        assert_eq!(c.read_u32(REVISION), 0x0100_0001);
        c.write(COMMAND, &0xffffu16.to_le_bytes());
        assert_eq!(c.command(), 0x547);
        assert_eq!(c.read_u8(INTERRUPT_PIN), 0);
        assert_eq!(c.read_u32(0x100), 0xffff_ffff);
    }

    #[test]
    fn status_error_bits_are_write_one_to_clear() {
        let mut c = PciConfig::new(id());
        c.raw_write(STATUS, &0x8010u16.to_le_bytes());
        c.write(STATUS, &0x8000u16.to_le_bytes());
        assert_eq!(c.read_u16(STATUS), 0x0010);
        c.write(STATUS, &0xffffu16.to_le_bytes());
        assert_eq!(c.read_u16(STATUS), 0x0010, "the capability bit stays");
    }

    #[test]
    fn bar_sizing_and_programming() {
        let mut c = PciConfig::new(id());
        c.add_bar(1, BarSpec { kind: BarKind::Mem32, size: 0x1000, prefetchable: false }).unwrap();
        c.add_bar(4, BarSpec { kind: BarKind::Mem64, size: 0x4000, prefetchable: true }).unwrap();
        assert!(c.add_bar(5, BarSpec { kind: BarKind::Mem32, size: 0x1000, prefetchable: false }).is_err());
        assert!(c.add_bar(0, BarSpec { kind: BarKind::Mem32, size: 0x1001, prefetchable: false }).is_err());
        c.set_bar_addr(1, 0xc000_0000);
        c.set_bar_addr(4, 0xc000_4000);
        assert_eq!(c.read_u32(BAR0 + 4), 0xc000_0000);
        assert_eq!(c.read_u32(BAR0 + 16), 0xc000_400c);
        assert_eq!(c.read_u32(BAR0 + 20), 0);
        assert!(c.mappings().is_empty(), "memory decoding is off");
        // Sizing.
        c.write(BAR0 + 4, &[0xff; 4]);
        assert_eq!(c.read_u32(BAR0 + 4), 0xffff_f000);
        c.write(BAR0 + 16, &[0xff; 4]);
        c.write(BAR0 + 20, &[0xff; 4]);
        assert_eq!(c.read_u32(BAR0 + 16), 0xffff_c00c);
        assert_eq!(c.read_u32(BAR0 + 20), 0xffff_ffff);
        // Unused BARs read zero and ignore writes.
        c.write(BAR0, &[0xff; 4]);
        assert_eq!(c.read_u32(BAR0), 0);
        // Program and enable.
        c.write(BAR0 + 4, &0xd000_0000u32.to_le_bytes());
        c.write(BAR0 + 16, &0x1234_5678u32.to_le_bytes());
        c.write(BAR0 + 20, &1u32.to_le_bytes());
        assert!(c.write(COMMAND, &COMMAND_MEMORY.to_le_bytes()));
        let m = c.mappings();
        assert_eq!(m.len(), 2);
        assert_eq!((m[0].addr, m[0].size), (0xd000_0000, 0x1000));
        assert_eq!((m[1].addr, m[1].size), (0x1_1234_4000, 0x4000));
        // Byte writes to a BAR merge into the dword.
        c.write(BAR0 + 7, &[0xc1]);
        assert_eq!(c.bar_addr(1), Some(0xc100_0000));
        // A 64-bit BAR programmed to wrap does not decode.
        c.write(BAR0 + 16, &0xffff_c000u32.to_le_bytes());
        c.write(BAR0 + 20, &0xffff_ffffu32.to_le_bytes());
        assert_eq!(c.mappings().len(), 1);
    }

    #[test]
    fn capabilities_are_chained_and_masked() {
        let mut c = PciConfig::new(id());
        let a = c.add_capability(&[0x11, 0, 0x02, 0x00, 1, 0, 0, 0], &[0, 0, 0, 0xc0]).unwrap();
        let b = c.add_capability(&[0x09, 0, 16, 1], &[]).unwrap();
        assert_eq!(c.read_u8(CAPABILITIES) as usize, a);
        assert_eq!(c.read_u8(a + 1) as usize, b);
        assert_eq!(c.read_u8(b + 1), 0);
        assert_ne!(c.read_u16(STATUS) & STATUS_CAP_LIST, 0);
        c.write(a, &[0xff; 8]);
        assert_eq!(&c.raw()[a..a + 8], &[0x11, b as u8, 0x02, 0xc0, 1, 0, 0, 0]);
    }

    #[test]
    fn reset_restores_power_on_state() {
        let mut c = PciConfig::new(id());
        c.add_bar(1, BarSpec { kind: BarKind::Mem32, size: 0x1000, prefetchable: false }).unwrap();
        c.set_bar_addr(1, 0xc000_0000);
        c.freeze_initial_state();
        c.write(BAR0 + 4, &0xd000_0000u32.to_le_bytes());
        c.write(COMMAND, &7u16.to_le_bytes());
        c.reset();
        assert_eq!(c.bar_addr(1), Some(0xc000_0000));
        assert_eq!(c.command(), 0);
    }
}
