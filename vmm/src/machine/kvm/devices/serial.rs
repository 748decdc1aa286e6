//! 16550A UART (vm-superio) with its interrupt on an irqfd, output to any writer, and a handle
//! through which the host side feeds input bytes.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::machine::kvm::bus::BusDevice;

/// Raises the UART's interrupt through an irqfd.
pub struct IrqFdTrigger(pub EventFd);

impl Trigger for IrqFdTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// Wakes a host-side writer waiting for room in the receive FIFO.
#[derive(Default)]
pub struct InputSpace {
    lock: Mutex<()>,
    cv: Condvar,
}

struct Events(Arc<InputSpace>);

impl SerialEvents for Events {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        let _g = self.0.lock.lock().unwrap_or_else(|p| p.into_inner());
        self.0.cv.notify_all();
    }
}

pub type SerialOutput = Box<dyn Write + Send>;
type Uart = Serial<IrqFdTrigger, Events, SerialOutput>;

pub struct SerialDevice {
    uart: Option<Uart>,
    space: Arc<InputSpace>,
}

impl SerialDevice {
    pub fn new(irq: EventFd, out: SerialOutput) -> Self {
        let space = Arc::new(InputSpace::default());
        let uart = Serial::with_events(IrqFdTrigger(irq), Events(Arc::clone(&space)), out);
        SerialDevice { uart: Some(uart), space }
    }

    /// Back to the power-on register state; the writer and the irqfd stay.
    pub fn reset(&mut self) {
        if let Some(old) = self.uart.take() {
            let irq = old.interrupt_evt().0.try_clone();
            let out = old.into_writer();
            match irq {
                Ok(fd) => {
                    self.uart =
                        Some(Serial::with_events(IrqFdTrigger(fd), Events(Arc::clone(&self.space)), out));
                }
                Err(e) => tracing::error!("serial: cannot reset the UART: {e}"),
            }
        }
    }

    /// Flush the output writer (at shutdown).
    pub fn flush_output(&mut self) {
        if let Some(uart) = self.uart.as_mut() {
            let _ = uart.writer_mut().flush();
        }
    }

    fn enqueue(&mut self, bytes: &[u8]) -> usize {
        let Some(uart) = self.uart.as_mut() else {
            return 0;
        };
        let room = uart.fifo_capacity();
        let n = room.min(bytes.len());
        if n == 0 {
            return 0;
        }
        match uart.enqueue_raw_bytes(&bytes[..n]) {
            Ok(n) => n,
            Err(e) => {
                tracing::debug!("serial: input dropped: {e:?}");
                0
            }
        }
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        let Some(uart) = self.uart.as_mut() else {
            return data.fill(0xff);
        };
        if data.len() != 1 || offset > 7 {
            tracing::debug!(offset, len = data.len(), "serial: unsupported read width");
            data.fill(0xff);
            return;
        }
        data[0] = uart.read(offset as u8);
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        let Some(uart) = self.uart.as_mut() else {
            return;
        };
        if data.len() != 1 || offset > 7 {
            tracing::debug!(offset, len = data.len(), "serial: unsupported write width");
            return;
        }
        if let Err(e) = uart.write(offset as u8, data[0]) {
            tracing::debug!("serial: write failed: {e:?}");
        }
    }
}

/// The host side's way into a UART's receive FIFO (stdin, a socket, a test).
#[derive(Clone)]
pub struct SerialInput {
    device: Arc<Mutex<SerialDevice>>,
    space: Arc<InputSpace>,
}

impl SerialInput {
    pub fn new(device: Arc<Mutex<SerialDevice>>) -> Self {
        let space = Arc::clone(&device.lock().unwrap_or_else(|p| p.into_inner()).space);
        SerialInput { device, space }
    }

    /// Queue as many bytes as the FIFO has room for; returns how many were taken.
    pub fn try_push(&self, bytes: &[u8]) -> usize {
        self.device.lock().unwrap_or_else(|p| p.into_inner()).enqueue(bytes)
    }

    /// Queue all of `bytes`, waiting up to `timeout` each time the FIFO is full; returns how
    /// many were taken (fewer if the guest stopped reading).
    pub fn push(&self, bytes: &[u8], timeout: Duration) -> usize {
        let mut done = 0;
        while done < bytes.len() {
            let n = self.try_push(&bytes[done..]);
            done += n;
            if n == 0 {
                let g = self.space.lock.lock().unwrap_or_else(|p| p.into_inner());
                let (_g, res) = self.space.cv.wait_timeout(g, timeout).unwrap_or_else(|p| p.into_inner());
                if res.timed_out() && self.try_push(&bytes[done..]) == 0 {
                    break;
                }
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn output_input_and_bad_accesses() {
        let buf = Buf::default();
        let dev = Arc::new(Mutex::new(SerialDevice::new(EventFd::new(0).unwrap(), Box::new(buf.clone()))));
        dev.lock().unwrap().write(0, b"A");
        dev.lock().unwrap().write(0, &[1, 2]); // 16-bit write: ignored
        dev.lock().unwrap().write(9, b"B"); // beyond the registers: ignored
        assert_eq!(buf.0.lock().unwrap().as_slice(), b"A");
        let input = SerialInput::new(dev.clone());
        assert_eq!(input.try_push(b"hi"), 2);
        let mut b = [0u8];
        dev.lock().unwrap().read(0, &mut b);
        assert_eq!(b[0], b'h');
        dev.lock().unwrap().reset();
        dev.lock().unwrap().write(0, b"C");
        assert_eq!(buf.0.lock().unwrap().as_slice(), b"AC");
    }
}
