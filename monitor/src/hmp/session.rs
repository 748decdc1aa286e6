//! One interactive HMP session: banner, prompt, line editing with echo, commands, until the client
//! goes away, runs `quit`, or the monitor closes.
//!
//! A session is a single task. It reads a chunk, feeds it byte by byte to the line editor, and runs
//! each completed line before looking at the next byte (QEMU suspends input while a command runs).
//! Output is written before a command starts and whenever it grows past [`OUT_HIGH_WATER`], so a
//! client that stops reading stops being read, and the session's memory stays bounded.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::completion;
use super::context::{Ctx, HmpState};
use super::dispatch::execute;
use super::readline::{Action, LineEditor};
use crate::Monitor;

/// The prompt, as QEMU prints it (expect scripts wait for it).
pub const PROMPT: &str = "(qemu) ";
/// Pending output above which the session writes before handling more input.
pub const OUT_HIGH_WATER: usize = 64 * 1024;
const READ_CHUNK: usize = 4096;

/// Options of an interactive session.
#[derive(Debug, Clone, Default)]
pub struct HmpOptions {
    /// With a console multiplexed between a serial port and this monitor (`-nographic`): whether
    /// the monitor has the focus. When the focus comes back (after the first time), the line being
    /// typed is dropped and the prompt printed again, as QEMU does.
    pub focus: Option<watch::Receiver<bool>>,
}

/// Serves one HMP client until it disconnects, runs `quit`, or the monitor closes.
pub async fn serve<R, W>(monitor: Arc<Monitor>, reader: R, writer: W, opts: HmpOptions)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let _guard = monitor.session_guard();
    let mut session =
        Session { monitor, writer, editor: LineEditor::new(PROMPT), state: HmpState::default() };
    if let Err(e) = session.run(reader, opts).await {
        tracing::debug!("HMP session ended: {e}");
    }
}

/// The banner line (`QEMU 7.2.0 monitor - type 'help' for more information`).
pub fn banner(monitor: &Monitor) -> String {
    let v = &monitor.config.version.qemu;
    format!("QEMU {}.{}.{} monitor - type 'help' for more information\n", v.major, v.minor, v.micro)
}

struct Session<W> {
    monitor: Arc<Monitor>,
    writer: W,
    editor: LineEditor,
    state: HmpState,
}

#[derive(PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

impl<W: AsyncWrite + Unpin> Session<W> {
    async fn run<R: AsyncRead + Unpin>(&mut self, mut reader: R, opts: HmpOptions) -> std::io::Result<()> {
        let mut closing = self.monitor.closing_signal();
        let banner = banner(&self.monitor);
        self.editor.print(banner.as_bytes());
        self.editor.show_prompt();
        let mut focus = opts.focus;
        let mut had_focus = focus.as_ref().is_some_and(|f| *f.borrow());
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            self.flush().await?;
            if *closing.borrow() {
                return Ok(());
            }
            tokio::select! {
                _ = closing.changed() => {
                    self.flush().await?;
                    return Ok(());
                }
                f = focus_change(&mut focus) => match f {
                    Some(true) => {
                        if had_focus {
                            self.editor.restart();
                            self.editor.show_prompt();
                        }
                        had_focus = true;
                    }
                    Some(false) => {}
                    None => focus = None,
                },
                n = reader.read(&mut buf) => {
                    let n = match n {
                        Ok(0) | Err(_) => return Ok(()),
                        Ok(n) => n,
                    };
                    for &b in &buf[..n] {
                        if self.handle_byte(b).await? == Next::Close {
                            self.flush().await?;
                            return Ok(());
                        }
                        if self.editor.output().len() >= OUT_HIGH_WATER {
                            self.flush().await?;
                        }
                    }
                }
            }
        }
    }

    async fn handle_byte(&mut self, b: u8) -> std::io::Result<Next> {
        match self.editor.handle_byte(b) {
            Action::None => {}
            Action::Execute(line) => {
                // Show the echo before a command that may take a while.
                self.flush().await?;
                let line = String::from_utf8_lossy(&line);
                let state = std::mem::take(&mut self.state);
                let mut ctx = Ctx::new(self.monitor.clone(), state, Some(self.editor.history()));
                execute(&mut ctx, &line).await;
                let (out, state, close) = ctx.into_parts();
                self.state = state;
                self.editor.output().extend_from_slice(out.as_bytes());
                if close {
                    return Ok(Next::Close);
                }
                self.editor.show_prompt();
            }
            Action::Complete(text) => {
                let (typed, candidates) = completion::complete(&text);
                self.editor.complete(candidates, typed);
            }
        }
        Ok(Next::Continue)
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        let Session { writer, editor, .. } = self;
        let out = editor.output();
        if out.is_empty() {
            return Ok(());
        }
        writer.write_all(out).await?;
        writer.flush().await?;
        out.clear();
        if out.capacity() > 4 * OUT_HIGH_WATER {
            out.shrink_to(4096);
        }
        Ok(())
    }
}

/// The next focus change; never resolves without a mux. `None` when the mux is gone.
async fn focus_change(focus: &mut Option<watch::Receiver<bool>>) -> Option<bool> {
    match focus {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}
