//! One console shared by a serial port and the HMP monitor (QEMU's mux chardev, `-nographic`).
//!
//! The user's bytes go to whichever side has the focus; the serial port has it first. `Ctrl-a`
//! starts an escape:
//!
//! | keys | action |
//! |---|---|
//! | `C-a c` | switch the focus between serial port and monitor |
//! | `C-a x` | print `QEMU: Terminated` and quit ([`MuxEvent::Quit`]) |
//! | `C-a h`, `C-a ?` | print the help |
//! | `C-a s` | [`MuxEvent::CommitAll`] (write back `-snapshot` disks) |
//! | `C-a b` | [`MuxEvent::Break`] (serial break) |
//! | `C-a t` | toggle `[HH:MM:SS.mmm] ` timestamps at line starts |
//! | `C-a C-a` | send one `C-a` to the focused side |
//!
//! The guest's serial output is always shown. The monitor's output is shown only while it has the
//! focus: the mux stops reading it otherwise, so it waits (bounded) in the monitor's pipe and
//! appears when the user switches over, which is how QEMU shows the banner at the first `C-a c`.
//! Leaving the monitor prints a newline; coming back, the HMP session (told through the focus
//! channel, see [`HmpOptions::focus`](crate::hmp::HmpOptions)) prints a fresh prompt.
//!
//! The serial side is abstracted as byte channels ([`MuxSerial`]) that the VMM connects to its
//! UART. Input for a side that cannot take it right now is dropped, like keystrokes into a full
//! UART FIFO, so one side never blocks the other.

use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream};
use tokio::sync::{mpsc, watch};

/// The escape key, `Ctrl-a`.
pub const ESCAPE: u8 = 0x01;
/// Chunks of input queued for a side that has not taken them yet.
const QUEUE: usize = 64;
/// The monitor pipe's capacity.
const MONITOR_PIPE: usize = 64 * 1024;

const HELP: &[&str] = &[
    "% h    print this help\n\r",
    "% x    exit emulator\n\r",
    "% s    save disk data back to file (if -snapshot)\n\r",
    "% t    toggle console timestamps\n\r",
    "% b    send break (magic sysrq)\n\r",
    "% c    switch between console and monitor\n\r",
    "% %  sends %\n\r",
];

/// Requests the mux cannot carry out itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MuxEvent {
    /// `C-a x`: quit the emulator.
    Quit,
    /// `C-a b`: send a break to the serial port.
    Break,
    /// `C-a s`: write back the changes of `-snapshot` disks.
    CommitAll,
}

/// The serial port's side.
pub struct MuxSerial {
    /// What the user types while the serial port has the focus.
    pub input: mpsc::Receiver<Vec<u8>>,
    /// What the guest prints; always shown.
    pub output: mpsc::Sender<Vec<u8>>,
    /// `C-a` requests.
    pub events: mpsc::UnboundedReceiver<MuxEvent>,
}

/// The monitor's side: a byte stream for the HMP session, and the focus it should follow.
pub struct MuxMonitor {
    pub stream: DuplexStream,
    pub focus: watch::Receiver<bool>,
}

/// Starts the mux over a console (`reader`: what the user types, `writer`: the screen).
pub fn spawn<R, W>(reader: R, writer: W) -> (MuxMonitor, MuxSerial)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (mux_end, monitor_end) = tokio::io::duplex(MONITOR_PIPE);
    let (mon_read, mon_write) = tokio::io::split(mux_end);
    let (serial_in_tx, serial_in_rx) = mpsc::channel(QUEUE);
    let (serial_out_tx, serial_out_rx) = mpsc::channel(QUEUE);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (focus_tx, focus_rx) = watch::channel(false);
    let (mon_in_tx, mut mon_in_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    // Feeds the monitor without ever blocking the mux.
    tokio::spawn(async move {
        let mut w = mon_write;
        while let Some(bytes) = mon_in_rx.recv().await {
            if w.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = w.shutdown().await;
    });
    let task = MuxTask {
        writer,
        monitor_focused: false,
        got_escape: false,
        timestamps: false,
        stamp_start: None,
        line_start: false,
        mon_in: Some(mon_in_tx),
        serial_in: serial_in_tx,
        events: events_tx,
        focus: focus_tx,
    };
    tokio::spawn(task.run(reader, mon_read, serial_out_rx));
    (
        MuxMonitor { stream: monitor_end, focus: focus_rx },
        MuxSerial { input: serial_in_rx, output: serial_out_tx, events: events_rx },
    )
}

struct MuxTask<W> {
    writer: W,
    monitor_focused: bool,
    got_escape: bool,
    timestamps: bool,
    stamp_start: Option<Instant>,
    line_start: bool,
    mon_in: Option<mpsc::Sender<Vec<u8>>>,
    serial_in: mpsc::Sender<Vec<u8>>,
    events: mpsc::UnboundedSender<MuxEvent>,
    focus: watch::Sender<bool>,
}

impl<W: AsyncWrite + Unpin> MuxTask<W> {
    async fn run<R: AsyncRead + Unpin>(
        mut self,
        mut reader: R,
        mut mon_out: tokio::io::ReadHalf<DuplexStream>,
        mut serial_out: mpsc::Receiver<Vec<u8>>,
    ) {
        let mut input = vec![0u8; 4096];
        let mut mon_buf = vec![0u8; 4096];
        let (mut input_open, mut mon_open, mut serial_open) = (true, true, true);
        while input_open || mon_open || serial_open {
            let r = tokio::select! {
                n = reader.read(&mut input), if input_open => match n {
                    Ok(0) | Err(_) => {
                        input_open = false;
                        // The monitor sees end of input once its queue is drained.
                        self.mon_in = None;
                        Ok(())
                    }
                    Ok(n) => self.handle_input(&input[..n]).await,
                },
                n = mon_out.read(&mut mon_buf), if mon_open && self.monitor_focused => match n {
                    Ok(0) | Err(_) => {
                        mon_open = false;
                        Ok(())
                    }
                    Ok(n) => self.write_out(&mon_buf[..n]).await,
                },
                data = serial_out.recv(), if serial_open => match data {
                    Some(d) => self.write_out(&d).await,
                    None => {
                        serial_open = false;
                        Ok(())
                    }
                },
                // Input is gone (so the focus can never change) and nothing else can be shown.
                else => break,
            };
            if r.is_err() {
                // The console is gone; nothing can be shown any more.
                return;
            }
        }
    }

    async fn handle_input(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut batch = Vec::with_capacity(bytes.len());
        for &b in bytes {
            if self.got_escape {
                self.got_escape = false;
                if b == ESCAPE {
                    batch.push(b);
                    continue;
                }
                self.deliver(&mut batch);
                match b {
                    b'h' | b'?' => self.print_help().await?,
                    b'x' => {
                        self.write_out(b"QEMU: Terminated\n\r").await?;
                        let _ = self.events.send(MuxEvent::Quit);
                    }
                    b's' => {
                        let _ = self.events.send(MuxEvent::CommitAll);
                    }
                    b'b' => {
                        let _ = self.events.send(MuxEvent::Break);
                    }
                    b'c' => self.switch().await?,
                    b't' => {
                        self.timestamps = !self.timestamps;
                        self.stamp_start = None;
                        self.line_start = false;
                    }
                    _ => {}
                }
            } else if b == ESCAPE {
                self.got_escape = true;
            } else {
                batch.push(b);
            }
        }
        self.deliver(&mut batch);
        Ok(())
    }

    /// Hands typed bytes to the focused side, dropping them if it is not keeping up.
    fn deliver(&mut self, batch: &mut Vec<u8>) {
        if batch.is_empty() {
            return;
        }
        let bytes = std::mem::take(batch);
        if self.monitor_focused {
            if let Some(tx) = &self.mon_in {
                let _ = tx.try_send(bytes);
            }
        } else {
            let _ = self.serial_in.try_send(bytes);
        }
    }

    async fn switch(&mut self) -> std::io::Result<()> {
        if self.monitor_focused {
            self.write_out(b"\r\n").await?;
        }
        self.monitor_focused = !self.monitor_focused;
        self.focus.send_replace(self.monitor_focused);
        Ok(())
    }

    async fn print_help(&mut self) -> std::io::Result<()> {
        let mut text = b"\n\r".to_vec();
        for line in HELP {
            for &c in line.as_bytes() {
                if c == b'%' {
                    text.extend_from_slice(b"C-a");
                } else {
                    text.push(c);
                }
            }
        }
        self.write_out(&text).await
    }

    /// Writes to the console, with a timestamp at each line start when they are on.
    async fn write_out(&mut self, data: &[u8]) -> std::io::Result<()> {
        if !self.timestamps {
            self.writer.write_all(data).await?;
            return self.writer.flush().await;
        }
        let mut out = Vec::with_capacity(data.len() + 32);
        for &b in data {
            if self.line_start {
                let start = *self.stamp_start.get_or_insert_with(Instant::now);
                out.extend_from_slice(stamp(start.elapsed().as_millis()).as_bytes());
                self.line_start = false;
            }
            out.push(b);
            if b == b'\n' {
                self.line_start = true;
            }
        }
        self.writer.write_all(&out).await?;
        self.writer.flush().await
    }
}

/// `[HH:MM:SS.mmm] ` for a time since the first stamp.
fn stamp(ms: u128) -> String {
    let secs = ms / 1000;
    format!("[{:02}:{:02}:{:02}.{:03}] ", secs / 3600, (secs / 60) % 60, secs % 60, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::DuplexStream;

    struct Console {
        keys: tokio::io::WriteHalf<DuplexStream>,
        screen: tokio::io::ReadHalf<DuplexStream>,
    }

    impl Console {
        async fn type_keys(&mut self, k: &[u8]) {
            self.keys.write_all(k).await.unwrap();
        }

        /// Reads exactly `n` bytes from the screen.
        async fn screen(&mut self, n: usize) -> Vec<u8> {
            let mut buf = vec![0u8; n];
            tokio::time::timeout(Duration::from_secs(5), self.screen.read_exact(&mut buf))
                .await
                .unwrap()
                .unwrap();
            buf
        }

        async fn screen_is_quiet(&mut self) -> bool {
            let mut b = [0u8; 1];
            tokio::time::timeout(Duration::from_millis(50), self.screen.read(&mut b)).await.is_err()
        }
    }

    fn setup() -> (Console, MuxMonitor, MuxSerial) {
        let (user, console) = tokio::io::duplex(4096);
        let (r, w) = tokio::io::split(console);
        let (mon, serial) = spawn(r, w);
        let (screen, keys) = tokio::io::split(user);
        (Console { keys, screen }, mon, serial)
    }

    async fn recv(rx: &mut mpsc::Receiver<Vec<u8>>) -> Vec<u8> {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap()
    }

    #[tokio::test]
    async fn serial_first_then_switch_to_monitor() {
        let (mut con, mut mon, mut serial) = setup();
        // The monitor's banner waits in its pipe while the serial port has the focus.
        mon.stream.write_all(b"BANNER\r\n(qemu) ").await.unwrap();
        serial.output.send(b"guest boot\r\n".to_vec()).await.unwrap();
        assert_eq!(con.screen(12).await, b"guest boot\r\n");
        assert!(con.screen_is_quiet().await);
        con.type_keys(b"ls\r").await;
        assert_eq!(recv(&mut serial.input).await, b"ls\r");
        assert!(!*mon.focus.borrow());

        con.type_keys(b"\x01c").await;
        assert_eq!(con.screen(15).await, b"BANNER\r\n(qemu) ");
        mon.focus.changed().await.unwrap();
        assert!(*mon.focus.borrow_and_update());
        con.type_keys(b"info status\r\x01\x01").await;
        let mut got = vec![0u8; 13];
        mon.stream.read_exact(&mut got).await.unwrap();
        assert_eq!(got, b"info status\r\x01");
        // Guest output still shows while the monitor has the focus.
        serial.output.send(b"tick".to_vec()).await.unwrap();
        assert_eq!(con.screen(4).await, b"tick");

        // Leaving the monitor prints a newline; its later output waits.
        con.type_keys(b"\x01c").await;
        assert_eq!(con.screen(2).await, b"\r\n");
        mon.focus.changed().await.unwrap();
        assert!(!*mon.focus.borrow_and_update());
        mon.stream.write_all(b"(qemu) ").await.unwrap();
        assert!(con.screen_is_quiet().await);
        con.type_keys(b"\x01c").await;
        assert_eq!(con.screen(7).await, b"(qemu) ");
    }

    #[tokio::test]
    async fn help_quit_break_commit() {
        let (mut con, _mon, mut serial) = setup();
        con.type_keys(b"\x01h").await;
        let expected = "\n\rC-a h    print this help\n\rC-a x    exit emulator\n\r\
C-a s    save disk data back to file (if -snapshot)\n\rC-a t    toggle console timestamps\n\r\
C-a b    send break (magic sysrq)\n\rC-a c    switch between console and monitor\n\r\
C-a C-a  sends C-a\n\r";
        assert_eq!(String::from_utf8(con.screen(expected.len()).await).unwrap(), expected);
        con.type_keys(b"\x01b\x01s\x01z\x01x").await;
        assert_eq!(con.screen(18).await, b"QEMU: Terminated\n\r");
        let mut events = Vec::new();
        for _ in 0..3 {
            events.push(
                tokio::time::timeout(Duration::from_secs(5), serial.events.recv()).await.unwrap().unwrap(),
            );
        }
        assert_eq!(events, vec![MuxEvent::Break, MuxEvent::CommitAll, MuxEvent::Quit]);
        // `C-a z` did nothing and sent nothing to the serial port.
        assert!(serial.input.try_recv().is_err());
    }

    #[tokio::test]
    async fn timestamps_at_line_starts() {
        let (mut con, _mon, mut serial) = setup();
        // The break event arriving proves the toggle before it was handled.
        con.type_keys(b"\x01t\x01b").await;
        assert_eq!(serial.events.recv().await, Some(MuxEvent::Break));
        serial.output.send(b"a\nb\n".to_vec()).await.unwrap();
        let got = String::from_utf8(con.screen(2 + 15 + 2).await).unwrap();
        // No stamp right after the toggle (QEMU waits for a line end), one after each newline.
        assert!(got.starts_with("a\n[00:00:00."), "{got:?}");
        assert!(got.ends_with("] b\n"), "{got:?}");
        assert_eq!(stamp(3_723_004), "[01:02:03.004] ");
    }
}
