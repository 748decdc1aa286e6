//! Starting a monitor session on a byte stream: the monitor mode picks QMP or HMP; the transport
//! itself never looks at the bytes.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

use super::chardevs::ClientGuard;
use super::spec::MonitorMode;
use crate::Monitor;
use crate::hmp::{self, HmpOptions};
use crate::qmp::{self, QmpOptions};

/// Runs one session on its own task. `oob_offered`: sockets offer QMP's `oob` capability, stdio
/// does not (as QEMU). The client guard keeps the connection listed in `query-chardev`.
pub fn spawn<R, W>(
    monitor: Arc<Monitor>,
    mode: MonitorMode,
    reader: R,
    writer: W,
    oob_offered: bool,
    hmp_opts: HmpOptions,
    guard: Option<ClientGuard>,
) -> tokio::task::JoinHandle<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        match mode {
            MonitorMode::Control => qmp::serve(monitor, reader, writer, QmpOptions { oob_offered }).await,
            MonitorMode::Readline => hmp::serve(monitor, reader, writer, hmp_opts).await,
        }
        drop(guard);
    })
}
