//! Starting jobs: `block-stream` and `block-commit`, with QEMU's checks in QEMU's order
//! (`blockdev.c`: `qmp_block_stream`, `qmp_block_commit`) and its texts. Also the helpers other
//! commands share: op blockers ("Node 'x' is busy: ..."), finding a backing file by name, and
//! reopening a read-only node read-write (a new node swapped in for the old one while the drives
//! over it are drained).

use std::path::Path;
use std::sync::Arc;

use block::{Backing, BlockNode, OpenOptions};
use monitor::block::Kick;
use monitor::block::types::{BlockCommitArgs, BlockStreamArgs, JobType};
use monitor::control::ControlError;

use super::graph::{BlockGraph, NodeEntry};
use super::jobs::commit::{ActiveCommitJob, CommitJob};
use super::jobs::stream::StreamJob;
use super::jobs::{JobManager, JobSpec};

/// "Node 'x' is busy: ..." for a node a running job uses, or (`backing`: for operations a backing
/// link forbids) one that is another node's backing file.
pub fn blocker(graph: &BlockGraph, jobs: &JobManager, e: &NodeEntry, backing: bool) -> Option<String> {
    let name = graph.device_or_node_name(e);
    if let Some(job) = jobs.covering(&e.node) {
        return Some(format!(
            "Node '{name}' is busy: block device is in use by block job: {}",
            job.kind.as_str()
        ));
    }
    if backing && let Some(r) = graph.backing_blocker(e) {
        return Some(format!("Node '{name}' is busy: {r}"));
    }
    None
}

fn same_file(a: &str, b: &str) -> bool {
    a == b
        || match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
}

/// QEMU's `bdrv_find_backing_image`: the node below `top` that `name` designates (its file name,
/// or the backing file name its overlay records).
pub fn find_backing_image(top: &Arc<BlockNode>, name: &str) -> Option<Arc<BlockNode>> {
    let chain = top.chain();
    for pair in chain.windows(2) {
        let (over, under) = (&pair[0], &pair[1]);
        let recorded = over.backing_name();
        if same_file(under.filename(), name) || recorded.as_deref() == Some(name) {
            return Some(under.clone());
        }
        if let Some(r) = recorded {
            let full = block::node::combine_backing_path(over.filename(), &r);
            let name_full = match Path::new(name).is_absolute() {
                true => name.to_string(),
                false => block::node::combine_backing_path(over.filename(), name),
            };
            if same_file(&full, &name_full) {
                return Some(under.clone());
            }
        }
    }
    None
}

/// Makes a read-only node writable: opens it again read-write (same backing link) and replaces
/// the old node everywhere while the drives over it are drained. Returns the writable node.
pub fn reopen_rw(graph: &BlockGraph, node: &Arc<BlockNode>) -> Result<Arc<BlockNode>, String> {
    if !node.read_only() {
        return Ok(node.clone());
    }
    let opts = OpenOptions {
        format: Some(node.format()),
        read_only: false,
        backing: match node.backing() {
            Some(b) => Backing::Node(b),
            None => Backing::None,
        },
    };
    let new = BlockNode::open(node.filename(), &opts).map_err(|e| e.to_string())?;
    let backends = graph.backends_over(node);
    let mut guards = graph.drain(&backends);
    graph.replace_node(node, &new, &mut guards);
    Ok(new)
}

fn check_job_id(jobs: &JobManager, id: &str) -> Result<(), String> {
    if !super::graph::id_wellformed(id) {
        return Err(format!("Invalid job ID '{id}'"));
    }
    if jobs.find(id).is_some() {
        return Err(format!("Job ID '{id}' already in use"));
    }
    Ok(())
}

fn contains(chain: &[Arc<BlockNode>], n: &Arc<BlockNode>) -> bool {
    chain.iter().any(|c| Arc::ptr_eq(c, n))
}

/// `block-stream`. The caller holds the graph's ops lock.
pub fn start_stream(
    graph: &BlockGraph,
    jobs: &Arc<JobManager>,
    a: BlockStreamArgs,
    workers: usize,
) -> Result<Kick, String> {
    let bs = graph.lookup(Some(&a.device), Some(&a.device))?;
    if !bs.is_format() {
        return Err(format!("Node '{}' is a protocol node; streaming needs a format node", bs.name));
    }
    if a.base.is_some() && a.base_node.is_some() {
        return Err("'base' and 'base-node' cannot be specified at the same time".into());
    }
    if a.base.is_some() && a.bottom.is_some() {
        return Err("'base' and 'bottom' cannot be specified at the same time".into());
    }
    if a.bottom.is_some() && a.base_node.is_some() {
        return Err("'bottom' and 'base-node' cannot be specified at the same time".into());
    }
    let chain = bs.node.chain();
    let mut base: Option<Arc<BlockNode>> = None;
    if let Some(b) = &a.base {
        base = Some(
            find_backing_image(&bs.node, b)
                .ok_or_else(|| format!("Can't find '{b}' in the backing chain"))?,
        );
    }
    if let Some(bn) = &a.base_node {
        let e = graph.lookup(None, Some(bn))?;
        if Arc::ptr_eq(&e.node, &bs.node) || !contains(&chain[1..], &e.node) || !e.is_format() {
            return Err(format!("Node '{bn}' is not a backing image of '{}'", a.device));
        }
        base = Some(e.node);
    }
    if let Some(bt) = &a.bottom {
        let e = graph.lookup(None, Some(bt))?;
        if !e.is_format() || !contains(&chain[1..], &e.node) {
            return Err(format!("Node '{bt}' is not in a chain starting from '{}'", a.device));
        }
        base = e.node.backing();
    }
    for n in chain.iter().take_while(|n| base.as_ref().is_none_or(|b| !Arc::ptr_eq(n, b))) {
        if let Some(e) = graph.entry_of(n)
            && let Some(msg) = blocker(graph, jobs, &e, false)
        {
            return Err(msg);
        }
    }
    if base.is_none() && a.backing_file.is_some() {
        return Err("backing file specified, but streaming the entire chain".into());
    }
    let speed = a.speed.unwrap_or(0);
    if speed < 0 {
        return Err("Invalid parameter 'speed'".into());
    }
    let id = a.job_id.clone().unwrap_or_else(|| graph.device_name(&bs.node));
    check_job_id(jobs, &id)?;
    let top = reopen_rw(graph, &bs.node)?;
    let covered: Vec<Arc<BlockNode>> =
        top.chain().into_iter().take_while(|n| base.as_ref().is_none_or(|b| !Arc::ptr_eq(n, b))).collect();
    let top_len = top.size();
    let driver = StreamJob::new(top, base, a.backing_file, workers);
    let spec = JobSpec {
        id,
        kind: JobType::Stream,
        speed: speed as u64,
        on_error: a.on_error.unwrap_or_default(),
        auto_finalize: a.auto_finalize.unwrap_or(true),
        auto_dismiss: a.auto_dismiss.unwrap_or(true),
        covered,
        mirror_like: false,
        len: top_len,
    };
    jobs.start(spec, Box::new(driver))
}

/// `block-commit`. The caller holds the graph's ops lock. An unknown device is class
/// DeviceNotFound (libvirt probes for it), everything else GenericError.
pub fn start_commit(
    graph: &BlockGraph,
    jobs: &Arc<JobManager>,
    a: BlockCommitArgs,
    workers: usize,
) -> Result<Kick, ControlError> {
    let bs = graph
        .lookup(Some(&a.device), Some(&a.device))
        .map_err(|_| ControlError::DeviceNotFound(a.device.clone()))?;
    commit_checked(graph, jobs, a, bs, workers).map_err(ControlError::Failed)
}

fn commit_checked(
    graph: &BlockGraph,
    jobs: &Arc<JobManager>,
    a: BlockCommitArgs,
    bs: NodeEntry,
    workers: usize,
) -> Result<Kick, String> {
    if !bs.is_format() || !graph.is_root(&bs) {
        return Err("Need a root block node".into());
    }
    if let Some(msg) = blocker(graph, jobs, &bs, false) {
        return Err(msg);
    }
    let chain = bs.node.chain();
    let top: Arc<BlockNode> = match (&a.top_node, &a.top) {
        (Some(_), Some(_)) => return Err("'top-node' and 'top' are mutually exclusive".into()),
        (Some(tn), None) => {
            let e = graph.lookup(None, Some(tn))?;
            if !e.is_format() || !contains(&chain, &e.node) {
                return Err(format!("'{tn}' is not in this backing file chain"));
            }
            e.node
        }
        (None, Some(t)) if bs.node.filename() != t => {
            find_backing_image(&bs.node, t).ok_or_else(|| format!("Top image file {t} not found"))?
        }
        _ => bs.node.clone(),
    };
    let top_chain = top.chain();
    let base: Arc<BlockNode> = match (&a.base_node, &a.base) {
        (Some(_), Some(_)) => return Err("'base-node' and 'base' are mutually exclusive".into()),
        (Some(bn), None) => {
            let e = graph.lookup(None, Some(bn))?;
            if !e.is_format() || !contains(&top_chain, &e.node) {
                return Err(format!("'{bn}' is not in this backing file chain"));
            }
            e.node
        }
        (None, Some(b)) => {
            find_backing_image(&top, b).ok_or_else(|| format!("Can't find '{b}' in the backing chain"))?
        }
        (None, None) => top_chain.last().cloned().unwrap_or_else(|| top.clone()),
    };
    if Arc::ptr_eq(&top, &base) {
        return Err("cannot commit an image into itself".into());
    }
    let span: Vec<Arc<BlockNode>> = {
        let mut v = Vec::new();
        for n in &top_chain {
            v.push(n.clone());
            if Arc::ptr_eq(n, &base) {
                break;
            }
        }
        v
    };
    for n in &span {
        if let Some(e) = graph.entry_of(n)
            && let Some(msg) = blocker(graph, jobs, &e, false)
        {
            return Err(msg);
        }
    }
    let speed = a.speed.unwrap_or(0);
    if speed < 0 {
        return Err("Invalid parameter 'speed'".into());
    }
    let on_error = a.on_error.unwrap_or_default();
    let auto_finalize = a.auto_finalize.unwrap_or(true);
    let auto_dismiss = a.auto_dismiss.unwrap_or(true);
    if Arc::ptr_eq(&top, &bs.node) {
        if a.backing_file.is_some() {
            return Err("'backing-file' specified, but 'top' is the active layer".into());
        }
        let id = a.job_id.clone().unwrap_or_else(|| graph.device_name(&bs.node));
        check_job_id(jobs, &id)?;
        let base = reopen_rw(graph, &base)?;
        let granularity = base.cluster_size().clamp(4096, 65536);
        let bitmap = top.add_dirty_bitmap(granularity);
        let covered = covered_span(&top, &base);
        let driver = ActiveCommitJob::new(top.clone(), base, bitmap.clone(), workers);
        let spec = JobSpec {
            id,
            kind: JobType::Commit,
            speed: speed as u64,
            on_error,
            auto_finalize,
            auto_dismiss,
            covered,
            mirror_like: true,
            len: 0,
        };
        return jobs.start(spec, Box::new(driver)).inspect_err(|_| top.remove_dirty_bitmap(&bitmap));
    }
    let Some(overlay) = chain.windows(2).find(|w| Arc::ptr_eq(&w[1], &top)).map(|w| w[0].clone()) else {
        return Err("Cannot find the overlay of the top image".into());
    };
    if let Some(e) = graph.entry_of(&overlay)
        && let Some(msg) = blocker(graph, jobs, &e, false)
    {
        return Err(msg);
    }
    let id = a.job_id.clone().unwrap_or_else(|| graph.device_name(&bs.node));
    check_job_id(jobs, &id)?;
    let base = reopen_rw(graph, &base)?;
    let overlay = reopen_rw(graph, &overlay)?;
    let active = graph.lookup(None, Some(&bs.name)).map(|e| e.node).unwrap_or_else(|_| bs.node.clone());
    let mut covered = vec![active];
    covered.extend(covered_span(&top, &base));
    let top_len = top.size();
    let driver = CommitJob::new(top, base, overlay, a.backing_file, workers);
    let spec = JobSpec {
        id,
        kind: JobType::Commit,
        speed: speed as u64,
        on_error,
        auto_finalize,
        auto_dismiss,
        covered,
        mirror_like: false,
        len: top_len,
    };
    jobs.start(spec, Box::new(driver))
}

/// `top` and every node below it down to `base`, inclusive.
fn covered_span(top: &Arc<BlockNode>, base: &Arc<BlockNode>) -> Vec<Arc<BlockNode>> {
    let mut v = Vec::new();
    for n in top.chain() {
        let last = Arc::ptr_eq(&n, base);
        v.push(n);
        if last {
            break;
        }
    }
    v
}
