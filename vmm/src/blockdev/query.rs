//! `query-block` and `query-named-block-nodes`: the graph as QEMU's `BlockInfo` and
//! `BlockDeviceInfo` (`block/qapi.c`).

use block::ImageInfo;
use monitor::block::types::{
    BlockDeviceInfo, BlockDeviceIoStatus, BlockInfo, BlockdevCacheInfo, ThrottleInfo,
};

use super::backend::{BlockBackend, IoStatus};
use super::graph::{BlockGraph, NodeDriver, NodeEntry};
use super::throttle::ThrottleConfig;

fn io_status(s: IoStatus) -> BlockDeviceIoStatus {
    match s {
        IoStatus::Ok => BlockDeviceIoStatus::Ok,
        IoStatus::Failed => BlockDeviceIoStatus::Failed,
        IoStatus::NoSpace => BlockDeviceIoStatus::Nospace,
    }
}

/// A protocol node's `image`: the host file as QEMU's file driver describes it.
fn file_image(e: &NodeEntry) -> ImageInfo {
    let f = e.node.file();
    ImageInfo {
        snapshots: None,
        backing_filename_format: None,
        virtual_size: f.len().unwrap_or(0),
        filename: e.filename(),
        cluster_size: None,
        format: "file".into(),
        actual_size: f.allocated_bytes().ok(),
        format_specific: None,
        full_backing_filename: None,
        backing_filename: None,
        dirty_flag: false,
        backing_image: None,
    }
}

/// QEMU's `bdrv_block_device_info`. `flat` leaves out the backing chain (`backing-image`, and
/// `backing_file_depth` is 0); `writeback` is the drive's cache mode (always on for nodes).
pub fn node_info(e: &NodeEntry, flat: bool, writeback: bool) -> Result<BlockDeviceInfo, String> {
    let (image, backing_file, depth) = match e.driver {
        NodeDriver::File => (file_image(e), None, 0),
        _ => {
            let image =
                if flat { e.node.info() } else { e.node.info_recursive() }.map_err(|x| x.to_string())?;
            let depth = if flat { 0 } else { e.node.chain().len() as i64 - 1 };
            // QEMU's `bs->backing_file`: the attached backing node's filename (set when it is
            // attached), else the header's string.
            let backing_file =
                e.node.backing().map(|b| b.filename().to_string()).or_else(|| e.node.backing_name());
            (image, backing_file, depth)
        }
    };
    Ok(BlockDeviceInfo {
        file: e.filename(),
        node_name: Some(e.name.clone()),
        ro: e.read_only,
        drv: e.driver.name().into(),
        backing_file,
        backing_file_depth: depth,
        encrypted: false,
        detect_zeroes: e.detect_zeroes,
        bps: 0,
        bps_rd: 0,
        bps_wr: 0,
        iops: 0,
        iops_rd: 0,
        iops_wr: 0,
        image,
        throttle: ThrottleInfo::default(),
        cache: BlockdevCacheInfo { writeback, direct: e.cache.direct, no_flush: e.cache.no_flush },
        write_threshold: 0,
    })
}

/// A drive's I/O limits in its `inserted` info, as QEMU's `bdrv_block_device_info` fills them.
fn with_limits(info: &mut BlockDeviceInfo, cfg: &ThrottleConfig, group: String) {
    let v = |x: u64| i64::try_from(x).unwrap_or(i64::MAX);
    let b = &cfg.buckets;
    (info.bps, info.bps_rd, info.bps_wr) = (v(b[0].avg), v(b[1].avg), v(b[2].avg));
    (info.iops, info.iops_rd, info.iops_wr) = (v(b[3].avg), v(b[4].avg), v(b[5].avg));
    let max = |i: usize| (b[i].max > 0).then(|| v(b[i].max));
    let len = |i: usize| (b[i].max > 0).then(|| v(b[i].burst_length));
    info.throttle = ThrottleInfo {
        bps_max: max(0),
        bps_rd_max: max(1),
        bps_wr_max: max(2),
        iops_max: max(3),
        iops_rd_max: max(4),
        iops_wr_max: max(5),
        bps_max_length: len(0),
        bps_rd_max_length: len(1),
        bps_wr_max_length: len(2),
        iops_max_length: len(3),
        iops_rd_max_length: len(4),
        iops_wr_max_length: len(5),
        iops_size: (cfg.op_size > 0).then(|| v(cfg.op_size)),
        group: Some(group),
    };
}

/// `query-named-block-nodes`: every node, newest first.
pub fn named_nodes(graph: &BlockGraph, flat: bool) -> Result<Vec<BlockDeviceInfo>, String> {
    graph.entries().iter().map(|e| node_info(e, flat, true)).collect()
}

/// One drive of `query-block`.
pub fn drive_info(graph: &BlockGraph, b: &BlockBackend) -> Result<BlockInfo, String> {
    let root = b.root();
    let inserted = match graph.entry_of(&root) {
        Some(e) => {
            let mut info = node_info(&e, false, !b.writethrough())?;
            if let Some((cfg, group)) = b.throttle().config() {
                with_limits(&mut info, &cfg, group);
            }
            Some(info)
        }
        None => None,
    };
    let qdev = b.attached_to();
    Ok(BlockInfo {
        device: b.name().to_string(),
        io_status: qdev.as_ref().map(|_| io_status(b.io_status())),
        kind: "unknown".into(),
        // QEMU's blk_dev_has_removable_media: a drive no device uses counts as removable
        // (virtio-blk has no removable media).
        removable: qdev.is_none(),
        locked: false,
        inserted,
        tray_open: None,
        qdev,
    })
}

/// `query-block`: drives with a name or a device, in creation order.
pub fn query_block(graph: &BlockGraph) -> Result<Vec<BlockInfo>, String> {
    graph
        .backends()
        .iter()
        .filter(|b| !b.name().is_empty() || b.attached_to().is_some())
        .map(|b| drive_info(graph, b))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blockdev::drive::DriveNamer;

    /// QEMU reports the opened backing node's filename, not the header's relative string.
    #[test]
    fn backing_file_is_the_opened_backing_files_name() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.qcow2");
        let top = dir.path().join("top.qcow2");
        let mut o = block::qcow2::create::CreateOptions { size: 1 << 20, ..Default::default() };
        block::qcow2::create::create(&base, &o).unwrap();
        o.backing_file = Some("base.qcow2".into());
        o.backing_format = Some("qcow2".into());
        block::qcow2::create::create(&top, &o).unwrap();
        let g = BlockGraph::new();
        let spec = DriveNamer::default()
            .drive(&format!("file={},format=qcow2,if=none,id=d0", top.display()))
            .unwrap();
        g.open_drive(&spec).unwrap();
        let info = query_block(&g).unwrap();
        let inserted = info[0].inserted.as_ref().unwrap();
        assert_eq!(inserted.backing_file.as_deref(), Some(base.to_str().unwrap()));
        assert_eq!(inserted.backing_file_depth, 1);
    }

    #[test]
    fn drives_with_a_device_show_it_and_their_io_status() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("a.img");
        std::fs::write(&img, vec![0u8; 1 << 20]).unwrap();
        let g = BlockGraph::new();
        let mut namer = DriveNamer::default();
        let spec = namer.drive(&format!("file={},format=raw,if=none,id=drive0", img.display())).unwrap();
        let b = g.open_drive(&spec).unwrap();
        let info = query_block(&g).unwrap();
        assert_eq!((info[0].qdev.as_deref(), info[0].io_status), (None, None));
        b.attach("/machine/peripheral/vd0/virtio-backend").unwrap();
        b.set_io_status(IoStatus::NoSpace);
        let info = query_block(&g).unwrap();
        assert_eq!(info[0].qdev.as_deref(), Some("/machine/peripheral/vd0/virtio-backend"));
        assert_eq!(info[0].io_status, Some(BlockDeviceIoStatus::Nospace));
        let inserted = info[0].inserted.as_ref().unwrap();
        assert_eq!((inserted.drv.as_str(), inserted.ro, inserted.backing_file_depth), ("raw", false, 0));
        // an anonymous drive over a node appears only once a device uses it
        let opts = block::OpenOptions { format: Some(block::Format::Raw), ..Default::default() };
        let img2 = dir.path().join("b.img");
        std::fs::write(&img2, vec![0u8; 1 << 20]).unwrap();
        g.open_chain(img2.to_str().unwrap(), &opts, Some("n1"), Default::default(), Default::default())
            .unwrap();
        let anon = g.backend_for_device("n1").unwrap();
        assert_eq!(query_block(&g).unwrap().len(), 1);
        anon.attach("/machine/peripheral/vd1/virtio-backend").unwrap();
        let info = query_block(&g).unwrap();
        assert_eq!((info.len(), info[1].device.as_str()), (2, ""));
        assert_eq!(
            g.backend_for_device("nope").unwrap_err(),
            "Property 'virtio-blk-device.drive' can't find value 'nope'"
        );
    }
}
