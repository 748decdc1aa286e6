//! `vmm-img snapshot -l | -c | -a | -d`.

use super::{ImgError, ImgResult, args, open_image};
use crate::info::{SnapshotInfo, snapshot_table};
use crate::node::Backing;

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "la:c:d:f:hqU", &["force-share", "image-opts", "object="])?;
    super::reject_unsupported(&a, &["image-opts", "object"])?;
    let Some(path) = a.positional.first() else {
        return Err(ImgError::usage("Expecting one image file name"));
    };
    let actions = ["l", "a", "c", "d"].iter().filter(|x| a.has(x)).count();
    if actions > 1 {
        return Err(ImgError::usage("Cannot mix '-l', '-a', '-c', '-d'"));
    }
    let list = actions == 0 || a.has("l");
    let node = open_image(path, a.value("f"), list, Backing::None)?;
    if list {
        if let Some(q) = node.qcow2() {
            let snaps = q.snapshots()?;
            if !snaps.is_empty() {
                let infos: Vec<SnapshotInfo> = snaps.iter().map(SnapshotInfo::from).collect();
                print!("Snapshot list:\n{}", snapshot_table(&infos));
            }
        }
        return Ok(0);
    }
    let not_supported = "-95 (Operation not supported)";
    if let Some(name) = a.value("c") {
        let q = node
            .qcow2()
            .ok_or_else(|| ImgError::new(format!("Could not create snapshot '{name}': {not_supported}")))?;
        q.snapshot_create(name, 0)
            .map_err(|e| ImgError::new(format!("Could not create snapshot '{name}': {e}")))?;
    } else if let Some(name) = a.value("a") {
        let q = node
            .qcow2()
            .ok_or_else(|| ImgError::new(format!("Could not apply snapshot '{name}': {not_supported}")))?;
        q.snapshot_apply(name)
            .map_err(|e| ImgError::new(format!("Could not apply snapshot '{name}': {e}")))?;
    } else if let Some(name) = a.value("d") {
        let q = node
            .qcow2()
            .ok_or_else(|| ImgError::new(format!("Could not delete snapshot '{name}': {not_supported}")))?;
        q.snapshot_delete(name)
            .map_err(|e| ImgError::new(format!("Could not delete snapshot '{name}': {e}")))?;
    }
    node.flush()?;
    Ok(0)
}
