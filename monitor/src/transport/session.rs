//! Starting a monitor session on a byte stream: the monitor mode picks QMP or HMP; the transport
//! itself never looks at the bytes.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::chardevs::ClientGuard;
use super::spec::MonitorMode;
use crate::Monitor;
use crate::hmp::{self, HmpOptions};
use crate::qmp::{self, QmpOptions};

/// Runs one session on its own task. QMP sessions offer the `oob` capability on every transport:
/// QEMU 7.2 does so on sockets, stdio (pipe or terminal) and files alike (observed with
/// qemu-system-x86_64 7.2.22; QMP.md's "not on stdio" does not match it). The client guard keeps
/// the connection listed in `query-chardev`.
pub fn spawn<R, W>(
    monitor: Arc<Monitor>,
    mode: MonitorMode,
    reader: R,
    writer: W,
    hmp_opts: HmpOptions,
    guard: Option<ClientGuard>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let device = guard.as_ref().and_then(|g| g.chardev().device_link());
    tokio::spawn(async move {
        let session = async move {
            match mode {
                MonitorMode::Control => {
                    qmp::serve(monitor, reader, writer, QmpOptions { oob_offered: true }).await
                }
                MonitorMode::Readline => hmp::serve(monitor, reader, writer, hmp_opts).await,
                MonitorMode::Device => match device {
                    Some(link) => link.serve(reader, writer).await,
                    None => tracing::warn!("a device chardev without a device link"),
                },
            }
        };
        match guard.as_ref().map(|g| g.chardev().clone()) {
            // `yank` on the chardev drops the session, which closes the connection.
            Some(chardev) => {
                tokio::select! {
                    _ = session => {}
                    _ = chardev.yanked() => tracing::info!("chardev {} yanked", chardev.label()),
                }
            }
            None => session.await,
        }
        drop(guard);
    })
}
