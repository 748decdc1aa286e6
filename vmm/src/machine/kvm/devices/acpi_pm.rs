//! ACPI fixed hardware at PM_BASE (as the FADT describes it): PM1a event block (PM1_STS,
//! PM1_EN), PM1a control block (SCI_EN, SLP_TYP, SLP_EN) and the 32-bit PM timer.
//!
//! SLP_EN with the `\_S5` sleep type reports `GuestEvent::Shutdown`; other sleep states are
//! refused (logged). The power button sets PWRBTN_STS, and the SCI (level-triggered) is high
//! while any enabled status bit is set.

use std::sync::Arc;
use std::time::Instant;

use super::IrqLine;
use crate::machine::GuestEvent;
use crate::machine::kvm::bus::BusDevice;
use crate::machine::kvm::events::GuestEvents;
use crate::machine::kvm::layout::{S5_SLEEP_TYPE, SCI_IRQ};

const TMR_STS: u16 = 1 << 0;
const PWRBTN_STS: u16 = 1 << 8;
const WAK_STS: u16 = 1 << 15;
const STS_MASK: u16 = TMR_STS | (1 << 4) | (1 << 5) | PWRBTN_STS | (1 << 9) | (1 << 10) | WAK_STS;
const EN_MASK: u16 = TMR_STS | (1 << 5) | PWRBTN_STS | (1 << 9) | (1 << 10);
const SCI_EN: u16 = 1 << 0;
const SLP_EN: u16 = 1 << 13;
const PM_TIMER_HZ: u128 = 3_579_545;

/// Byte length of the block: PM1_STS(2) PM1_EN(2) PM1_CNT(2) reserved(2) PM_TMR(4).
pub const PM_BLOCK_LEN: u64 = 12;

pub struct AcpiPm {
    sts: u16,
    en: u16,
    cnt: u16,
    sci_high: bool,
    start: Instant,
    irq: Arc<dyn IrqLine>,
    events: Arc<GuestEvents>,
}

impl AcpiPm {
    pub fn new(irq: Arc<dyn IrqLine>, events: Arc<GuestEvents>) -> Self {
        AcpiPm { sts: 0, en: 0, cnt: SCI_EN, sci_high: false, start: Instant::now(), irq, events }
    }

    pub fn reset(&mut self) {
        self.sts = 0;
        self.en = 0;
        self.cnt = SCI_EN;
        self.update_sci();
    }

    /// The ACPI power button was pressed.
    pub fn press_power_button(&mut self) {
        self.sts |= PWRBTN_STS;
        self.update_sci();
    }

    fn update_sci(&mut self) {
        let level = self.sts & self.en & EN_MASK != 0;
        if level != self.sci_high {
            self.sci_high = level;
            self.irq.set_level(SCI_IRQ, level);
        }
    }

    fn timer(&self) -> u32 {
        (self.start.elapsed().as_nanos() * PM_TIMER_HZ / 1_000_000_000) as u32
    }

    fn register_bytes(&self) -> [u8; PM_BLOCK_LEN as usize] {
        let mut b = [0u8; PM_BLOCK_LEN as usize];
        b[0..2].copy_from_slice(&self.sts.to_le_bytes());
        b[2..4].copy_from_slice(&self.en.to_le_bytes());
        b[4..6].copy_from_slice(&(self.cnt & !SLP_EN).to_le_bytes());
        b[8..12].copy_from_slice(&self.timer().to_le_bytes());
        b
    }

    fn write_control(&mut self, value: u16) {
        self.cnt = (value & !SLP_EN) | SCI_EN;
        if value & SLP_EN != 0 {
            let slp_typ = (value >> 10) & 7;
            if slp_typ == u16::from(S5_SLEEP_TYPE) {
                self.events.report(GuestEvent::Shutdown);
            } else {
                tracing::warn!(slp_typ, "acpi: guest asked for an unsupported sleep state, ignored");
            }
        }
    }
}

impl BusDevice for AcpiPm {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let regs = self.register_bytes();
        for (i, d) in data.iter_mut().enumerate() {
            *d = regs.get(offset as usize + i).copied().unwrap_or(0xff);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let (mut sts_clear, mut en, mut cnt) = (0u16, self.en.to_le_bytes(), self.cnt.to_le_bytes());
        let mut cnt_written = false;
        for (i, &b) in data.iter().enumerate() {
            match offset as usize + i {
                0 => sts_clear |= u16::from(b),
                1 => sts_clear |= u16::from(b) << 8,
                2 | 3 => en[offset as usize + i - 2] = b,
                4 | 5 => {
                    cnt[offset as usize + i - 4] = b;
                    cnt_written = true;
                }
                other => tracing::debug!(offset = other, "acpi: write to a read-only PM register ignored"),
            }
        }
        self.sts &= !(sts_clear & STS_MASK);
        self.en = u16::from_le_bytes(en) & EN_MASK;
        if cnt_written {
            self.write_control(u16::from_le_bytes(cnt));
        }
        self.update_sci();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::mpsc::channel;

    #[derive(Default)]
    struct Line(Mutex<Vec<(u32, bool)>>);
    impl IrqLine for Line {
        fn set_level(&self, gsi: u32, high: bool) {
            self.0.lock().unwrap().push((gsi, high));
        }
    }

    #[test]
    fn power_button_raises_and_clears_the_sci() {
        let (tx, rx) = channel();
        let line = Arc::new(Line::default());
        let mut pm = AcpiPm::new(line.clone(), Arc::new(GuestEvents::new(tx)));
        pm.press_power_button();
        assert!(line.0.lock().unwrap().is_empty(), "not enabled yet: no SCI");
        pm.write(2, &0x100u16.to_le_bytes());
        assert_eq!(line.0.lock().unwrap().as_slice(), &[(SCI_IRQ, true)]);
        let mut sts = [0u8; 2];
        pm.read(0, &mut sts);
        assert_eq!(u16::from_le_bytes(sts), PWRBTN_STS);
        pm.write(0, &0x100u16.to_le_bytes());
        assert_eq!(line.0.lock().unwrap().last(), Some(&(SCI_IRQ, false)));
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn only_s5_shuts_down() {
        let (tx, rx) = channel();
        let mut pm = AcpiPm::new(Arc::new(Line::default()), Arc::new(GuestEvents::new(tx)));
        pm.write(4, &((3u16 << 10) | SLP_EN).to_le_bytes());
        assert!(rx.try_recv().is_err());
        pm.write(4, &(u16::from(S5_SLEEP_TYPE) << 10).to_le_bytes());
        assert!(rx.try_recv().is_err(), "no SLP_EN");
        pm.write(4, &((u16::from(S5_SLEEP_TYPE) << 10) | SLP_EN).to_le_bytes());
        assert_eq!(rx.try_recv(), Ok(GuestEvent::Shutdown));
        let mut cnt = [0u8; 2];
        pm.read(4, &mut cnt);
        assert_eq!(u16::from_le_bytes(cnt) & (SLP_EN | SCI_EN), SCI_EN);
        let mut junk = [0u8; 8];
        pm.read(8, &mut junk);
        assert_eq!(&junk[4..], &[0xff; 4]);
    }
}
