//! The block graph: every node that has a name (given, or QEMU-style `#blockN`), the links
//! between them, and every drive. Shared by the command line (drives opened at start), the
//! devices (they hold a drive's [`BlockBackend`]), the block service (QMP block commands) and
//! the job threads.
//!
//! QEMU's model, reduced to what we run: a *format* node (`qcow2`, `raw`) is one
//! [`BlockNode`]; its `file` child is a *protocol* node (`file`) that is listed and named like
//! any node but does no I/O of its own; a format node's `backing` link is the block crate's
//! in-memory link ([`BlockNode::backing`]). A drive ([`BlockBackend`]) points at the top node of
//! a chain.
//!
//! Locking: `inner` guards the tables and is held only for short look-ups and edits.
//! [`BlockGraph::lock_ops`] serialises whole structural operations (blockdev-add/del, snapshots,
//! job start and finalisation, pivots); whoever changes links or swaps nodes holds it, so such
//! an operation sees a graph nobody else is rearranging. Lock order: ops, then a job's state,
//! then `inner`; a drive's request lock (see [`BlockBackend::drain`]) is taken under ops only.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, RwLockWriteGuard};

use block::{BlockNode, Format, OpenOptions};
use monitor::block::types::BlockdevDetectZeroesOptions;

use super::backend::BlockBackend;
use super::drive::DriveSpec;

/// What kind of node an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeDriver {
    /// A host file (protocol node).
    File,
    Raw,
    Qcow2,
}

impl NodeDriver {
    pub fn name(self) -> &'static str {
        match self {
            NodeDriver::File => "file",
            NodeDriver::Raw => "raw",
            NodeDriver::Qcow2 => "qcow2",
        }
    }

    pub fn of_format(f: Format) -> Self {
        match f {
            Format::Raw => NodeDriver::Raw,
            Format::Qcow2 => NodeDriver::Qcow2,
        }
    }
}

/// `cache.direct` / `cache.no-flush` of a node (reported by the queries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NodeCache {
    pub direct: bool,
    pub no_flush: bool,
}

/// One named node.
#[derive(Debug, Clone)]
pub struct NodeEntry {
    /// Creation order (the queries list newest first, as QEMU does).
    pub seq: u64,
    pub name: String,
    pub driver: NodeDriver,
    /// For format nodes the node itself; for protocol nodes a node whose host file is this
    /// file (used for its name, size and allocation only).
    pub node: Arc<BlockNode>,
    /// The protocol node below a format node.
    pub file_child: Option<String>,
    /// Added by `blockdev-add` / `-blockdev`: it stays until `blockdev-del`, even unused.
    pub monitor_owned: bool,
    /// What the queries report as `ro` (a backing file is read-only for its users even when
    /// its file is open for writing because a commit wrote into it).
    pub read_only: bool,
    pub cache: NodeCache,
    pub detect_zeroes: BlockdevDetectZeroesOptions,
}

impl NodeEntry {
    pub fn is_format(&self) -> bool {
        self.driver != NodeDriver::File
    }

    /// The file name the queries show (`file` member).
    pub fn filename(&self) -> String {
        match self.driver {
            NodeDriver::File => self.node.file().path().display().to_string(),
            _ => self.node.filename().to_string(),
        }
    }
}

/// A user of a node.
#[derive(Debug, Clone)]
pub enum Parent {
    /// A drive whose top is the node.
    Backend(Arc<BlockBackend>),
    /// A format node whose backing file is the node (its name).
    Overlay(String),
    /// A format node whose protocol child is the node (its name).
    FileOf(String),
}

#[derive(Default)]
struct Inner {
    nodes: Vec<NodeEntry>,
    backends: Vec<Arc<BlockBackend>>,
    next_seq: u64,
    next_auto: u64,
}

/// Nodes by name, drives in creation order.
#[derive(Default)]
pub struct BlockGraph {
    inner: Mutex<Inner>,
    ops: Mutex<()>,
}

/// QEMU's `id_wellformed`: a letter, then letters, digits, `-`, `.`, `_`.
pub fn id_wellformed(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

impl BlockGraph {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serialises structural operations (see the module doc).
    pub fn lock_ops(&self) -> MutexGuard<'_, ()> {
        self.ops.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh automatic node name, `#block` + a counter + two digits, as QEMU makes them.
    pub fn auto_name(&self) -> String {
        let mut g = self.lock();
        let n = g.next_auto;
        g.next_auto += 1;
        format!("#block{n}{:02}", (n * 37 + 11) % 100)
    }

    /// Checks a user-given node name as `bdrv_assign_node_name` does.
    pub fn check_new_name(&self, name: &str) -> Result<(), String> {
        if !id_wellformed(name) {
            return Err(format!("Invalid node-name: '{name}'"));
        }
        if name.len() >= 32 {
            return Err("Node name too long".into());
        }
        let g = self.lock();
        if g.backends.iter().any(|b| b.name() == name) {
            return Err(format!("node-name={name} is conflicting with a device id"));
        }
        if g.nodes.iter().any(|n| n.name == name) {
            return Err(format!("Duplicate nodes with node-name='{name}'"));
        }
        Ok(())
    }

    /// Refuses a second writable format node on an image a writable format node already has
    /// open (two writers would each cache the image's metadata and corrupt it). QEMU takes file
    /// locks for this; within one process the graph knows.
    pub fn check_write_lock(&self, path: &str, pending: &[NodeEntry]) -> Result<(), String> {
        let canon = |p: &str| std::fs::canonicalize(p).ok();
        let Some(me) = canon(path) else { return Ok(()) };
        let g = self.lock();
        let busy = g
            .nodes
            .iter()
            .chain(pending.iter())
            .filter(|e| e.is_format() && !e.node.read_only())
            .any(|e| canon(e.node.filename()).as_ref() == Some(&me));
        if busy { Err("Failed to get \"write\" lock".into()) } else { Ok(()) }
    }

    /// Registers entries (their `seq` is assigned here, in order); fails without adding any if a
    /// name is taken.
    pub fn add_entries(&self, entries: Vec<NodeEntry>) -> Result<(), String> {
        let mut g = self.lock();
        for (i, e) in entries.iter().enumerate() {
            if g.nodes.iter().any(|n| n.name == e.name) || entries[..i].iter().any(|o| o.name == e.name) {
                return Err(format!("Duplicate nodes with node-name='{}'", e.name));
            }
        }
        for mut e in entries {
            e.seq = g.next_seq;
            g.next_seq += 1;
            g.nodes.push(e);
        }
        Ok(())
    }

    /// Registers a node under `name` (a format node with no protocol child listed).
    pub fn add_node(&self, name: &str, node: Arc<BlockNode>) -> Result<(), String> {
        let read_only = node.read_only();
        self.add_entries(vec![NodeEntry {
            seq: 0,
            name: name.to_string(),
            driver: NodeDriver::of_format(node.format()),
            node,
            file_child: None,
            monitor_owned: false,
            read_only,
            cache: NodeCache::default(),
            detect_zeroes: BlockdevDetectZeroesOptions::Off,
        }])
    }

    pub fn remove_node(&self, name: &str) -> Option<Arc<BlockNode>> {
        let mut g = self.lock();
        let i = g.nodes.iter().position(|n| n.name == name)?;
        Some(g.nodes.remove(i).node)
    }

    pub fn entry(&self, name: &str) -> Option<NodeEntry> {
        self.lock().nodes.iter().find(|n| n.name == name).cloned()
    }

    pub fn node(&self, name: &str) -> Option<Arc<BlockNode>> {
        self.lock().nodes.iter().find(|n| n.name == name).map(|n| n.node.clone())
    }

    /// Every named node, newest first (the order of query-named-block-nodes).
    pub fn entries(&self) -> Vec<NodeEntry> {
        let mut v = self.lock().nodes.clone();
        v.sort_by_key(|e| std::cmp::Reverse(e.seq));
        v
    }

    /// Every named node with its node, ordered by name.
    pub fn nodes(&self) -> Vec<(String, Arc<BlockNode>)> {
        let mut v: Vec<_> = self.lock().nodes.iter().map(|n| (n.name.clone(), n.node.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The format entry of a node.
    pub fn entry_of(&self, node: &Arc<BlockNode>) -> Option<NodeEntry> {
        self.lock().nodes.iter().find(|n| n.is_format() && Arc::ptr_eq(&n.node, node)).cloned()
    }

    /// The name a format node is registered under, if any.
    pub fn name_of(&self, node: &Arc<BlockNode>) -> Option<String> {
        self.entry_of(node).map(|e| e.name)
    }

    /// Edits the format entry of `node`.
    pub fn update_entry(&self, node: &Arc<BlockNode>, f: impl FnOnce(&mut NodeEntry)) {
        let mut g = self.lock();
        if let Some(e) = g.nodes.iter_mut().find(|n| n.is_format() && Arc::ptr_eq(&n.node, node)) {
            f(e);
        }
    }

    /// Sets what the queries report as `ro` for a format node and its protocol node.
    pub fn set_read_only(&self, node: &Arc<BlockNode>, ro: bool) {
        let mut g = self.lock();
        let file = g
            .nodes
            .iter()
            .find(|n| n.is_format() && Arc::ptr_eq(&n.node, node))
            .and_then(|e| e.file_child.clone());
        for e in g.nodes.iter_mut() {
            if (e.is_format() && Arc::ptr_eq(&e.node, node)) || Some(&e.name) == file.as_ref() {
                e.read_only = ro;
            }
        }
    }

    /// Edits the entry called `name`.
    pub fn update_entry_by_name(&self, name: &str, f: impl FnOnce(&mut NodeEntry)) {
        if let Some(e) = self.lock().nodes.iter_mut().find(|n| n.name == name) {
            f(e);
        }
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

    /// A drive by its name (`drive0`, `virtio0`); anonymous drives have none.
    /// Takes a drive out of the graph (its nodes go with the next garbage collection).
    pub fn remove_backend(&self, backend: &Arc<BlockBackend>) {
        self.lock().backends.retain(|b| !Arc::ptr_eq(b, backend));
    }

    pub fn backend(&self, name: &str) -> Option<Arc<BlockBackend>> {
        self.lock().backends.iter().find(|b| !b.name().is_empty() && b.name() == name).cloned()
    }

    pub fn backends(&self) -> Vec<Arc<BlockBackend>> {
        self.lock().backends.clone()
    }

    /// The drive a device names with `drive=`: a drive name, or a node name, for which an
    /// anonymous drive is created over the node (as QEMU does for `-blockdev` + `-device`).
    pub fn backend_for_device(&self, drive: &str) -> Result<Arc<BlockBackend>, String> {
        if let Some(b) = self.backend(drive) {
            return Ok(b);
        }
        let _ops = self.lock_ops();
        let Some(e) = self.entry(drive).filter(NodeEntry::is_format) else {
            return Err(format!("Property 'virtio-blk-device.drive' can't find value '{drive}'"));
        };
        if self.backends().iter().any(|b| Arc::ptr_eq(&b.root(), &e.node)) {
            return Err(format!("Node '{drive}' is already in use by another drive"));
        }
        if !self.overlays_of(&e.node).is_empty() {
            return Err(format!("Node '{drive}' is busy: node is used as backing hd of another node"));
        }
        let b = Arc::new(BlockBackend::new("", e.node.clone(), e.read_only, false, e.cache.no_flush));
        self.add_backend(b.clone())?;
        Ok(b)
    }

    /// QEMU's `bdrv_lookup_bs`: a drive name (its top node) or a node name.
    pub fn lookup(&self, device: Option<&str>, node_name: Option<&str>) -> Result<NodeEntry, String> {
        if let Some(d) = device
            && let Some(b) = self.backend(d)
        {
            let root = b.root();
            return self.entry_of(&root).ok_or_else(|| format!("Device '{d}' has no medium"));
        }
        if let Some(n) = node_name
            && let Some(e) = self.entry(n)
        {
            return Ok(e);
        }
        Err(format!(
            "Cannot find device='{}' nor node-name='{}'",
            device.unwrap_or(""),
            node_name.unwrap_or("")
        ))
    }

    /// Format nodes whose backing file is `node`.
    pub fn overlays_of(&self, node: &Arc<BlockNode>) -> Vec<NodeEntry> {
        self.lock()
            .nodes
            .iter()
            .filter(|n| n.is_format() && n.node.backing().is_some_and(|b| Arc::ptr_eq(&b, node)))
            .cloned()
            .collect()
    }

    /// Drives whose top node is `node`.
    pub fn backends_of(&self, node: &Arc<BlockNode>) -> Vec<Arc<BlockBackend>> {
        self.backends().into_iter().filter(|b| Arc::ptr_eq(&b.root(), node)).collect()
    }

    /// Drives whose chain contains `node`.
    pub fn backends_over(&self, node: &Arc<BlockNode>) -> Vec<Arc<BlockBackend>> {
        self.backends()
            .into_iter()
            .filter(|b| b.root().chain().iter().any(|n| Arc::ptr_eq(n, node)))
            .collect()
    }

    /// Every user of a node.
    pub fn parents(&self, entry: &NodeEntry) -> Vec<Parent> {
        let mut v: Vec<Parent> = Vec::new();
        if entry.is_format() {
            v.extend(self.backends_of(&entry.node).into_iter().map(Parent::Backend));
            v.extend(self.overlays_of(&entry.node).into_iter().map(|e| Parent::Overlay(e.name)));
        } else {
            let g = self.lock();
            v.extend(
                g.nodes
                    .iter()
                    .filter(|n| n.file_child.as_deref() == Some(entry.name.as_str()))
                    .map(|n| Parent::FileOf(n.name.clone())),
            );
        }
        v
    }

    /// Whether a node is a root (QEMU's `bdrv_is_root_node`): no node uses it.
    pub fn is_root(&self, entry: &NodeEntry) -> bool {
        self.parents(entry).iter().all(|p| matches!(p, Parent::Backend(_)))
    }

    /// QEMU's `bdrv_get_device_name`: the name of the drive whose top is the node, else "".
    pub fn device_name(&self, node: &Arc<BlockNode>) -> String {
        self.backends_of(node)
            .into_iter()
            .map(|b| b.name().to_string())
            .find(|n| !n.is_empty())
            .unwrap_or_default()
    }

    /// QEMU's `bdrv_get_device_or_node_name`.
    pub fn device_or_node_name(&self, entry: &NodeEntry) -> String {
        let d = if entry.is_format() { self.device_name(&entry.node) } else { String::new() };
        if d.is_empty() { entry.name.clone() } else { d }
    }

    /// The "node is used as backing hd of 'X'" blocker of a backing node.
    pub fn backing_blocker(&self, entry: &NodeEntry) -> Option<String> {
        if !entry.is_format() {
            return None;
        }
        let overlay = self.overlays_of(&entry.node).into_iter().next()?;
        Some(format!("node is used as backing hd of '{}'", self.device_or_node_name(&overlay)))
    }

    /// The protocol-node entry below a format node.
    pub fn file_of(&self, entry: &NodeEntry) -> Option<NodeEntry> {
        entry.file_child.as_deref().and_then(|n| self.entry(n))
    }

    /// Replaces `old` by `new` everywhere: entries, overlays' backing links, drives' tops. The
    /// caller holds the ops lock and has drained the drives over `old` (or no I/O can reach it).
    pub fn replace_node(&self, old: &Arc<BlockNode>, new: &Arc<BlockNode>, drained: &mut [DrainGuard<'_>]) {
        for o in self.overlays_of(old) {
            o.node.set_backing_node(Some(new.clone()));
        }
        for g in drained.iter_mut() {
            if Arc::ptr_eq(&g.root, old) {
                *g.root = new.clone();
            }
        }
        let mut g = self.lock();
        for e in g.nodes.iter_mut() {
            if Arc::ptr_eq(&e.node, old) {
                e.node = new.clone();
            }
        }
    }

    /// Drops every node nothing holds any more: not reachable from a drive, from a node the
    /// monitor owns, or from `keep` (the nodes running jobs use), through backing and file links.
    /// Dropped nodes are flushed first (their cached metadata reaches the file).
    pub fn collect_garbage(&self, keep: &[Arc<BlockNode>]) {
        let backends = self.backends();
        let removed: Vec<NodeEntry> = {
            let mut g = self.lock();
            let mut live: HashSet<String> = HashSet::new();
            let mut stack: Vec<String> = Vec::new();
            let by_node = |nodes: &[NodeEntry], n: &Arc<BlockNode>| -> Option<String> {
                nodes.iter().find(|e| e.is_format() && Arc::ptr_eq(&e.node, n)).map(|e| e.name.clone())
            };
            for b in &backends {
                if let Some(n) = by_node(&g.nodes, &b.root()) {
                    stack.push(n);
                }
            }
            for k in keep {
                if let Some(n) = by_node(&g.nodes, k) {
                    stack.push(n);
                }
            }
            stack.extend(g.nodes.iter().filter(|e| e.monitor_owned).map(|e| e.name.clone()));
            while let Some(name) = stack.pop() {
                if !live.insert(name.clone()) {
                    continue;
                }
                let Some(e) = g.nodes.iter().find(|e| e.name == name) else { continue };
                if let Some(f) = &e.file_child {
                    stack.push(f.clone());
                }
                if e.is_format()
                    && let Some(b) = e.node.backing()
                    && let Some(n) = by_node(&g.nodes, &b)
                {
                    stack.push(n);
                }
            }
            let (keep_nodes, gone): (Vec<NodeEntry>, Vec<NodeEntry>) =
                std::mem::take(&mut g.nodes).into_iter().partition(|e| live.contains(&e.name));
            g.nodes = keep_nodes;
            gone
        };
        for e in removed.iter().filter(|e| e.is_format()) {
            if let Err(err) = e.node.flush() {
                tracing::warn!("flushing node '{}' before closing it: {err}", e.name);
            }
        }
    }

    /// Flushes every node (at exit: cached qcow2 metadata reaches the files).
    pub fn flush_all(&self) -> Result<(), String> {
        let mut first_err = None;
        for e in self.entries().iter().filter(|e| e.is_format()) {
            if let Err(err) = e.node.flush() {
                first_err.get_or_insert(format!("Failed to flush node '{}': {err}", e.name));
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Drains the given drives (every request in flight finishes, new ones wait) until the
    /// guards are dropped. Drives are locked in graph order, so two drainers cannot deadlock.
    pub fn drain<'a>(&self, backends: &'a [Arc<BlockBackend>]) -> Vec<DrainGuard<'a>> {
        backends.iter().map(|b| DrainGuard { backend: b, root: b.drain() }).collect()
    }

    /// Opens an image with its backing chain and registers every node it opened that is not
    /// registered yet (a protocol node and a format node per layer, auto-named except the top
    /// when `top_name` is given). Returns the top node.
    pub fn open_chain(
        &self,
        path: &str,
        opts: &OpenOptions,
        top_name: Option<&str>,
        cache: NodeCache,
        detect_zeroes: BlockdevDetectZeroesOptions,
    ) -> Result<Arc<BlockNode>, String> {
        if !opts.read_only {
            self.check_write_lock(path, &[])?;
        }
        let top = BlockNode::open(path, opts).map_err(|e| e.to_string())?;
        let mut entries = Vec::new();
        for (i, node) in top.chain().into_iter().enumerate() {
            if i > 0 && self.entry_of(&node).is_some() {
                break;
            }
            let file_name = self.auto_name();
            let name = match (i, top_name) {
                (0, Some(n)) => n.to_string(),
                _ => self.auto_name(),
            };
            let read_only = node.read_only();
            entries.push(NodeEntry {
                seq: 0,
                name: file_name.clone(),
                driver: NodeDriver::File,
                node: node.clone(),
                file_child: None,
                monitor_owned: false,
                read_only,
                cache,
                detect_zeroes,
            });
            entries.push(NodeEntry {
                seq: 0,
                name,
                driver: NodeDriver::of_format(node.format()),
                node,
                file_child: Some(file_name),
                monitor_owned: false,
                read_only,
                cache,
                detect_zeroes,
            });
        }
        self.add_entries(entries)?;
        Ok(top)
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
        if let Some(n) = &spec.node_name {
            self.check_new_name(n)?;
        }
        if self.backend(&spec.name).is_some() {
            return Err(format!("Duplicate ID '{}' for drive", spec.name));
        }
        let _ops = self.lock_ops();
        let opts = OpenOptions { format: spec.format, read_only: spec.read_only, ..Default::default() };
        let cache = NodeCache { direct: spec.cache.direct, no_flush: spec.cache.no_flush };
        let top = self.open_chain(
            &spec.file,
            &opts,
            spec.node_name.as_deref(),
            cache,
            BlockdevDetectZeroesOptions::Off,
        )?;
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

/// A drained drive (see [`BlockGraph::drain`]): its top can be replaced through `root`.
pub struct DrainGuard<'a> {
    pub backend: &'a Arc<BlockBackend>,
    pub root: RwLockWriteGuard<'a, Arc<BlockNode>>,
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
        let entries = g.entries();
        assert_eq!(entries.len(), 2, "a format node and its file node");
        assert_eq!(entries[0].name, "n0");
        assert_eq!(entries[1].driver, NodeDriver::File);
        assert_eq!(g.lookup(Some("drive0"), None).unwrap().name, "n0");
        assert_eq!(g.lookup(None, Some("n0")).unwrap().name, "n0");
        assert_eq!(g.lookup(Some("nope"), None).unwrap_err(), "Cannot find device='nope' nor node-name=''");
        let spec2 = namer.drive(&format!("file={},format=raw,if=none,id=drive0", base.display())).unwrap();
        assert_eq!(g.open_drive(&spec2).unwrap_err(), "Duplicate ID 'drive0' for drive");
        let missing = namer.drive("file=/nonexistent/x.img,format=raw,if=none,id=d9").unwrap();
        assert!(g.open_drive(&missing).unwrap_err().contains("/nonexistent/x.img"));
        assert_eq!(
            g.check_new_name("drive0").unwrap_err(),
            "node-name=drive0 is conflicting with a device id"
        );
        assert_eq!(g.check_new_name("n0").unwrap_err(), "Duplicate nodes with node-name='n0'");
        assert_eq!(g.check_new_name("0x").unwrap_err(), "Invalid node-name: '0x'");
    }

    #[test]
    fn garbage_is_what_nothing_holds() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.img");
        std::fs::write(&base, vec![7u8; 1 << 20]).unwrap();
        let g = BlockGraph::new();
        let opts = OpenOptions { format: Some(Format::Raw), ..Default::default() };
        let node = g
            .open_chain(base.to_str().unwrap(), &opts, Some("n"), NodeCache::default(), Default::default())
            .unwrap();
        g.collect_garbage(std::slice::from_ref(&node));
        assert_eq!(g.entries().len(), 2);
        g.collect_garbage(&[]);
        assert!(g.entries().is_empty());
    }
}
