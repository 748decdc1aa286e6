//! Async entry points: each call runs the blocking node method on tokio's blocking pool,
//! so async code (the monitor, QMP handlers) never blocks its executor on file I/O.

use crate::error::{BlockError, Result};
use crate::node::BlockNode;
use std::sync::Arc;

async fn run<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlockError::Invalid(format!("Block I/O worker failed: {e}")))?
}

pub async fn read(node: Arc<BlockNode>, off: u64, len: usize) -> Result<Vec<u8>> {
    run(move || {
        let mut b = vec![0u8; len];
        node.read(&mut b, off)?;
        Ok(b)
    })
    .await
}

pub async fn write(node: Arc<BlockNode>, off: u64, data: Vec<u8>) -> Result<()> {
    run(move || node.write(&data, off)).await
}

pub async fn write_zeroes(node: Arc<BlockNode>, off: u64, len: u64) -> Result<()> {
    run(move || node.write_zeroes(off, len)).await
}

pub async fn discard(node: Arc<BlockNode>, off: u64, len: u64) -> Result<()> {
    run(move || node.discard(off, len)).await
}

pub async fn flush(node: Arc<BlockNode>) -> Result<()> {
    run(move || node.flush()).await
}

pub async fn resize(node: Arc<BlockNode>, size: u64) -> Result<()> {
    run(move || node.resize(size)).await
}
