//! `blockdev-del`, `block_resize` and HMP `commit`, with QEMU's checks and texts.

use std::sync::Arc;

use block::{Backing, BlockNode, Format, OpenOptions};
use monitor::block::types::{BlockIoThrottleArgs, BlockResizeArgs};
use monitor::control::ControlError;

use super::drive::{DriveNamer, Interface};
use super::graph::{BlockGraph, NodeDriver, Parent};
use super::jobs::{JobManager, error_text};
use super::start::{blocker, reopen_rw};
use super::throttle::{Bucket, ThrottleConfig};

/// `blockdev-del` (`qmp_blockdev_del`). The caller holds the ops lock.
pub fn blockdev_del(graph: &BlockGraph, jobs: &JobManager, name: &str) -> Result<(), String> {
    let Some(e) = graph.entry(name) else {
        return Err(format!("Failed to find node with node-name='{name}'"));
    };
    let parents = graph.parents(&e);
    if parents.iter().any(|p| matches!(p, Parent::Backend(_))) {
        return Err(format!("Node {name} is in use"));
    }
    if let Some(msg) = blocker(graph, jobs, &e, true) {
        return Err(msg);
    }
    if !e.monitor_owned {
        return Err(format!("Node {name} is not owned by the monitor"));
    }
    if !parents.is_empty() {
        return Err(format!("Block device {name} is in use"));
    }
    if e.is_format() {
        e.node.flush().map_err(|err| format!("Failed to flush node '{name}': {err}"))?;
    }
    graph.update_entry_by_name(name, |x| x.monitor_owned = false);
    graph.collect_garbage(&jobs.covered_nodes());
    Ok(())
}

/// `block_resize` (`qmp_block_resize`). The caller holds the ops lock.
pub fn block_resize(graph: &BlockGraph, jobs: &JobManager, a: &BlockResizeArgs) -> Result<(), String> {
    let e = graph.lookup(a.device.as_deref(), a.node_name.as_deref())?;
    if a.size < 0 {
        return Err("Parameter 'size' expects a >0 size".into());
    }
    if blocker(graph, jobs, &e, true).is_some() {
        return Err(format!("Device '{}' is in use", a.device.as_deref().unwrap_or("(null)")));
    }
    let size = a.size as u64;
    if e.driver == NodeDriver::File {
        if let Some(Parent::FileOf(p)) = graph.parents(&e).first() {
            return Err(format!(
                "Permission conflict on node '{n}': permissions 'resize' are both required by an unnamed block \
                 device (uses node '{n}' as 'root' child) and unshared by node '{p}' (uses node '{n}' as 'file' child).",
                n = e.name
            ));
        }
        let opts = OpenOptions { format: Some(Format::Raw), read_only: false, backing: Backing::None };
        let node = BlockNode::open(&e.filename(), &opts).map_err(|x| x.to_string())?;
        return node.resize(size).map_err(|x| x.to_string());
    }
    if e.read_only || e.node.read_only() {
        return Err("Block node is read-only".into());
    }
    let backends = graph.backends_of(&e.node);
    {
        let _drained = graph.drain(&backends);
        e.node.resize(size).map_err(|x| x.to_string())?;
    }
    for b in &backends {
        b.notify_resize(size);
    }
    Ok(())
}

/// HMP `commit DEVICE|all` (`hmp_commit`, `bdrv_commit`): copies what the drive's top image
/// holds into its backing file and empties the top, with the drive's I/O waiting meanwhile.
/// Errors are QEMU's `error_report` texts. The caller holds the ops lock.
pub fn hmp_commit(graph: &BlockGraph, jobs: &JobManager, device: &str) -> Result<(), String> {
    let fail = |e: String| format!("'commit' error for '{device}': {e}");
    if device == "all" {
        for b in graph.backends() {
            if b.root().backing().is_some() {
                commit_top(graph, jobs, &b.root()).map_err(fail)?;
            }
        }
        return Ok(());
    }
    let Some(b) = graph.backend(device) else {
        return Err(format!("Device '{device}' not found"));
    };
    commit_top(graph, jobs, &b.root()).map_err(fail)
}

fn strerror(errno: i32) -> String {
    block::error::os_text(&std::io::Error::from_raw_os_error(errno))
}

fn commit_top(graph: &BlockGraph, jobs: &JobManager, top: &Arc<BlockNode>) -> Result<(), String> {
    let Some(backing) = top.backing() else {
        return Err(strerror(libc::ENOTSUP));
    };
    if jobs.covering(top).is_some() || jobs.covering(&backing).is_some() {
        return Err(strerror(libc::EBUSY));
    }
    if top.read_only() {
        return Err(strerror(libc::EACCES));
    }
    let base = reopen_rw(graph, &backing)?;
    let backends = graph.backends_over(top);
    let _drained = graph.drain(&backends);
    if base.size() < top.size() {
        base.resize(top.size()).map_err(|e| error_text(&e))?;
    }
    let len = top.size();
    let mut off = 0;
    let mut buf = Vec::new();
    while off < len {
        let (alloc, l) = top.is_allocated(off, len - off).map_err(|e| error_text(&e))?;
        let l = l.clamp(1, len - off);
        if alloc {
            let mut o = off;
            while o < off + l {
                let n = (off + l - o).min(super::jobs::copy::MAX_IO);
                buf.resize(n as usize, 0);
                top.read(&mut buf, o).map_err(|e| error_text(&e))?;
                if block::jobs::buffer_is_zero(&buf) { base.write_zeroes(o, n) } else { base.write(&buf, o) }
                    .map_err(|e| error_text(&e))?;
                o += n;
            }
        }
        off += l;
    }
    base.flush().map_err(|e| error_text(&e))?;
    if top.qcow2().is_some() {
        top.make_unallocated(0, len).map_err(|e| error_text(&e))?;
        top.flush().map_err(|e| error_text(&e))?;
    }
    Ok(())
}

/// `block_set_io_throttle` (QEMU's `qmp_block_set_io_throttle`): the drive by name (`device`)
/// or by its device's id (`id`); all limits 0 turns throttling off. The group name defaults to
/// the drive or device name; groups of several drives sharing one budget are not implemented:
/// each drive has its own limits.
pub fn set_io_throttle(graph: &BlockGraph, a: &BlockIoThrottleArgs) -> Result<(), ControlError> {
    let backend = match (&a.device, &a.id) {
        (Some(d), None) => graph.backend(d).ok_or_else(|| ControlError::DeviceNotFound(d.clone()))?,
        (None, Some(id)) => {
            let path = format!("/machine/peripheral/{id}/virtio-backend");
            graph
                .backends()
                .into_iter()
                .find(|b| b.attached_to().as_deref() == Some(path.as_str()))
                .ok_or_else(|| ControlError::DeviceNotFound(id.clone()))?
        }
        _ => return Err(ControlError::Failed("Need exactly one of 'device' and 'id'".into())),
    };
    if graph.entry_of(&backend.root()).is_none() {
        return Err(ControlError::Failed("Device has no medium".into()));
    }
    // QEMU stores the values as unsigned: a negative one is out of range.
    let u = |v: i64| u64::try_from(v).unwrap_or(u64::MAX);
    let bucket = |avg: i64, max: Option<i64>, len: Option<i64>| Bucket {
        avg: u(avg),
        max: max.map_or(0, u),
        burst_length: len.map_or(1, u),
    };
    let cfg = ThrottleConfig {
        buckets: [
            bucket(a.bps, a.bps_max, a.bps_max_length),
            bucket(a.bps_rd, a.bps_rd_max, a.bps_rd_max_length),
            bucket(a.bps_wr, a.bps_wr_max, a.bps_wr_max_length),
            bucket(a.iops, a.iops_max, a.iops_max_length),
            bucket(a.iops_rd, a.iops_rd_max, a.iops_rd_max_length),
            bucket(a.iops_wr, a.iops_wr_max, a.iops_wr_max_length),
        ],
        op_size: a.iops_size.map_or(0, u),
    };
    cfg.validate().map_err(ControlError::Failed)?;
    let group = match backend.throttle().config() {
        Some((_, current)) if a.group.is_none() => current,
        _ => a.group.clone().or_else(|| a.device.clone()).or_else(|| a.id.clone()).unwrap_or_default(),
    };
    backend.throttle().set(Some((cfg, group)));
    Ok(())
}

/// HMP `drive_add` (`hmp_drive_add`): `-drive` options at run time. Only `if=none` drives can be
/// added (no device is hot-plugged); other interfaces get QEMU's answer with its interface
/// number (IDE 1, virtio 7). Takes the ops lock (through `open_drive`).
pub fn drive_add(graph: &BlockGraph, opts: &str) -> Result<(), String> {
    let spec = DriveNamer::default().drive(opts)?;
    match spec.interface {
        Interface::None => {}
        Interface::Ide => return Err("Can't hot-add drive to type 1".into()),
        Interface::Virtio => return Err("Can't hot-add drive to type 7".into()),
    }
    if graph.backend(&spec.name).is_some() {
        return Err(format!("Duplicate ID '{}' for drive", spec.name));
    }
    let backend = graph.open_drive(&spec)?;
    backend.set_on_error(spec.rerror, spec.werror);
    Ok(())
}

/// HMP `drive_del` (`hmp_drive_del`): removes a drive no device uses, once no job works on
/// it; its nodes close unless the monitor added them. (QEMU also takes the medium away from a
/// device; hot-unplug does not exist here, so a drive in use is refused.) The caller holds the
/// ops lock.
pub fn drive_del(graph: &BlockGraph, jobs: &JobManager, id: &str) -> Result<(), String> {
    let backend = graph.backend(id).ok_or_else(|| format!("Device '{id}' not found"))?;
    if let Some(e) = graph.entry_of(&backend.root())
        && let Some(msg) = blocker(graph, jobs, &e, false)
    {
        return Err(msg);
    }
    if backend.attached_to().is_some() {
        return Err(format!("Drive '{id}' is in use by a device (device hot-unplug is not supported)"));
    }
    if let Err(e) = backend.flush() {
        tracing::warn!("drive_del {id}: flush: {e}");
    }
    graph.remove_backend(&backend);
    graph.collect_garbage(&jobs.covered_nodes());
    Ok(())
}
