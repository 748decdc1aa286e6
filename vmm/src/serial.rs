//! Where the machine's serial ports get their bytes: `-serial` specs (and the `-nographic`
//! default) turned into back ends, and the host side of each wired up: a console shared with the
//! monitor (mux), stdio, a file, or nothing.

use std::io::Write;

use monitor::transport::{DeviceSide, MuxEvent, MuxSerial};
use tokio::sync::mpsc;

use crate::cli::Config;
use crate::machine::SerialBackend;
use crate::machine::kvm::{KvmMachine, SerialOutput};

/// How long a host writer waits for the guest to drain its receive FIFO before dropping input.
const INPUT_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// `-serial` specs as back ends. Without any, `-nographic` puts COM1 on stdio (shared with the
/// monitor when the monitor has no place of its own); otherwise COM1's output is discarded, as it
/// would go to a graphical console we do not have.
pub fn backends(config: &Config) -> Result<Vec<SerialBackend>, String> {
    if config.serial.is_empty() {
        return Ok(match (config.nographic, config.nodefaults) {
            (_, true) => Vec::new(),
            (true, false) => vec![SerialBackend::Stdio],
            (false, false) => vec![SerialBackend::Null],
        });
    }
    let mut out = Vec::new();
    for s in &config.serial {
        out.push(match s.as_str() {
            "none" => continue,
            "stdio" | "mon:stdio" => SerialBackend::Stdio,
            "null" => SerialBackend::Null,
            _ if s.starts_with("file:") => SerialBackend::File(s["file:".len()..].into()),
            _ if s.starts_with("chardev:") => SerialBackend::Chardev(s["chardev:".len()..].to_string()),
            _ if ["unix:", "tcp:", "telnet:"].iter().any(|p| s.starts_with(p)) => {
                SerialBackend::Chardev(socket_label(out.len()))
            }
            _ => return Err(format!("-serial {s}: '{s}' is not a valid char driver")),
        });
    }
    if out.len() > 4 {
        return Err("-serial: at most 4 serial ports (COM1-COM4)".into());
    }
    Ok(out)
}

/// The chardev label of COM`index+1` when `-serial` names a socket directly (`serial0`...).
pub fn socket_label(index: usize) -> String {
    format!("serial{index}")
}

/// The host ends of the serial ports that the monitor's transport opened: a console shared with
/// the monitor (COM1 on stdio with `-nographic`/`mon:stdio`), and socket chardevs by port index.
#[derive(Default)]
pub struct SerialLinks {
    pub console: Option<MuxSerial>,
    pub sockets: Vec<(usize, DeviceSide)>,
}

impl SerialLinks {
    fn socket(&self, port: usize) -> Option<&DeviceSide> {
        self.sockets.iter().find(|(i, _)| *i == port).map(|(_, s)| s)
    }
}

/// A serial output that goes to the shared console (the guest waits while the console is slow,
/// as a real UART would).
struct MuxWriter(mpsc::Sender<Vec<u8>>);

impl Write for MuxWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(buf.to_vec())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What each serial port writes to.
pub fn outputs(backends: &[SerialBackend], links: &SerialLinks) -> Result<Vec<SerialOutput>, String> {
    let mut outs = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        let out: SerialOutput = match (i, b, &links.console) {
            (0, SerialBackend::Stdio, Some(m)) => Box::new(MuxWriter(m.output.clone())),
            (_, SerialBackend::Stdio, _) => Box::new(std::io::stdout()),
            (_, SerialBackend::Null, _) => Box::new(std::io::sink()),
            (_, SerialBackend::File(path), _) => Box::new(
                std::fs::File::create(path)
                    .map_err(|e| format!("could not open serial output '{}': {e}", path.display()))?,
            ),
            (_, SerialBackend::Chardev(label), _) => match links.socket(i) {
                Some(side) => Box::new(MuxWriter(side.output.clone())),
                None => return Err(format!("-serial: chardev '{label}' is not a socket chardev")),
            },
        };
        outs.push(out);
    }
    Ok(outs)
}

/// Feeds host input to the guest's serial ports: COM1 from the shared console when there is one,
/// else from stdin when COM1 is on stdio; socket ports from their clients. `on_quit` runs for the
/// console's `C-a x`.
pub fn connect_input(
    machine: &KvmMachine,
    backends: &[SerialBackend],
    links: SerialLinks,
    on_quit: impl Fn() + Send + 'static,
) {
    let SerialLinks { console, sockets } = links;
    for (port, side) in sockets {
        let Some(input) = machine.serial_input(port) else { continue };
        let mut rx = side.input;
        std::thread::spawn(move || {
            while let Some(bytes) = rx.blocking_recv() {
                input.push(&bytes, INPUT_WAIT);
            }
        });
    }
    let Some(input) = machine.serial_input(0) else { return };
    if let Some(MuxSerial { input: mut rx, output: _, mut events }) = console {
        let feed = input.clone();
        std::thread::spawn(move || {
            while let Some(bytes) = rx.blocking_recv() {
                feed.push(&bytes, INPUT_WAIT);
            }
        });
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                match ev {
                    MuxEvent::Quit => on_quit(),
                    MuxEvent::Break | MuxEvent::CommitAll => tracing::info!("console request {ev:?} ignored"),
                }
            }
        });
    } else if backends.first() == Some(&SerialBackend::Stdio) {
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            loop {
                match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        input.push(&buf[..n], INPUT_WAIT);
                    }
                }
            }
        });
    }
}
