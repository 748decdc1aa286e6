//! Chardevs bridged to a device instead of a monitor (`-serial unix:..,server=on`, `-serial
//! chardev:ID`): what clients send goes to the device's input, what the device writes goes to
//! every connected client (dropped while nobody is connected, as a serial line with no one
//! listening). The device's side is a pair of byte channels, [`DeviceSide`].

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc};

/// Chunks queued in each direction before the producer waits.
const QUEUE: usize = 64;
/// Output chunks a slow client may fall behind before it misses output.
const BACKLOG: usize = 256;

/// The device's side: bytes for the device to read, and a sender for what it writes.
pub struct DeviceSide {
    /// What connected clients sent.
    pub input: mpsc::Receiver<Vec<u8>>,
    /// What the device writes; shown to every connected client.
    pub output: mpsc::Sender<Vec<u8>>,
}

/// The transport's side, shared by every connection of the chardev.
pub struct DeviceLink {
    to_device: mpsc::Sender<Vec<u8>>,
    from_device: broadcast::Sender<Arc<Vec<u8>>>,
}

/// Creates the link and the device's side, and starts the task that fans the device's output out.
pub fn link() -> (Arc<DeviceLink>, DeviceSide) {
    let (to_device, input) = mpsc::channel(QUEUE);
    let (output, mut out_rx) = mpsc::channel::<Vec<u8>>(QUEUE);
    let (from_device, _) = broadcast::channel(BACKLOG);
    let fan_out = from_device.clone();
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            // No receiver: nobody is connected, the output is dropped.
            let _ = fan_out.send(Arc::new(bytes));
        }
    });
    (Arc::new(DeviceLink { to_device, from_device }), DeviceSide { input, output })
}

impl DeviceLink {
    /// Serves one connection until it closes (or the device is gone).
    pub async fn serve<R, W>(&self, mut reader: R, mut writer: W)
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut out = self.from_device.subscribe();
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                n = reader.read(&mut buf) => match n {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if self.to_device.send(buf[..n].to_vec()).await.is_err() {
                            return;
                        }
                    }
                },
                chunk = out.recv() => match chunk {
                    Ok(bytes) => {
                        if writer.write_all(&bytes).await.is_err() || writer.flush().await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!("serial client fell behind; {n} chunks of output dropped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_flow_both_ways() {
        let (link, mut side) = link();
        let (client, server) = tokio::io::duplex(1024);
        let (sr, sw) = tokio::io::split(server);
        let l = link.clone();
        tokio::spawn(async move { l.serve(sr, sw).await });
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"hello").await.unwrap();
        assert_eq!(side.input.recv().await.unwrap(), b"hello");
        // Let the connection subscribe before the device writes.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        side.output.send(b"from guest".to_vec()).await.unwrap();
        let mut buf = [0u8; 10];
        cr.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from guest");
    }
}
