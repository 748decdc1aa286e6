//! `vmm-img check`: exit 0 clean, 1 check failed, 2 corruptions, 3 leaks only,
//! 63 format without checks (qemu-img's codes).

use super::{ImgError, ImgResult, args, open_image, output_json, to_json};
use crate::node::{Backing, Format};
use crate::qcow2::check::{CheckResult, Repair};
use serde::Serialize;

#[derive(Serialize)]
struct ImageCheck<'a> {
    #[serde(rename = "image-end-offset", skip_serializing_if = "is_zero")]
    image_end_offset: u64,
    #[serde(rename = "compressed-clusters", skip_serializing_if = "is_zero")]
    compressed_clusters: u64,
    #[serde(rename = "total-clusters", skip_serializing_if = "is_zero")]
    total_clusters: u64,
    #[serde(skip_serializing_if = "is_zero")]
    corruptions: u64,
    #[serde(rename = "corruptions-fixed", skip_serializing_if = "is_zero")]
    corruptions_fixed: u64,
    #[serde(rename = "check-errors")]
    check_errors: u64,
    #[serde(skip_serializing_if = "is_zero")]
    leaks: u64,
    #[serde(rename = "leaks-fixed", skip_serializing_if = "is_zero")]
    leaks_fixed: u64,
    #[serde(rename = "allocated-clusters", skip_serializing_if = "is_zero")]
    allocated_clusters: u64,
    filename: &'a str,
    format: &'a str,
    #[serde(rename = "fragmented-clusters", skip_serializing_if = "is_zero")]
    fragmented_clusters: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn human(r: &CheckResult) -> String {
    let mut s = String::new();
    if r.corruptions_fixed > 0 || r.leaks_fixed > 0 {
        s.push_str(&format!(
            "The following inconsistencies were found and repaired:\n\n    {} leaked clusters\n    {} corruptions\n\nDouble checking the fixed image now...\n",
            r.leaks_fixed, r.corruptions_fixed
        ));
    }
    if r.corruptions == 0 && r.leaks == 0 && r.check_errors == 0 {
        s.push_str("No errors were found on the image.\n");
    } else {
        if r.corruptions > 0 {
            s.push_str(&format!(
                "\n{} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n",
                r.corruptions
            ));
        }
        if r.leaks > 0 {
            s.push_str(&format!(
                "\n{} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.\n",
                r.leaks
            ));
        }
        if r.check_errors > 0 {
            s.push_str(&format!("\n{} internal errors have occurred during the check.\n", r.check_errors));
        }
    }
    if r.total_clusters != 0 && r.allocated_clusters != 0 {
        s.push_str(&format!(
            "{}/{} = {:.2}% allocated, {:.2}% fragmented, {:.2}% compressed clusters\n",
            r.allocated_clusters,
            r.total_clusters,
            r.allocated_clusters as f64 * 100.0 / r.total_clusters as f64,
            r.fragmented_clusters as f64 * 100.0 / r.allocated_clusters as f64,
            r.compressed_clusters as f64 * 100.0 / r.allocated_clusters as f64
        ));
    }
    if r.image_end_offset != 0 {
        s.push_str(&format!("Image end offset: {}\n", r.image_end_offset));
    }
    s
}

/// qemu-img opens images leniently for checks and reports a broken snapshot table as a
/// failed check; mirror its wording.
fn snapshot_table_error(path: &str, e: ImgError) -> ImgError {
    if e.msg.ends_with("Snapshot table too large") {
        let mut nb = [0u8; 4];
        if let Ok(f) = crate::file::ImageFile::open(std::path::Path::new(path), false) {
            let _ = f.read_at(&mut nb, 60);
        }
        let over = u32::from_be_bytes(nb).saturating_sub(crate::qcow2::header::MAX_SNAPSHOTS);
        return ImgError::new(format!(
            "ERROR snapshot table too large\nYou can force-remove all {over} overhanging snapshots with qemu-img check -r all\nvmm-img: Check failed: File too large"
        ));
    }
    if e.msg.ends_with("Snapshot table offset invalid") {
        return ImgError::new("ERROR snapshot table offset invalid\nvmm-img: Check failed: Invalid argument");
    }
    e
}

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "hf:r:T:qU", &["output=", "repair=", "force-share", "image-opts", "object="])?;
    super::reject_unsupported(&a, &["image-opts", "object"])?;
    let json = output_json(&a)?;
    let quiet = a.has("q");
    let repair = match a.value("r").or(a.value("repair")) {
        None => Repair::None,
        Some("leaks") => Repair::Leaks,
        Some("all") => Repair::All,
        Some(_) => {
            return Err(ImgError::new("Invalid option for -r, expecting 'leaks' or 'all'".to_string()));
        }
    };
    let Some(path) = a.positional.first() else {
        return Err(ImgError::usage("Expecting one image file name"));
    };
    let node = open_image(path, a.value("f"), repair == Repair::None, Backing::None)
        .map_err(|e| snapshot_table_error(path, e))?;
    let Some(q) = node.qcow2() else {
        return Err(ImgError::new("This image format does not support checks").code(63));
    };
    let _ = Format::Qcow2;
    let r = q.check(repair).map_err(|e| ImgError::new(format!("Check failed: {e}")))?;
    for m in &r.messages {
        eprintln!("{m}");
    }
    if json {
        let c = ImageCheck {
            image_end_offset: r.image_end_offset,
            total_clusters: r.total_clusters,
            check_errors: r.check_errors,
            leaks: r.leaks,
            corruptions: r.corruptions,
            filename: path,
            format: "qcow2",
            allocated_clusters: r.allocated_clusters,
            fragmented_clusters: r.fragmented_clusters,
            compressed_clusters: r.compressed_clusters,
            leaks_fixed: r.leaks_fixed,
            corruptions_fixed: r.corruptions_fixed,
        };
        println!("{}", to_json(&c));
    } else if !quiet {
        print!("{}", human(&r));
    }
    Ok(if r.check_errors > 0 {
        1
    } else if r.corruptions > 0 {
        2
    } else if r.leaks > 0 {
        3
    } else {
        0
    })
}
