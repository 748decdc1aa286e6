//! The raw duplex byte stream to a monitor: a reader thread that delivers (telnet-filtered)
//! chunks over a channel, and a shared writer.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::telnet::{self, TelnetFilter};
use crate::transport::Stream;

/// Chunks (of up to 64 KiB) queued between the reader thread and the protocol code.
const CHANNEL_CHUNKS: usize = 64;

/// What the reader thread delivers.
#[derive(Debug)]
pub enum Chunk {
    Data(Vec<u8>),
    /// The server closed the connection.
    Eof,
    /// Reading failed.
    Failed(io::Error),
}

/// The writing half, shared by every thread that sends commands.
#[derive(Debug, Clone)]
pub struct Writer {
    inner: Arc<Mutex<WriterInner>>,
}

#[derive(Debug)]
struct WriterInner {
    stream: Stream,
    telnet: bool,
}

impl Writer {
    /// Writes all of `data` (escaped for telnet when needed).
    pub fn send(&self, data: &[u8]) -> Result<()> {
        let mut w = self.inner.lock().map_err(|_| Error::Protocol("internal writer lock poisoned".into()))?;
        let telnet = w.telnet;
        let bytes = if telnet { telnet::escape(data) } else { data.to_vec() };
        w.stream.write_all(&bytes).map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                Error::Protocol("the server stopped reading (write timed out)".into())
            }
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => {
                Error::Closed { context: " while sending a command".into() }
            }
            _ => Error::Io(e),
        })?;
        w.stream.flush()?;
        Ok(())
    }

    /// Shuts the socket down (wakes the reader thread).
    pub fn shutdown(&self) {
        if let Ok(w) = self.inner.lock() {
            w.stream.shutdown();
        }
    }
}

/// A connection split into a chunk receiver and a writer.
pub struct Link {
    pub writer: Writer,
    pub chunks: Receiver<Chunk>,
}

impl Link {
    /// Starts the reader thread on `stream`.
    pub fn start(stream: Stream, telnet: bool, write_timeout: Duration) -> Result<Link> {
        let mut reader = stream.try_clone()?;
        match &stream {
            Stream::Unix(s) => s.set_write_timeout(Some(write_timeout))?,
            Stream::Tcp(s) => s.set_write_timeout(Some(write_timeout))?,
        }
        // Bounded: a server that floods us is slowed down by the socket, not buffered here.
        let (tx, rx) = mpsc::sync_channel(CHANNEL_CHUNKS);
        thread::Builder::new().name("vmmon-reader".into()).spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            // Telnet commands can appear on any TCP monitor; the filter starts active for
            // telnet: addresses and switches on when the first byte is IAC.
            let mut filter: Option<TelnetFilter> = telnet.then(TelnetFilter::default);
            let mut first = true;
            loop {
                let chunk = match reader.read(&mut buf) {
                    Ok(0) => Chunk::Eof,
                    Ok(n) => {
                        if first && buf[0] == 0xff && filter.is_none() {
                            filter = Some(TelnetFilter::default());
                        }
                        first = false;
                        let data = match filter.as_mut() {
                            Some(f) => {
                                let mut out = Vec::with_capacity(n);
                                f.filter(&buf[..n], &mut out);
                                out
                            }
                            None => buf[..n].to_vec(),
                        };
                        Chunk::Data(data)
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => Chunk::Failed(e),
                };
                let end = !matches!(chunk, Chunk::Data(_));
                if tx.send(chunk).is_err() || end {
                    return;
                }
            }
        })?;
        Ok(Link {
            writer: Writer { inner: Arc::new(Mutex::new(WriterInner { stream, telnet })) },
            chunks: rx,
        })
    }
}

/// Receives the next chunk before `deadline`; `Ok(None)` on timeout.
pub fn recv_until(chunks: &Receiver<Chunk>, deadline: Option<Instant>) -> Option<Chunk> {
    match deadline {
        None => chunks.recv().ok().or(Some(Chunk::Eof)),
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            match chunks.recv_timeout(left) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Chunk::Eof),
            }
        }
    }
}
