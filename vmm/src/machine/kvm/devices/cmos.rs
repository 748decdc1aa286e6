//! MC146818 CMOS RTC at 0x70 (index, bit 7 = NMI mask) / 0x71 (data): the host's UTC time
//! in BCD or binary as status register B asks, the memory-size bytes firmware would leave,
//! and 128 bytes of NVRAM. Writes to the clock registers are ignored (the clock follows the host).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::machine::kvm::bus::BusDevice;

const REG_SECONDS: u8 = 0x00;
const REG_MINUTES: u8 = 0x02;
const REG_HOURS: u8 = 0x04;
const REG_WEEKDAY: u8 = 0x06;
const REG_DAY: u8 = 0x07;
const REG_MONTH: u8 = 0x08;
const REG_YEAR: u8 = 0x09;
const REG_A: u8 = 0x0a;
const REG_B: u8 = 0x0b;
const REG_C: u8 = 0x0c;
const REG_D: u8 = 0x0d;
const REG_CENTURY: u8 = 0x32;
const B_24H: u8 = 0x02;
const B_BINARY: u8 = 0x04;

pub struct Cmos {
    index: u8,
    nvram: [u8; 128],
    initial: [u8; 128],
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

impl Cmos {
    /// `mem_below_4g` and `mem_above_4g` in bytes fill the firmware memory-size registers.
    pub fn new(mem_below_4g: u64, mem_above_4g: u64) -> Self {
        let mut nvram = [0u8; 128];
        nvram[REG_A as usize] = 0x26;
        nvram[REG_B as usize] = B_24H;
        nvram[REG_D as usize] = 0x80;
        let ext_kb = (mem_below_4g.saturating_sub(1 << 20) >> 10).min(0xffff) as u16;
        nvram[0x15..0x17].copy_from_slice(&640u16.to_le_bytes());
        nvram[0x17..0x19].copy_from_slice(&ext_kb.to_le_bytes());
        nvram[0x30..0x32].copy_from_slice(&ext_kb.to_le_bytes());
        let above_16m = (mem_below_4g.saturating_sub(16 << 20) >> 16).min(0xffff) as u16;
        nvram[0x34..0x36].copy_from_slice(&above_16m.to_le_bytes());
        let above_4g = (mem_above_4g >> 16).min(0xff_ffff) as u32;
        nvram[0x5b..0x5e].copy_from_slice(&above_4g.to_le_bytes()[..3]);
        Cmos { index: 0, nvram, initial: nvram }
    }

    pub fn reset(&mut self) {
        self.nvram = self.initial;
        self.index = 0;
    }

    fn encode(&self, v: u32) -> u8 {
        if self.nvram[REG_B as usize] & B_BINARY != 0 { v as u8 } else { (((v / 10) << 4) | (v % 10)) as u8 }
    }

    fn read_register(&self, reg: u8) -> u8 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as i64;
        let days = now.div_euclid(86_400);
        let secs = now.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        match reg {
            REG_SECONDS => self.encode(secs % 60),
            REG_MINUTES => self.encode(secs / 60 % 60),
            REG_HOURS => {
                let h = secs / 3600;
                if self.nvram[REG_B as usize] & B_24H != 0 {
                    self.encode(h)
                } else {
                    let h12 = if h.is_multiple_of(12) { 12 } else { h % 12 };
                    self.encode(h12) | if h >= 12 { 0x80 } else { 0 }
                }
            }
            REG_WEEKDAY => self.encode(((days + 4).rem_euclid(7) + 1) as u32),
            REG_DAY => self.encode(day),
            REG_MONTH => self.encode(month),
            REG_YEAR => self.encode(year.rem_euclid(100) as u32),
            REG_CENTURY => self.encode(year.div_euclid(100).clamp(0, 99) as u32),
            REG_C => 0,
            r => self.nvram[usize::from(r & 0x7f)],
        }
    }
}

impl BusDevice for Cmos {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        if data.len() == 1 && offset == 1 {
            data[0] = self.read_register(self.index);
        } else if data.len() == 1 && offset == 0 {
            data[0] = self.index;
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() != 1 {
            return;
        }
        match offset {
            0 => self.index = data[0] & 0x7f,
            1 => match self.index {
                REG_SECONDS..=REG_YEAR | REG_CENTURY | REG_C | REG_D => {
                    tracing::debug!(reg = self.index, "cmos: clock register write ignored")
                }
                REG_A => self.nvram[REG_A as usize] = data[0] & 0x7f,
                r => self.nvram[usize::from(r)] = data[0],
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_encoding() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        let mut c = Cmos::new(128 << 20, 0);
        assert_eq!(c.encode(59), 0x59);
        c.write(0, &[REG_B]);
        c.write(1, &[B_24H | B_BINARY]);
        assert_eq!(c.encode(59), 59);
        c.write(0, &[0x17]);
        let mut b = [0];
        c.read(1, &mut b);
        assert_eq!(b[0], 0xff, "extended memory in KiB saturates at 0xffff");
        c.write(0, &[0x40]);
        c.write(1, &[0xab]);
        c.read(1, &mut b);
        assert_eq!(b[0], 0xab);
        c.reset();
        c.write(0, &[0x40]);
        c.read(1, &mut b);
        assert_eq!(b[0], 0);
    }
}
