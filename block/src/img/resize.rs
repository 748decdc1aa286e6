//! `vmm-img resize [--shrink] FILE [+|-]SIZE`.

use super::size::parse_size;
use super::{ImgError, ImgResult, args, open_image};
use crate::node::{Backing, Format};

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "f:hqU", &["shrink", "preallocation=", "image-opts", "object="])?;
    super::reject_unsupported(&a, &["image-opts", "object", "preallocation"])?;
    if a.positional.len() != 2 {
        return Err(ImgError::usage("Expecting image file name and size"));
    }
    let path = &a.positional[0];
    let spec = &a.positional[1];
    let (rel, num) = match spec.as_bytes().first() {
        Some(b'+') => (1i8, &spec[1..]),
        Some(b'-') => (-1i8, &spec[1..]),
        _ => (0i8, spec.as_str()),
    };
    let n = parse_size(num).ok_or_else(|| ImgError::new(super::create::SIZE_ERROR))?;
    let node = open_image(path, a.value("f"), false, Backing::None)?;
    let cur = node.size();
    let new = match rel {
        1 => cur.checked_add(n),
        -1 => cur.checked_sub(n),
        _ => Some(n),
    };
    let Some(new) = new.filter(|&v| v > 0 || rel == 0) else {
        return Err(ImgError::new("New image size must be positive"));
    };
    if new < cur && !a.has("shrink") {
        eprintln!("vmm-img: Use the --shrink option to perform a shrink operation.");
        return Err(ImgError::new(
            "warning: Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.",
        ));
    }
    if node.format() == Format::Qcow2 && new % 512 != 0 {
        return Err(ImgError::new("The new size must be a multiple of 512"));
    }
    node.resize(new)?;
    node.flush()?;
    if !a.has("q") {
        println!("Image resized.");
    }
    Ok(0)
}
