//! `vmm-img info`.

use super::{ImgError, ImgResult, args, open_image, output_json, to_json};
use crate::info::{ImageInfo, human};
use crate::node::{Backing, combine_backing_path};
use std::collections::HashSet;

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "hf:U", &["output=", "backing-chain", "force-share", "image-opts", "object="])?;
    super::reject_unsupported(&a, &["image-opts", "object"])?;
    let json = output_json(&a)?;
    let Some(path) = a.positional.first() else {
        return Err(ImgError::usage("Expecting one image file name"));
    };
    let mut infos: Vec<ImageInfo> = Vec::new();
    let mut name = path.clone();
    let mut fmt = a.value("f").map(str::to_string);
    let mut seen = HashSet::new();
    loop {
        let key = std::fs::canonicalize(&name).unwrap_or_else(|_| name.clone().into());
        if !seen.insert(key) {
            return Err(ImgError::new(format!("Backing file '{name}' creates an infinite loop.")));
        }
        let node = open_image(&name, fmt.as_deref(), true, Backing::None)?;
        let info = node.info()?;
        let next = info.backing_filename.clone();
        let next_fmt = info.backing_filename_format.clone();
        infos.push(info);
        match next {
            Some(b) if a.has("backing-chain") => {
                name = combine_backing_path(&name, &b);
                fmt = next_fmt;
            }
            _ => break,
        }
    }
    if json {
        if a.has("backing-chain") {
            println!("{}", to_json(&infos));
        } else if let Some(i) = infos.first() {
            println!("{}", to_json(i));
        }
    } else {
        let text: Vec<String> = infos.iter().map(human).collect();
        print!("{}", text.join("\n"));
    }
    Ok(0)
}
