//! Telnet as a stream adapter: wraps a connection so that the monitor above it (QMP or HMP) sees
//! plain bytes.
//!
//! * On connect, QEMU's 12 negotiation bytes go out first: `IAC WILL ECHO`, `IAC WILL
//!   SUPPRESS-GO-AHEAD`, `IAC WILL BINARY`, `IAC DO BINARY`. Replies are not awaited.
//! * Input: option negotiations (`IAC WILL|WONT|DO|DONT x`) and sub-negotiations (`IAC SB ...
//!   IAC SE`) are dropped, `IAC IAC` becomes one 0xFF byte, `IAC BREAK` is counted as a break,
//!   other two-byte commands (`IAC NOP`, `IAC AYT`, ...) are dropped. (QEMU treats every command
//!   as three bytes and so can swallow a typed character after `IAC NOP`; we follow RFC 854.)
//! * Output: 0xFF is doubled, as RFC 854 requires.
//!
//! Output is staged in a small buffer (at most [`STAGE_MAX`] plus one write's worth), so a peer
//! that stops reading blocks the writer instead of growing memory.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

pub const IAC: u8 = 0xFF;
const SE: u8 = 0xF0;
const BREAK: u8 = 0xF3;
const SB: u8 = 0xFA;
const WILL: u8 = 0xFB;
const DONT: u8 = 0xFE;

/// What the server sends on connect (QEMU's `tcp_chr_telnet_init`).
pub const NEGOTIATION: [u8; 12] = [0xff, 0xfb, 0x01, 0xff, 0xfb, 0x03, 0xff, 0xfb, 0x00, 0xff, 0xfd, 0x00];

/// Staged output above which writes wait for the peer.
const STAGE_MAX: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum In {
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL/WONT/DO/DONT: the option byte is next.
    Option,
    /// Inside IAC SB ...; `true` after an IAC in it.
    Sub(bool),
}

/// Input filter state; usable on its own for byte-level tests.
#[derive(Debug, Clone)]
pub struct TelnetInput {
    state: In,
    breaks: u64,
}

impl Default for TelnetInput {
    fn default() -> Self {
        TelnetInput { state: In::Data, breaks: 0 }
    }
}

impl TelnetInput {
    /// Filters `buf` in place and returns how many data bytes remain at its start.
    pub fn filter(&mut self, buf: &mut [u8]) -> usize {
        let mut j = 0;
        for i in 0..buf.len() {
            let b = buf[i];
            self.state = match (self.state, b) {
                (In::Data, IAC) => In::Iac,
                (In::Data, _) => {
                    buf[j] = b;
                    j += 1;
                    In::Data
                }
                (In::Iac, IAC) => {
                    buf[j] = IAC;
                    j += 1;
                    In::Data
                }
                (In::Iac, WILL..=DONT) => In::Option,
                (In::Iac, SB) => In::Sub(false),
                (In::Iac, BREAK) => {
                    self.breaks += 1;
                    In::Data
                }
                (In::Iac, _) | (In::Option, _) => In::Data,
                (In::Sub(true), SE) => In::Data,
                (In::Sub(_), IAC) => In::Sub(true),
                (In::Sub(_), _) => In::Sub(false),
            };
        }
        j
    }

    /// `IAC BREAK`s seen so far.
    pub fn breaks(&self) -> u64 {
        self.breaks
    }
}

/// Appends `data` to `out` with 0xFF doubled.
pub fn escape_into(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        out.push(b);
        if b == IAC {
            out.push(IAC);
        }
    }
}

/// A telnet connection seen as plain bytes.
pub struct TelnetStream<S> {
    inner: S,
    input: TelnetInput,
    staged: Vec<u8>,
    staged_pos: usize,
}

impl<S> TelnetStream<S> {
    /// Wraps an accepted connection; the negotiation bytes are the first thing written.
    pub fn new(inner: S) -> Self {
        TelnetStream { inner, input: TelnetInput::default(), staged: NEGOTIATION.to_vec(), staged_pos: 0 }
    }

    pub fn breaks(&self) -> u64 {
        self.input.breaks()
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncWrite + Unpin> TelnetStream<S> {
    /// Writes staged bytes until done or the peer blocks.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.staged_pos < self.staged.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.staged[self.staged_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.staged_pos += n;
        }
        self.staged.clear();
        self.staged_pos = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TelnetStream<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let start = buf.filled().len();
            ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
            let end = buf.filled().len();
            if end == start {
                // End of stream.
                return Poll::Ready(Ok(()));
            }
            let kept = this.input.filter(&mut buf.filled_mut()[start..end]);
            buf.set_filled(start + kept);
            if kept > 0 {
                return Poll::Ready(Ok(()));
            }
            // Only telnet commands arrived: read again rather than report a zero-length read,
            // which would mean end of stream.
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TelnetStream<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.staged.len() - this.staged_pos >= STAGE_MAX {
            ready!(this.poll_drain(cx))?;
        }
        if this.staged_pos > 0 {
            this.staged.drain(..this.staged_pos);
            this.staged_pos = 0;
        }
        let take = data.len().min(STAGE_MAX);
        escape_into(&data[..take], &mut this.staged);
        // Push out what we can now; the rest goes with the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(take))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn filter(input: &[u8]) -> Vec<u8> {
        let mut f = TelnetInput::default();
        let mut buf = input.to_vec();
        let n = f.filter(&mut buf);
        buf.truncate(n);
        buf
    }

    #[test]
    fn input_filtering() {
        // A telnet client's replies to our negotiation, then typed text.
        assert_eq!(filter(b"\xff\xfd\x01\xff\xfd\x03\xff\xfb\x00info\r\n"), b"info\r\n");
        assert_eq!(filter(b"a\xff\xffb"), b"a\xffb");
        assert_eq!(filter(b"\xff\xf1x"), b"x", "IAC NOP is two bytes");
        assert_eq!(filter(b"\xff\xfa\x18\x00xterm\xff\xf0ok"), b"ok", "sub-negotiation dropped");
        assert_eq!(filter(b"\xff\xfa\x01\xff\xff\x02\xff\xf0z"), b"z", "IAC IAC inside SB");
        let mut f = TelnetInput::default();
        let mut buf = b"\xff\xf3x".to_vec();
        assert_eq!(f.filter(&mut buf), 1);
        assert_eq!(f.breaks(), 1);
    }

    #[test]
    fn sequences_split_across_reads() {
        let mut f = TelnetInput::default();
        let mut a = b"ab\xff".to_vec();
        let mut b = b"\xfb".to_vec();
        let mut c = b"\x01cd".to_vec();
        assert_eq!(f.filter(&mut a), 2);
        assert_eq!(f.filter(&mut b), 0);
        assert_eq!(f.filter(&mut c), 2);
        assert_eq!(&c[..2], b"cd");
    }

    #[tokio::test]
    async fn stream_negotiates_escapes_and_filters() {
        let (client, server) = tokio::io::duplex(64);
        let mut t = TelnetStream::new(server);
        let (mut cr, mut cw) = tokio::io::split(client);
        t.write_all(b"x\xffy").await.unwrap();
        t.flush().await.unwrap();
        let mut got = vec![0u8; 16];
        cr.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..12], &NEGOTIATION);
        assert_eq!(&got[12..], b"x\xff\xffy");
        // Only commands in one chunk must not look like end of stream.
        cw.write_all(b"\xff\xfd\x01").await.unwrap();
        cw.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        t.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        drop(cw);
        drop(cr);
        let mut rest = Vec::new();
        assert_eq!(t.read_to_end(&mut rest).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn large_writes_are_bounded_and_complete() {
        let (client, server) = tokio::io::duplex(1024);
        let mut t = TelnetStream::new(server);
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 256) as u8).collect();
        let expected = {
            let mut e = NEGOTIATION.to_vec();
            escape_into(&data, &mut e);
            e
        };
        let reader = tokio::spawn(async move {
            let mut client = client;
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while got.len() < expected.len() {
                let n = client.read(&mut buf).await.unwrap();
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(got, expected);
        });
        t.write_all(&data).await.unwrap();
        t.flush().await.unwrap();
        assert!(t.staged.capacity() <= 4 * STAGE_MAX);
        reader.await.unwrap();
    }
}
