//! The block graph: every open node that has a name (given, or QEMU-style `#blockN`), and every
//! drive. Shared by the command line (drives opened at start), the devices (they hold a drive's
//! [`BlockBackend`]) and the control loop (QMP block commands, jobs).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use block::{BlockNode, Format, OpenOptions};

use super::backend::BlockBackend;
use super::drive::DriveSpec;

#[derive(Default)]
struct Inner {
    nodes: BTreeMap<String, Arc<BlockNode>>,
    backends: Vec<Arc<BlockBackend>>,
    next_auto: u32,
}

/// Nodes by name, drives in creation order.
#[derive(Default)]
pub struct BlockGraph {
    inner: Mutex<Inner>,
}

impl BlockGraph {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh automatic node name (`#block123`, as QEMU names anonymous nodes).
    pub fn auto_name(&self) -> String {
        let mut g = self.lock();
        g.next_auto += 1;
        format!("#block{}", 100 + g.next_auto)
    }

    /// Registers a node under `name`; QEMU's text if the name is taken.
    pub fn add_node(&self, name: &str, node: Arc<BlockNode>) -> Result<(), String> {
        let mut g = self.lock();
        if g.nodes.contains_key(name) {
            return Err(format!("Duplicate nodes with node-name='{name}'"));
        }
        g.nodes.insert(name.to_string(), node);
        Ok(())
    }

    pub fn remove_node(&self, name: &str) -> Option<Arc<BlockNode>> {
        self.lock().nodes.remove(name)
    }

    pub fn node(&self, name: &str) -> Option<Arc<BlockNode>> {
        self.lock().nodes.get(name).cloned()
    }

    /// Every named node, ordered by name.
    pub fn nodes(&self) -> Vec<(String, Arc<BlockNode>)> {
        self.lock().nodes.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The name a node is registered under, if any.
    pub fn name_of(&self, node: &Arc<BlockNode>) -> Option<String> {
        self.lock().nodes.iter().find(|(_, n)| Arc::ptr_eq(n, node)).map(|(k, _)| k.clone())
    }

    /// Registers a drive; QEMU's text if the name is taken.
    pub fn add_backend(&self, backend: Arc<BlockBackend>) -> Result<(), String> {
        let mut g = self.lock();
        if !backend.name().is_empty() && g.backends.iter().any(|b| b.name() == backend.name()) {
            return Err(format!("Duplicate ID '{}' for drive", backend.name()));
        }
        g.backends.push(backend);
        Ok(())
    }

    pub fn backend(&self, name: &str) -> Option<Arc<BlockBackend>> {
        self.lock().backends.iter().find(|b| !b.name().is_empty() && b.name() == name).cloned()
    }

    pub fn backends(&self) -> Vec<Arc<BlockBackend>> {
        self.lock().backends.clone()
    }

    /// Opens a `-drive`/`-hda` image with its backing chain, names every node of the chain, and
    /// registers the drive.
    pub fn open_drive(&self, spec: &DriveSpec) -> Result<Arc<BlockBackend>, String> {
        if spec.format.is_none() && matches!(Format::probe(std::path::Path::new(&spec.file)), Ok(Format::Raw))
        {
            eprintln!(
                "vmm: WARNING: Image format was not specified for '{}' and probing guessed raw.\n         \
                     Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.\n         \
                     Specify the 'raw' format explicitly to remove the restrictions.",
                spec.file
            );
        }
        let opts = OpenOptions { format: spec.format, read_only: spec.read_only, ..Default::default() };
        let top = BlockNode::open(&spec.file, &opts).map_err(|e| e.to_string())?;
        let chain = top.chain();
        for (i, node) in chain.iter().enumerate() {
            let name = match (i, &spec.node_name) {
                (0, Some(n)) => n.clone(),
                _ => self.auto_name(),
            };
            self.add_node(&name, node.clone())?;
        }
        let backend = Arc::new(BlockBackend::new(
            &spec.name,
            top,
            spec.read_only,
            spec.cache.writethrough,
            spec.cache.no_flush,
        ));
        self.add_backend(backend.clone())?;
        Ok(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blockdev::drive::DriveNamer;

    #[test]
    fn drives_and_chains_are_registered() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.img");
        std::fs::write(&base, vec![7u8; 1 << 20]).unwrap();
        let mut namer = DriveNamer::default();
        let g = BlockGraph::new();
        let spec = namer
            .drive(&format!("file={},format=raw,if=none,id=drive0,node-name=n0", base.display()))
            .unwrap();
        let b = g.open_drive(&spec).unwrap();
        assert_eq!(b.name(), "drive0");
        assert!(g.node("n0").is_some());
        assert!(g.backend("drive0").is_some());
        let spec2 = namer.drive(&format!("file={},format=raw,if=none,id=drive0", base.display())).unwrap();
        assert_eq!(g.open_drive(&spec2).unwrap_err(), "Duplicate ID 'drive0' for drive");
        let missing = namer.drive("file=/nonexistent/x.img,format=raw,if=none,id=d9").unwrap();
        assert!(g.open_drive(&missing).unwrap_err().contains("/nonexistent/x.img"));
    }
}
