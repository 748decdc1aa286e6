//! Opening the byte stream to a monitor: unix or TCP sockets, with an optional retry window
//! for a VM that is still starting.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::thread;
use std::time::{Duration, Instant};

use crate::address::Address;
use crate::error::{Error, Result};

/// A connected socket of either family.
#[derive(Debug)]
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    /// A second handle on the same socket (one thread reads, another writes).
    pub fn try_clone(&self) -> io::Result<Stream> {
        Ok(match self {
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
        })
    }

    /// Closes both directions; wakes a thread blocked reading the socket.
    pub fn shutdown(&self) {
        // The socket may already be closed by the peer: nothing useful to do on error.
        let _ = match self {
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
        }
    }
}

/// Connects once, or keeps trying for `retry` while the socket is missing or refusing.
pub fn connect(address: &Address, retry: Option<Duration>, timeout: Duration) -> Result<Stream> {
    let deadline = retry.map(|r| Instant::now() + r);
    loop {
        match connect_once(address, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => {
                let retriable = matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::WouldBlock
                );
                match deadline {
                    Some(d) if retriable && Instant::now() < d => {
                        thread::sleep(Duration::from_millis(100));
                    }
                    _ => {
                        return Err(Error::Connect { address: address.to_string(), source: e });
                    }
                }
            }
        }
    }
}

fn connect_once(address: &Address, timeout: Duration) -> io::Result<Stream> {
    match address {
        Address::Unix(path) => Ok(Stream::Unix(UnixStream::connect(path)?)),
        Address::Tcp { host, port } | Address::Telnet { host, port } => {
            let mut last = io::Error::new(io::ErrorKind::NotFound, "host name did not resolve");
            for sa in (host.as_str(), *port).to_socket_addrs()? {
                match TcpStream::connect_timeout(&sa, timeout) {
                    Ok(s) => {
                        // Small interactive messages: don't let Nagle delay them.
                        s.set_nodelay(true)?;
                        return Ok(Stream::Tcp(s));
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        }
    }
}
