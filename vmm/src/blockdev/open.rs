//! `blockdev-add` and `-blockdev`: opening the nodes a [`BlockdevOptions`] tree describes.
//!
//! Everything is opened first and registered in the graph at the end, so a failure leaves the
//! graph as it was. Supported: `file` (protocol node), `raw` and `qcow2` over a `file` node
//! (nested or referenced by name), qcow2 `backing` opened from the image header (absent), none
//! (`null`), an existing node (a name) or nested options. Options that tune QEMU's caches,
//! locking or AIO engine are accepted and have no effect here.

use std::sync::Arc;

use block::{Backing, BlockNode, Format, OpenOptions};
use monitor::block::types::{
    BlockdevDetectZeroesOptions, BlockdevOptions, BlockdevOptionsBase, BlockdevRef, BlockdevRefOrNull,
};

use super::graph::{BlockGraph, NodeCache, NodeDriver, NodeEntry, Parent};

/// Nodes opened for one `blockdev-add`, not registered yet.
struct Plan<'g> {
    graph: &'g BlockGraph,
    entries: Vec<NodeEntry>,
    /// Protocol nodes this add uses as a format node's file (each may serve one).
    used_files: Vec<String>,
}

fn cache_of(base: &BlockdevOptionsBase) -> NodeCache {
    let c = base.cache.unwrap_or_default();
    NodeCache { direct: c.direct.unwrap_or(false), no_flush: c.no_flush.unwrap_or(false) }
}

fn detect_zeroes_of(base: &BlockdevOptionsBase) -> BlockdevDetectZeroesOptions {
    base.detect_zeroes.unwrap_or_default()
}

/// Every node name the tree gives, in order.
fn given_names(o: &BlockdevOptions, out: &mut Vec<String>) {
    if let Some(n) = &o.base().node_name {
        out.push(n.clone());
    }
    let (file, backing) = match o {
        BlockdevOptions::File(_) => (None, None),
        BlockdevOptions::Raw(r) => (Some(&r.file), None),
        BlockdevOptions::Qcow2(q) => (Some(&q.file), q.backing.as_ref()),
    };
    if let Some(BlockdevRef::Definition(d)) = file {
        given_names(d, out);
    }
    if let Some(BlockdevRefOrNull::Definition(d)) = backing {
        given_names(d, out);
    }
}

/// `blockdev-add` (and `-blockdev`): the top node must be named; the nodes are monitor-owned.
pub fn blockdev_add(graph: &BlockGraph, opts: &BlockdevOptions) -> Result<(), String> {
    if opts.base().node_name.is_none() {
        return Err("'node-name' must be specified for the root node".into());
    }
    let mut names = Vec::new();
    given_names(opts, &mut names);
    for (i, n) in names.iter().enumerate() {
        graph.check_new_name(n)?;
        if names[..i].contains(n) {
            return Err(format!("Duplicate nodes with node-name='{n}'"));
        }
    }
    let mut plan = Plan { graph, entries: Vec::new(), used_files: Vec::new() };
    plan.open(opts, false)?;
    if let Some(top) = plan.entries.iter_mut().find(|e| Some(&e.name) == opts.base().node_name.as_ref()) {
        top.monitor_owned = true;
    }
    // Nested nodes given a name by the user are theirs too (blockdev-del can remove them).
    for e in plan.entries.iter_mut() {
        if names.contains(&e.name) {
            e.monitor_owned = true;
        }
    }
    graph.add_entries(plan.entries)
}

impl Plan<'_> {
    fn name_for(&self, base: &BlockdevOptionsBase) -> String {
        base.node_name.clone().unwrap_or_else(|| self.graph.auto_name())
    }

    /// Opens one node of the tree (and its children); returns its entry's index in `entries`.
    fn open(&mut self, o: &BlockdevOptions, parent_ro: bool) -> Result<usize, String> {
        let base = o.base();
        let read_only = base.read_only.unwrap_or(parent_ro);
        match o {
            BlockdevOptions::File(f) => {
                let opts = OpenOptions { format: Some(Format::Raw), read_only, backing: Backing::None };
                let node = BlockNode::open(&f.filename, &opts).map_err(|e| e.to_string())?;
                let name = self.name_for(base);
                self.entries.push(NodeEntry {
                    seq: 0,
                    name,
                    driver: NodeDriver::File,
                    node,
                    file_child: None,
                    monitor_owned: false,
                    read_only,
                    cache: cache_of(base),
                    detect_zeroes: detect_zeroes_of(base),
                });
                Ok(self.entries.len() - 1)
            }
            BlockdevOptions::Raw(r) => {
                if r.offset.is_some() || r.size.is_some() {
                    return Err("The raw driver's 'offset' and 'size' options are not supported".into());
                }
                let (file_name, path) = self.file_child(&r.file, read_only, "raw")?;
                if !read_only {
                    self.graph.check_write_lock(&path, &self.entries)?;
                }
                let opts = OpenOptions { format: Some(Format::Raw), read_only, backing: Backing::None };
                let node = BlockNode::open(&path, &opts).map_err(|e| e.to_string())?;
                self.push_format(base, node, file_name, read_only)
            }
            BlockdevOptions::Qcow2(q) => {
                let (file_name, path) = self.file_child(&q.file, read_only, "qcow2")?;
                if !read_only {
                    self.graph.check_write_lock(&path, &self.entries)?;
                }
                let (backing, nested) = match &q.backing {
                    None => (Backing::FromHeader, None),
                    Some(BlockdevRefOrNull::Null(())) => (Backing::None, None),
                    Some(BlockdevRefOrNull::Reference(n)) => {
                        let e = self.existing(n)?;
                        if !e.is_format() {
                            return Err(format!(
                                "Node '{n}' is not a format node and cannot be a backing file"
                            ));
                        }
                        (Backing::Node(e.node), None)
                    }
                    Some(BlockdevRefOrNull::Definition(d)) => {
                        // Opened before the overlay (which needs it), listed after it.
                        let mark = self.entries.len();
                        let i = self.open(d, true)?;
                        let node = self.entries[i].node.clone();
                        let opened: Vec<NodeEntry> = self.entries.drain(mark..).collect();
                        (Backing::Node(node), Some(opened))
                    }
                };
                let from_header = matches!(backing, Backing::FromHeader);
                let opts = OpenOptions { format: Some(Format::Qcow2), read_only, backing };
                let node = BlockNode::open(&path, &opts).map_err(|e| e.to_string())?;
                let idx = self.push_format(base, node.clone(), file_name, read_only)?;
                if let Some(opened) = nested {
                    self.entries.extend(opened);
                }
                if from_header {
                    self.register_header_chain(&node);
                }
                Ok(idx)
            }
        }
    }

    fn push_format(
        &mut self,
        base: &BlockdevOptionsBase,
        node: Arc<BlockNode>,
        file_child: String,
        read_only: bool,
    ) -> Result<usize, String> {
        let name = self.name_for(base);
        self.entries.push(NodeEntry {
            seq: 0,
            name,
            driver: NodeDriver::of_format(node.format()),
            node,
            file_child: Some(file_child),
            monitor_owned: false,
            read_only,
            cache: cache_of(base),
            detect_zeroes: detect_zeroes_of(base),
        });
        Ok(self.entries.len() - 1)
    }

    /// The backing files a qcow2 node opened from its header: a protocol and a format node per
    /// layer, read-only, auto-named.
    fn register_header_chain(&mut self, top: &Arc<BlockNode>) {
        for node in top.chain().into_iter().skip(1) {
            let file = self.graph.auto_name();
            let name = self.graph.auto_name();
            for (n, driver, child) in [
                (file.clone(), NodeDriver::File, None),
                (name, NodeDriver::of_format(node.format()), Some(file)),
            ] {
                self.entries.push(NodeEntry {
                    seq: 0,
                    name: n,
                    driver,
                    node: node.clone(),
                    file_child: child,
                    monitor_owned: false,
                    read_only: true,
                    cache: NodeCache::default(),
                    detect_zeroes: BlockdevDetectZeroesOptions::Off,
                });
            }
        }
    }

    /// A node named in the options: one opened by this add, or one in the graph.
    fn existing(&self, name: &str) -> Result<NodeEntry, String> {
        if let Some(e) = self.entries.iter().find(|e| e.name == name) {
            return Ok(e.clone());
        }
        self.graph.entry(name).ok_or_else(|| format!("Cannot find device='{name}' nor node-name='{name}'"))
    }

    /// The protocol node below a format node: its name and host path.
    fn file_child(
        &mut self,
        r: &BlockdevRef,
        read_only: bool,
        driver: &str,
    ) -> Result<(String, String), String> {
        let e = match r {
            BlockdevRef::Definition(d) => {
                if !matches!(**d, BlockdevOptions::File(_)) {
                    return Err(format!(
                        "A '{driver}' node over a '{}' node is not supported (its file must be a 'file' node)",
                        d.driver()
                    ));
                }
                let i = self.open(d, read_only)?;
                self.entries[i].clone()
            }
            BlockdevRef::Reference(n) => {
                let e = self.existing(n)?;
                if e.driver != NodeDriver::File {
                    return Err(format!(
                        "A '{driver}' node over a '{}' node is not supported (its file must be a 'file' node)",
                        e.driver.name()
                    ));
                }
                let users = self.graph.parents(&e);
                if let Some(Parent::FileOf(user)) = users.first() {
                    return Err(format!(
                        "Conflicts with use by node '{user}' as 'file', which does not allow 'write' on {n}"
                    ));
                }
                if self.used_files.contains(n) {
                    return Err(format!("Conflicts with use as 'file', which does not allow 'write' on {n}"));
                }
                if e.read_only && !read_only {
                    return Err(format!("Block node '{n}' is read-only"));
                }
                e
            }
        };
        self.used_files.push(e.name.clone());
        let path = e.filename();
        Ok((e.name, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn opts(v: serde_json::Value) -> BlockdevOptions {
        serde_json::from_value(v).unwrap()
    }

    fn qemu_img(args: &[&str]) {
        let ok = std::process::Command::new("qemu-img")
            .args(args)
            .stdout(std::process::Stdio::null())
            .status()
            .expect("qemu-img is needed (apt-get install qemu-utils)")
            .success();
        assert!(ok, "qemu-img {args:?}");
    }

    #[test]
    fn nested_referenced_and_header_backings() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        qemu_img(&["create", "-q", "-f", "qcow2", &format!("{d}/base.qcow2"), "1M"]);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            &format!("{d}/base.qcow2"),
            "-F",
            "qcow2",
            &format!("{d}/top.qcow2"),
        ]);
        let g = BlockGraph::new();
        blockdev_add(
            &g,
            &opts(json!({"driver": "file", "node-name": "f0", "filename": format!("{d}/base.qcow2")})),
        )
        .unwrap();
        blockdev_add(&g, &opts(json!({"driver": "qcow2", "node-name": "base", "file": "f0"}))).unwrap();
        assert_eq!(
            blockdev_add(&g, &opts(json!({"driver": "qcow2", "node-name": "again", "file": "f0"})))
                .unwrap_err(),
            "Conflicts with use by node 'base' as 'file', which does not allow 'write' on f0"
        );
        // backing given by name
        blockdev_add(
            &g,
            &opts(json!({"driver": "qcow2", "node-name": "top", "backing": "base",
                "file": {"driver": "file", "filename": format!("{d}/top.qcow2")}})),
        )
        .unwrap();
        let top = g.entry("top").unwrap();
        assert!(Arc::ptr_eq(&top.node.backing().unwrap(), &g.node("base").unwrap()));
        // a second writer on the same image is refused
        let e = blockdev_add(
            &g,
            &opts(json!({"driver": "qcow2", "node-name": "top2",
                "file": {"driver": "file", "filename": format!("{d}/top.qcow2")}})),
        )
        .unwrap_err();
        assert_eq!(e, "Failed to get \"write\" lock");
        // backing from the header: two more auto-named nodes
        let before = g.entries().len();
        blockdev_add(
            &g,
            &opts(json!({"driver": "qcow2", "node-name": "top2", "read-only": true,
                "file": {"driver": "file", "filename": format!("{d}/top.qcow2")}})),
        )
        .unwrap();
        assert_eq!(g.entries().len(), before + 4);
        // no backing
        blockdev_add(
            &g,
            &opts(json!({"driver": "qcow2", "node-name": "top3", "backing": null, "read-only": true,
                "file": {"driver": "file", "filename": format!("{d}/top.qcow2")}})),
        )
        .unwrap();
        assert!(g.node("top3").unwrap().backing().is_none());
        let e = blockdev_add(&g, &opts(json!({"driver": "file", "filename": "/x"}))).unwrap_err();
        assert_eq!(e, "'node-name' must be specified for the root node");
        let e = blockdev_add(&g, &opts(json!({"driver": "file", "node-name": "top", "filename": "/x"})))
            .unwrap_err();
        assert_eq!(e, "Duplicate nodes with node-name='top'");
        let e = blockdev_add(
            &g,
            &opts(json!({"driver": "file", "node-name": "m", "filename": "/nonexistent/x.img"})),
        )
        .unwrap_err();
        assert_eq!(e, "Could not open '/nonexistent/x.img': No such file or directory");
        let e = blockdev_add(&g, &opts(json!({"driver": "qcow2", "node-name": "q", "file": "nope"})))
            .unwrap_err();
        assert_eq!(e, "Cannot find device='nope' nor node-name='nope'");
    }
}
