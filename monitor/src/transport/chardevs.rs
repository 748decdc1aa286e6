//! The character devices the process has, as `query-chardev` and HMP `info chardev` list them.
//!
//! The transport records each chardev when it opens it; sockets update their entry as clients come
//! and go, so the `filename` reads as QEMU's does: `disconnected:unix:/x.sock,server=on` while no
//! client is connected, `unix:/x.sock,server=on` or `tcp:127.0.0.1:4444,server=on <-> 127.0.0.1:5555`
//! while one is (with several clients, the oldest one is shown).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::qapi::Qapi;

/// `query-chardev` element.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Qapi)]
pub struct ChardevInfo {
    pub label: String,
    pub filename: String,
    #[serde(rename = "frontend-open")]
    pub frontend_open: bool,
}

/// Every chardev of the process. Lives in [`Monitor`](crate::Monitor).
#[derive(Default)]
pub struct ChardevRegistry {
    entries: Mutex<Vec<Arc<Chardev>>>,
}

/// One chardev's entry.
pub struct Chardev {
    label: String,
    frontend_open: bool,
    state: Mutex<State>,
    /// Socket chardevs are yank instances (QEMU registers every socket chardev): `yank` bumps
    /// this, and every connection of the chardev closes at once.
    yank: Option<tokio::sync::watch::Sender<u64>>,
    /// For a chardev whose connections are bridged to a device (a serial port).
    device: Mutex<Option<Arc<super::device::DeviceLink>>>,
}

struct State {
    /// The filename with no client connected (or the only one, for non-sockets).
    idle: String,
    /// Connected clients by arrival (oldest first): filename while connected.
    clients: BTreeMap<u64, String>,
    next_key: u64,
}

impl ChardevRegistry {
    /// Records a chardev. `idle_filename` is shown while no client is connected (`stdio`, `null`,
    /// `file`, `disconnected:...`); `frontend_open` is whether a monitor uses it.
    pub fn add(&self, label: &str, idle_filename: &str, frontend_open: bool) -> Arc<Chardev> {
        let is_socket = ["unix:", "tcp:", "telnet:"].iter().any(|p| idle_filename.contains(p));
        let c = Arc::new(Chardev {
            label: label.to_string(),
            frontend_open,
            yank: is_socket.then(|| tokio::sync::watch::Sender::new(0)),
            device: Mutex::new(None),
            state: Mutex::new(State {
                idle: idle_filename.to_string(),
                clients: BTreeMap::new(),
                next_key: 0,
            }),
        });
        if let Ok(mut e) = self.entries.lock() {
            e.push(c.clone());
        }
        c
    }

    /// All chardevs, the most recently created first (QEMU builds its list by prepending).
    pub fn list(&self) -> Vec<ChardevInfo> {
        let Ok(entries) = self.entries.lock() else { return Vec::new() };
        entries.iter().rev().map(|c| c.info()).collect()
    }

    /// The labels of the chardevs that are yank instances (sockets), oldest first.
    pub fn yank_instances(&self) -> Vec<String> {
        let Ok(entries) = self.entries.lock() else { return Vec::new() };
        entries.iter().filter(|c| c.yank.is_some()).map(|c| c.label.clone()).collect()
    }

    /// Closes every connection of a socket chardev; `false` if no such yank instance.
    pub fn yank(&self, label: &str) -> bool {
        let Ok(entries) = self.entries.lock() else { return false };
        match entries.iter().find(|c| c.label == label).and_then(|c| c.yank.as_ref()) {
            Some(tx) => {
                tx.send_modify(|n| *n += 1);
                true
            }
            None => false,
        }
    }

    /// Forgets a chardev (when its transport is shut down).
    pub fn remove(&self, label: &str) {
        if let Ok(mut e) = self.entries.lock() {
            e.retain(|c| c.label != label);
        }
    }
}

impl Chardev {
    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn info(&self) -> ChardevInfo {
        let filename = match self.state.lock() {
            Ok(s) => s.clients.values().next().map_or_else(|| s.idle.clone(), Clone::clone),
            Err(_) => String::new(),
        };
        ChardevInfo { label: self.label.clone(), filename, frontend_open: self.frontend_open }
    }

    /// Records a connected client; its filename is shown while it is the oldest one connected.
    pub fn client_connected(self: &Arc<Self>, filename: String) -> ClientGuard {
        let key = match self.state.lock() {
            Ok(mut s) => {
                let key = s.next_key;
                s.next_key += 1;
                s.clients.insert(key, filename);
                key
            }
            Err(_) => u64::MAX,
        };
        ClientGuard { chardev: self.clone(), key }
    }

    /// The device this chardev's connections are bridged to, if any.
    pub fn device_link(&self) -> Option<Arc<super::device::DeviceLink>> {
        self.device.lock().ok().and_then(|d| d.clone())
    }

    /// Bridges this chardev's connections to a device.
    pub fn set_device_link(&self, link: Arc<super::device::DeviceLink>) {
        if let Ok(mut d) = self.device.lock() {
            *d = Some(link);
        }
    }

    /// Resolves when the chardev is yanked (never for chardevs that are not yank instances).
    pub async fn yanked(&self) {
        match &self.yank {
            Some(tx) => {
                let mut rx = tx.subscribe();
                let _ = rx.changed().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Changes the filename shown with no client (client sockets between connections).
    pub fn set_idle_filename(&self, filename: String) {
        if let Ok(mut s) = self.state.lock() {
            s.idle = filename;
        }
    }
}

/// Keeps a client listed until dropped.
pub struct ClientGuard {
    chardev: Arc<Chardev>,
    key: u64,
}

impl ClientGuard {
    /// The chardev this client is connected to.
    pub fn chardev(&self) -> &Arc<Chardev> {
        &self.chardev
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.chardev.state.lock() {
            s.clients.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_follow_clients() {
        let reg = ChardevRegistry::default();
        reg.add("compat_monitor0", "stdio", true);
        let sock = reg.add("qmp2", "disconnected:unix:/tmp/q.sock,server=on", true);
        reg.add("n1", "null", false);
        let names: Vec<String> = reg.list().into_iter().map(|c| c.label).collect();
        assert_eq!(names, vec!["n1", "qmp2", "compat_monitor0"]);
        let a = sock.client_connected("unix:/tmp/q.sock,server=on".into());
        let b = sock.client_connected("second".into());
        assert_eq!(sock.info().filename, "unix:/tmp/q.sock,server=on");
        drop(a);
        assert_eq!(sock.info().filename, "second");
        drop(b);
        assert_eq!(sock.info().filename, "disconnected:unix:/tmp/q.sock,server=on");
        reg.remove("n1");
        assert_eq!(reg.list().len(), 2);
        assert!(!reg.list()[1].filename.is_empty());
    }
}
