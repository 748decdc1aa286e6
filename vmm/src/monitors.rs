//! INTERIM: a minimal QMP-over-unix/stdio starter, replaced by `monitor::transport` when the hmp
//! branch lands.

use std::sync::Arc;

use monitor::Monitor;
use monitor::qmp::{QmpOptions, serve};

use crate::cli::MonitorArg;

pub struct Running {
    paths: Vec<std::path::PathBuf>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub async fn start(monitor: &Arc<Monitor>, args: &[MonitorArg], _nographic: bool) -> Result<Running, String> {
    let mut paths = Vec::new();
    for a in args {
        let MonitorArg::Qmp(spec) = a else {
            return Err("only -qmp is supported in this interim build".into());
        };
        if spec == "stdio" {
            let m = monitor.clone();
            tokio::spawn(async move {
                serve(m, tokio::io::stdin(), tokio::io::stdout(), QmpOptions { oob_offered: false }).await
            });
            continue;
        }
        let path =
            spec.strip_prefix("unix:").ok_or("only unix: and stdio")?.split(',').next().unwrap_or_default();
        let _ = std::fs::remove_file(path);
        let l = tokio::net::UnixListener::bind(path)
            .map_err(|e| format!("Failed to bind socket to {path}: {e}"))?;
        paths.push(path.into());
        let m = monitor.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let m = m.clone();
                tokio::spawn(async move {
                    let (r, w) = s.into_split();
                    serve(m, r, w, QmpOptions { oob_offered: true }).await
                });
            }
        });
    }
    Ok(Running { paths })
}
