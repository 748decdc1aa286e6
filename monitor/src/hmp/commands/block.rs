//! Block commands: `info block`, `info block-jobs`, `snapshot_blkdev`, `block_stream`, `commit`,
//! `block_job_set_speed|cancel|complete|pause|resume`, `block_resize`, `qemu-io`. Each calls
//! the QMP command QEMU's HMP calls (`hmp_block_stream` → `block-stream` with the device as job
//! id, ...) and prints QEMU's text (`block/monitor/block-hmp-cmds.c`, `block/qapi.c`).

use serde_json::{Map, Value, json};

use crate::block::BlockRequest;
use crate::block::types::{BlockDeviceInfo, BlockDeviceIoStatus, BlockInfo, BlockJobInfo};
use crate::control::ControlRequest;
use crate::error::QmpError;
use crate::hmp::context::{Ctx, out};
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const COMMANDS: &[HmpCommand] = &[
    HmpCommand {
        names: "snapshot_blkdev",
        args_type: "reuse:-n,device:B,snapshot-file:s?,format:s?",
        params: "[-n] device [new-image-file] [format]",
        help: "initiates a live snapshot\n\t\t\tof device. If a new image file is specified, the\n\t\t\tnew image file will become the new root image.\n\t\t\tIf format is specified, the snapshot file will\n\t\t\tbe created in that format.\n\t\t\tThe default format is qcow2.  The -n flag requests QEMU\n\t\t\tto reuse the image found in new-image-file, instead of\n\t\t\trecreating it from scratch.",
        handler: snapshot_blkdev,
        sub_table: None,
    },
    HmpCommand {
        names: "snapshot_blkdev_internal",
        args_type: "device:B,name:s",
        params: "device name",
        help: "take an internal snapshot of device.\n\t\t\tThe format of the image used by device must\n\t\t\tsupport it, such as qcow2.\n\t\t\t",
        handler: snapshot_blkdev_internal,
        sub_table: None,
    },
    HmpCommand {
        names: "snapshot_delete_blkdev_internal",
        args_type: "device:B,name:s,id:s?",
        params: "device name [id]",
        help: "delete an internal snapshot of device.\n\t\t\tIf id is specified, qemu will try delete\n\t\t\tthe snapshot matching both id and name.\n\t\t\tThe format of the image used by device must\n\t\t\tsupport it, such as qcow2.\n\t\t\t",
        handler: snapshot_delete_blkdev_internal,
        sub_table: None,
    },
    HmpCommand {
        names: "block_stream",
        args_type: "device:B,speed:o?,base:s?",
        params: "device [speed [base]]",
        help: "copy data from a backing file into a block device",
        handler: block_stream,
        sub_table: None,
    },
    HmpCommand {
        names: "commit",
        args_type: "device:B",
        params: "device|all",
        help: "commit changes to the disk images (if -snapshot is used) or backing files",
        handler: commit,
        sub_table: None,
    },
    HmpCommand {
        names: "block_job_set_speed",
        args_type: "device:B,speed:o",
        params: "device speed",
        help: "set maximum speed for a background block operation",
        handler: block_job_set_speed,
        sub_table: None,
    },
    HmpCommand {
        names: "block_job_cancel",
        args_type: "force:-f,device:B",
        params: "[-f] device",
        help: "stop an active background block operation (use -f\n\t\t\t if you want to abort the operation immediately\n\t\t\t instead of keep running until data is in sync)",
        handler: block_job_cancel,
        sub_table: None,
    },
    HmpCommand {
        names: "block_job_complete",
        args_type: "device:B",
        params: "device",
        help: "stop an active background block operation",
        handler: block_job_complete,
        sub_table: None,
    },
    HmpCommand {
        names: "block_job_pause",
        args_type: "device:B",
        params: "device",
        help: "pause an active background block operation",
        handler: block_job_pause,
        sub_table: None,
    },
    HmpCommand {
        names: "block_job_resume",
        args_type: "device:B",
        params: "device",
        help: "resume a paused background block operation",
        handler: block_job_resume,
        sub_table: None,
    },
    HmpCommand {
        names: "block_resize",
        args_type: "device:B,size:o",
        params: "device size",
        help: "resize a block image",
        handler: block_resize,
        sub_table: None,
    },
    HmpCommand {
        names: "drive_add",
        args_type: "node:-n,pci_addr:s,opts:s",
        params: "[-n] [[<domain>:]<bus>:]<slot>\n[file=file][,if=type][,bus=n]\n[,unit=m][,media=d][,index=i]\n[,snapshot=on|off][,cache=on|off]\n[,readonly=on|off][,copy-on-read=on|off]",
        help: "add drive to PCI storage controller",
        handler: drive_add,
        sub_table: None,
    },
    HmpCommand {
        names: "drive_del",
        args_type: "id:B",
        params: "device",
        help: "remove host block device",
        handler: drive_del,
        sub_table: None,
    },
    HmpCommand {
        names: "block_set_io_throttle",
        args_type: "device:B,bps:l,bps_rd:l,bps_wr:l,iops:l,iops_rd:l,iops_wr:l",
        params: "device bps bps_rd bps_wr iops iops_rd iops_wr",
        help: "change I/O throttle limits for a block drive",
        handler: block_set_io_throttle,
        sub_table: None,
    },
    HmpCommand {
        names: "qemu-io",
        args_type: "qdev:-d,device:B,command:s",
        params: "[-d] [device] \"[command]\"",
        help: "run a qemu-io command on a block device\n\t\t\t-d: [device] is a device ID rather than a drive ID or node name",
        handler: qemu_io,
        sub_table: None,
    },
];

pub(super) const INFO: &[HmpCommand] = &[
    HmpCommand {
        names: "block",
        args_type: "nodes:-n,verbose:-v,device:B?",
        params: "[-n] [-v] [device]",
        help: "show info of one block device or all block devices (-n: show named nodes; -v: show details)",
        handler: info_block,
        sub_table: None,
    },
    HmpCommand {
        names: "block-jobs",
        args_type: "",
        params: "",
        help: "show progress of ongoing block device operations",
        handler: info_block_jobs,
        sub_table: None,
    },
    HmpCommand {
        names: "blockstats",
        args_type: "",
        params: "",
        help: "show block device statistics",
        handler: info_blockstats,
        sub_table: None,
    },
];

/// `hmp_info_blockstats`: one line per drive.
fn info_blockstats(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(list) =
            query::<Vec<crate::block::stats::BlockStats>>(ctx, "query-blockstats", json!({})).await
        else {
            return;
        };
        for b in list {
            let Some(device) = b.device else { continue };
            let s = b.stats;
            out!(
                ctx,
                "{device}: rd_bytes={} wr_bytes={} rd_operations={} wr_operations={} flush_operations={} wr_total_time_ns={} rd_total_time_ns={} flush_total_time_ns={} rd_merged={} wr_merged={} idle_time_ns={}\n",
                s.rd_bytes,
                s.wr_bytes,
                s.rd_operations,
                s.wr_operations,
                s.flush_operations,
                s.wr_total_time_ns,
                s.rd_total_time_ns,
                s.flush_total_time_ns,
                s.rd_merged,
                s.wr_merged,
                s.idle_time_ns.unwrap_or(0)
            );
        }
    })
}

fn flag(args: &Args, key: &str) -> bool {
    args.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn text(args: &Args, key: &str) -> Option<String> {
    args.get(key).and_then(Value::as_str).map(str::to_string)
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Runs a QMP command; success is silent, failure prints `Error: ...` (`hmp_handle_error`).
async fn run(ctx: &mut Ctx, name: &str, args: Value) {
    if let Err(e) = ctx.qmp(name, object(args)).await {
        ctx.print_error(&e);
    }
}

/// Runs a query and decodes its typed result; prints `Error: ...` on failure.
async fn query<T: serde::de::DeserializeOwned>(ctx: &mut Ctx, name: &str, args: Value) -> Option<T> {
    match ctx.qmp(name, object(args)).await {
        Ok(v) => match serde_json::from_value(v) {
            Ok(t) => Some(t),
            Err(e) => {
                ctx.print_error(&QmpError::generic(e.to_string()));
                None
            }
        },
        Err(e) => {
            ctx.print_error(&e);
            None
        }
    }
}

/// `hmp_snapshot_blkdev`: the file is required today (an internal snapshot would be taken
/// without one, QEMU says, "in the future").
fn snapshot_blkdev(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(file) = text(&args, "snapshot-file") else {
            return ctx.print_error(&QmpError::missing_parameter("snapshot-file"));
        };
        let mode = if flag(&args, "reuse") { "existing" } else { "absolute-paths" };
        let mut a = json!({"device": text(&args, "device"), "snapshot-file": file, "mode": mode});
        if let Some(f) = text(&args, "format") {
            a["format"] = f.into();
        }
        run(ctx, "blockdev-snapshot-sync", a).await;
    })
}

fn snapshot_blkdev_internal(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let a = json!({"device": text(&args, "device"), "name": text(&args, "name")});
        run(ctx, "blockdev-snapshot-internal-sync", a).await;
    })
}

fn snapshot_delete_blkdev_internal(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let mut a = json!({"device": text(&args, "device"), "name": text(&args, "name")});
        if let Some(id) = text(&args, "id") {
            a["id"] = id.into();
        }
        run(ctx, "blockdev-snapshot-delete-internal-sync", a).await;
    })
}

/// `hmp_block_stream`: the device name is also the job id.
fn block_stream(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let device = text(&args, "device");
        let mut a = json!({"job-id": device, "device": device, "on-error": "report"});
        if let Some(base) = text(&args, "base") {
            a["base"] = base.into();
        }
        if let Some(speed) = args.get("speed") {
            a["speed"] = speed.clone();
        }
        run(ctx, "block-stream", a).await;
    })
}

/// `hmp_commit`: synchronous; its errors are printed as they are (`error_report`).
fn commit(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let device = text(&args, "device").unwrap_or_default();
        let r = ctx
            .monitor
            .control
            .call(|reply| ControlRequest::Block(Box::new(BlockRequest::HmpCommit { device, reply })))
            .await;
        if let Err(e) = r {
            out!(ctx, "{e}\n");
        }
    })
}

fn block_job_set_speed(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let a = json!({"device": text(&args, "device"), "speed": args.get("speed").cloned()});
        run(ctx, "block-job-set-speed", a).await;
    })
}

fn block_job_cancel(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let a = json!({"device": text(&args, "device"), "force": flag(&args, "force")});
        run(ctx, "block-job-cancel", a).await;
    })
}

fn block_job_complete(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        run(ctx, "block-job-complete", json!({"device": text(&args, "device")})).await;
    })
}

fn block_job_pause(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        run(ctx, "block-job-pause", json!({"device": text(&args, "device")})).await;
    })
}

fn block_job_resume(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        run(ctx, "block-job-resume", json!({"device": text(&args, "device")})).await;
    })
}

/// `hmp_block_resize`: `device` is a drive name only.
fn block_resize(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let a = json!({"device": text(&args, "device"), "size": args.get("size").cloned()});
        run(ctx, "block_resize", a).await;
    })
}

/// `hmp_block_set_io_throttle`: the drive by name, the six average limits.
fn block_set_io_throttle(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let mut a = json!({"device": text(&args, "device")});
        for k in ["bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr"] {
            a[k] = args.get(k).cloned().unwrap_or(Value::from(0));
        }
        run(ctx, "block_set_io_throttle", a).await;
    })
}

/// Runs a block request whose errors QEMU reports bare (`error_report`, no `Error: `).
async fn bare(ctx: &mut Ctx, make: impl FnOnce(crate::control::Reply<()>) -> BlockRequest) -> bool {
    match ctx.monitor.control.call(|reply| ControlRequest::Block(Box::new(make(reply)))).await {
        Ok(()) => true,
        Err(e) => {
            out!(ctx, "{e}\n");
            false
        }
    }
}

/// `hmp_drive_add`: `if=none` drives only (`-n`, adding a bare node, is not implemented).
fn drive_add(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        if flag(&args, "node") {
            out!(ctx, "drive_add -n is not supported (use blockdev-add)\n");
            return;
        }
        let mut opts = text(&args, "opts").unwrap_or_default();
        // The machine's default interface: `-machine none` has no controller, so `none`.
        if ctx.monitor.config.machine_type == "none" && !opts.split(',').any(|kv| kv.starts_with("if=")) {
            opts.push_str(",if=none");
        }
        if bare(ctx, |reply| BlockRequest::DriveAdd { opts, reply }).await {
            out!(ctx, "OK\n");
        }
    })
}

/// `hmp_drive_del`.
fn drive_del(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let id = text(&args, "id").unwrap_or_default();
        bare(ctx, |reply| BlockRequest::DriveDel { id, reply }).await;
    })
}

/// `hmp_qemu_io`: errors go to the monitor, qemu-io's own output to the process's stdout.
fn qemu_io(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let device = text(&args, "device").unwrap_or_default();
        let command = text(&args, "command").unwrap_or_default();
        let qdev = flag(&args, "qdev");
        let r = ctx
            .monitor
            .control
            .call(|reply| {
                ControlRequest::Block(Box::new(BlockRequest::QemuIo { device, qdev, command, reply }))
            })
            .await;
        if let Err(e) = r {
            ctx.print_error(&QmpError::from(e));
        }
    })
}

/// `hmp_info_block`: drives first (all, or the one named), then with `-n` or an unknown
/// name the named nodes. A blank line separates entries that are not first in their list.
fn info_block(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let nodes = flag(&args, "nodes");
        let verbose = flag(&args, "verbose");
        let device = text(&args, "device");
        let mut printed = false;
        if !nodes {
            let Some(list) = query::<Vec<BlockInfo>>(ctx, "query-block", json!({})).await else { return };
            for (i, info) in list.iter().enumerate() {
                if device.as_deref().is_some_and(|d| d != info.device) {
                    continue;
                }
                if i != 0 {
                    out!(ctx, "\n");
                }
                print_block_info(ctx, Some(info), info.inserted.as_ref(), verbose);
                printed = true;
            }
        }
        if (device.is_none() && !nodes) || printed {
            return;
        }
        let Some(list) = query::<Vec<BlockDeviceInfo>>(ctx, "query-named-block-nodes", json!({})).await
        else {
            return;
        };
        for (i, node) in list.iter().enumerate() {
            if device.as_deref().is_some_and(|d| Some(d) != node.node_name.as_deref()) {
                continue;
            }
            if i != 0 {
                out!(ctx, "\n");
            }
            print_block_info(ctx, None, Some(node), verbose);
        }
    })
}

/// `print_block_info` of QEMU's `block/qapi.c` (labels padded to 18 columns).
fn print_block_info(
    ctx: &mut Ctx,
    info: Option<&BlockInfo>,
    inserted: Option<&BlockDeviceInfo>,
    verbose: bool,
) {
    match info {
        Some(i) if !i.device.is_empty() => {
            out!(ctx, "{}", i.device);
            if let Some(n) = inserted.and_then(|d| d.node_name.as_deref()) {
                out!(ctx, " ({n})");
            }
        }
        _ => {
            let name = inserted
                .and_then(|d| d.node_name.clone())
                .or_else(|| info.and_then(|i| i.qdev.clone()))
                .unwrap_or_else(|| "<anonymous>".into());
            out!(ctx, "{name}");
        }
    }
    match inserted {
        Some(d) => out!(
            ctx,
            ": {} ({}{}{})\n",
            d.file,
            d.drv,
            if d.ro { ", read-only" } else { "" },
            if d.encrypted { ", encrypted" } else { "" }
        ),
        None => out!(ctx, ": [not inserted]\n"),
    }
    if let Some(i) = info {
        if let Some(q) = &i.qdev {
            out!(ctx, "    Attached to:      {q}\n");
        }
        if let Some(s) = i.io_status.filter(|s| *s != BlockDeviceIoStatus::Ok) {
            out!(ctx, "    I/O status:       {}\n", s.as_str());
        }
        if i.removable {
            out!(
                ctx,
                "    Removable device: {}locked, tray {}\n",
                if i.locked { "" } else { "not " },
                if i.tray_open == Some(true) { "open" } else { "closed" }
            );
        }
    }
    let Some(d) = inserted else { return };
    out!(
        ctx,
        "    Cache mode:       {}{}{}\n",
        if d.cache.writeback { "writeback" } else { "writethrough" },
        if d.cache.direct { ", direct" } else { "" },
        if d.cache.no_flush { ", ignore flushes" } else { "" }
    );
    if let Some(b) = &d.backing_file {
        out!(ctx, "    Backing file:     {b} (chain depth: {})\n", d.backing_file_depth);
    }
    if d.detect_zeroes.as_str() != "off" {
        out!(ctx, "    Detect zeroes:    {}\n", d.detect_zeroes.as_str());
    }
    if d.bps != 0 || d.bps_rd != 0 || d.bps_wr != 0 || d.iops != 0 || d.iops_rd != 0 || d.iops_wr != 0 {
        let t = &d.throttle;
        let z = |v: Option<i64>| v.unwrap_or(0);
        out!(
            ctx,
            "    I/O throttling:   bps={} bps_rd={} bps_wr={} bps_max={} bps_rd_max={} bps_wr_max={} iops={} iops_rd={} iops_wr={} iops_max={} iops_rd_max={} iops_wr_max={} iops_size={} group={}\n",
            d.bps,
            d.bps_rd,
            d.bps_wr,
            z(t.bps_max),
            z(t.bps_rd_max),
            z(t.bps_wr_max),
            d.iops,
            d.iops_rd,
            d.iops_wr,
            z(t.iops_max),
            z(t.iops_rd_max),
            z(t.iops_wr_max),
            z(t.iops_size),
            t.group.as_deref().unwrap_or("")
        );
    }
    if verbose {
        out!(ctx, "\nImages:\n");
        let mut image = Some(&d.image);
        while let Some(i) = image {
            ctx.print_str(&block::info::human(i));
            image = i.backing_image.as_deref();
        }
    }
}

/// `hmp_info_block_jobs`.
fn info_block_jobs(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(list) = query::<Vec<BlockJobInfo>>(ctx, "query-block-jobs", json!({})).await else { return };
        if list.is_empty() {
            out!(ctx, "No active jobs\n");
            return;
        }
        for j in list {
            if j.kind == "stream" {
                out!(
                    ctx,
                    "Streaming device {}: Completed {} of {} bytes, speed limit {} bytes/s\n",
                    j.device,
                    j.offset,
                    j.len,
                    j.speed
                );
            } else {
                out!(
                    ctx,
                    "Type {}, device {}: Completed {} of {} bytes, speed limit {} bytes/s\n",
                    j.kind,
                    j.device,
                    j.offset,
                    j.len,
                    j.speed
                );
            }
        }
    })
}
