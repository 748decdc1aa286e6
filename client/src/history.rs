//! Where the REPL keeps its history: `$XDG_STATE_HOME/vmmon/history`, else
//! `~/.local/state/vmmon/history`.

use std::path::PathBuf;

/// The default history file, if a home or state directory is known.
pub fn default_path() -> Option<PathBuf> {
    let from_env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    let dir = from_env("XDG_STATE_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| from_env("HOME").map(|h| h.join(".local").join("state")))?;
    Some(dir.join("vmmon").join("history"))
}
