//! Legacy devices of the machine (all port I/O): 16550 UARTs, i8042 (reset line only), CMOS RTC,
//! the ACPI PM1a block with the power button, the 0xcf9 reset control and the 0x80 debug port.

pub mod acpi_pm;
pub mod cmos;
pub mod i8042;
pub mod misc;
pub mod serial;

/// A level-triggered interrupt line into the in-kernel irqchip (KVM_IRQ_LINE).
pub trait IrqLine: Send + Sync {
    fn set_level(&self, gsi: u32, high: bool);
}
