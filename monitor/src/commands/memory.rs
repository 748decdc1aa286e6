//! `memsave` and `pmemsave`: guest memory into a file, as QEMU writes it (`pmemsave` writes
//! zeroes for what is not RAM, as QEMU's unassigned memory reads; `memsave` fails on an
//! unmapped page).
//!
//! The memory comes from the VMM in pieces ([`ControlRequest::ReadMemory`], [`CHUNK`] bytes
//! each), so a large dump neither holds the control loop for long nor needs its size in RAM;
//! the file is written on a blocking thread, off the monitor's event loop.

use std::io::Write;
use std::sync::Arc;

use serde::Deserialize;

use crate::Monitor;
use crate::control::{ControlError, ControlRequest};
use crate::error::QmpError;
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};

/// Bytes asked of the VMM at once.
pub const CHUNK: u64 = 1 << 20;

#[derive(Debug, Deserialize, Qapi)]
struct MemsaveArgs {
    val: i64,
    size: i64,
    filename: String,
    #[serde(rename = "cpu-index")]
    cpu_index: Option<i64>,
}

#[derive(Debug, Deserialize, Qapi)]
struct PmemsaveArgs {
    val: i64,
    size: i64,
    filename: String,
}

/// Reads `len` bytes of guest memory (virtual through `cpu`, else physical).
pub async fn read(m: &Monitor, addr: u64, len: u64, cpu: Option<usize>) -> Result<Vec<u8>, ControlError> {
    m.control.call(|reply| ControlRequest::ReadMemory { addr, len, cpu, reply }).await
}

/// QEMU's `memsave`/`pmemsave` loop: the file is created first, then filled piece by piece.
async fn save(
    m: &Monitor,
    addr: i64,
    size: i64,
    filename: String,
    cpu: Option<usize>,
) -> Result<Empty, QmpError> {
    let invalid = || QmpError::generic(format!("Invalid addr 0x{:016x}/size {size} specified", addr as u64));
    let file = std::fs::File::create(&filename).map_err(|e| {
        QmpError::generic(format!("Could not open '{filename}': {}", crate::transport::error::strerror(&e)))
    })?;
    let mut file = Some(file);
    let size = u64::try_from(size).map_err(|_| invalid())?;
    let mut done = 0u64;
    while done < size {
        let n = (size - done).min(CHUNK);
        let at = (addr as u64).wrapping_add(done);
        let bytes = match read(m, at, n, cpu).await {
            Ok(b) => b,
            // QEMU's pmemsave ignores the result of the physical read: what is not RAM reads
            // as zeroes (`-machine none` has no RAM at all). memsave fails instead.
            Err(_) if cpu.is_none() => vec![0; n as usize],
            Err(_) => return Err(invalid()),
        };
        let mut f = file.take().ok_or_else(invalid)?;
        let (f, r) = tokio::task::spawn_blocking(move || {
            let r = f.write_all(&bytes);
            (f, r)
        })
        .await
        .map_err(|e| QmpError::generic(e.to_string()))?;
        r.map_err(|e| {
            QmpError::generic(format!("writing to file: {}", crate::transport::error::strerror(&e)))
        })?;
        file = Some(f);
        done += n;
    }
    Ok(Empty {})
}

pub(super) fn register(reg: &mut Registry) {
    reg.add("memsave", Flags::default(), |m: Arc<Monitor>, a: MemsaveArgs| async move {
        let index = a.cpu_index.unwrap_or(0);
        let cpus: Vec<crate::control::CpuInfoFast> = m.control.call(ControlRequest::QueryCpusFast).await?;
        let cpu = cpus
            .iter()
            .find(|c| c.cpu_index == index)
            .and_then(|c| usize::try_from(c.cpu_index).ok())
            .ok_or_else(|| QmpError::generic("Parameter 'cpu-index' expects a CPU number"))?;
        save(&m, a.val, a.size, a.filename, Some(cpu)).await
    });
    reg.add("pmemsave", Flags::default(), |m: Arc<Monitor>, a: PmemsaveArgs| async move {
        save(&m, a.val, a.size, a.filename, None).await
    });
}
