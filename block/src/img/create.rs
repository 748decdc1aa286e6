//! `vmm-img create`.

use super::args::{self, split_options};
use super::size::parse_size;
use super::{ImgError, ImgResult, open_image, parse_format};
use crate::node::{Backing, Format, combine_backing_path};
use crate::qcow2::create::{CreateOptions, Preallocation, create};
use std::path::Path;

pub const SIZE_ERROR: &str = "Invalid image size specified. You may use k, M, G, T, P or E suffixes for\nvmm-img: kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.";

/// `-o` values understood for qcow2 / raw targets (shared with convert).
#[derive(Debug, Default, Clone)]
pub struct FormatOptions {
    pub size: Option<u64>,
    pub compat: Option<String>,
    pub backing_file: Option<String>,
    pub backing_fmt: Option<String>,
    pub cluster_size: Option<u64>,
    pub preallocation: Option<Preallocation>,
    pub lazy_refcounts: Option<bool>,
    pub refcount_bits: Option<u32>,
}

fn on_off(k: &str, v: &str) -> Result<bool, ImgError> {
    match v {
        "on" | "yes" | "true" => Ok(true),
        "off" | "no" | "false" => Ok(false),
        _ => Err(ImgError::new(format!("Parameter '{k}' expects 'on' or 'off'"))),
    }
}

/// Parses `-o` strings for `fmt`; `file` prefixes errors as qemu-img does.
pub fn parse_format_options(opts: &[&str], fmt: Format, file: &str) -> Result<FormatOptions, ImgError> {
    let mut o = FormatOptions::default();
    let err = |m: String| ImgError::new(format!("{file}: {m}"));
    for s in opts {
        for (k, v) in split_options(s) {
            match (fmt, k.as_str()) {
                (_, "size") => {
                    o.size = Some(parse_size(&v).ok_or_else(|| ImgError::new(super::create::SIZE_ERROR))?)
                }
                (_, "preallocation") => {
                    let p = Preallocation::parse(&v).map_err(|e| err(e.to_string()))?;
                    if fmt == Format::Raw && p == Preallocation::Metadata {
                        return Err(err(format!("Parameter 'preallocation' does not accept value '{v}'")));
                    }
                    o.preallocation = Some(p);
                }
                (Format::Qcow2, "compat") => match v.as_str() {
                    "0.10" | "v2" | "1.1" | "v3" => o.compat = Some(v),
                    _ => {
                        return Err(err(format!("Parameter 'compat' does not accept value '{v}'")));
                    }
                },
                (Format::Qcow2, "backing_file") => o.backing_file = Some(v),
                (Format::Qcow2, "backing_fmt") => o.backing_fmt = Some(v),
                (Format::Qcow2, "cluster_size") => {
                    o.cluster_size = Some(
                        parse_size(&v)
                            .ok_or_else(|| err("Parameter 'cluster_size' expects a size".to_string()))?,
                    )
                }
                (Format::Qcow2, "lazy_refcounts") => o.lazy_refcounts = Some(on_off(&k, &v)?),
                (Format::Qcow2, "refcount_bits") => {
                    o.refcount_bits = Some(
                        v.parse()
                            .map_err(|_| err("Parameter 'refcount_bits' expects a number".to_string()))?,
                    )
                }
                (Format::Qcow2, "compression_type") => {
                    if v != "zlib" {
                        return Err(err(format!("Compression type '{v}' is not supported by vmm-img")));
                    }
                }
                (Format::Qcow2, "extended_l2") => {
                    if on_off(&k, &v)? {
                        return Err(err("Extended L2 entries are not supported by vmm-img".into()));
                    }
                }
                (Format::Qcow2, "encryption" | "encrypt.format" | "data_file" | "data_file_raw") => {
                    return Err(err(format!("Option '{k}' is not supported by vmm-img")));
                }
                _ => return Err(err(format!("Invalid parameter '{k}'"))),
            }
        }
    }
    Ok(o)
}

/// The "Formatting '...', fmt=..." line.
pub fn formatting_line(path: &str, fmt: Format, o: &CreateOptions, fo: &FormatOptions) -> String {
    match fmt {
        Format::Raw => {
            let mut s = format!("Formatting '{path}', fmt=raw size={}", o.size);
            if let Some(p) = fo.preallocation {
                s.push_str(&format!(" preallocation={}", p.as_str()));
            }
            s
        }
        Format::Qcow2 => {
            let mut s =
                format!("Formatting '{path}', fmt=qcow2 cluster_size={} extended_l2=off", o.cluster_size);
            if let Some(p) = fo.preallocation {
                s.push_str(&format!(" preallocation={}", p.as_str()));
            }
            s.push_str(&format!(" compression_type=zlib size={}", o.size));
            if let Some(b) = &o.backing_file {
                s.push_str(&format!(" backing_file={b}"));
            }
            if let Some(b) = &o.backing_format {
                s.push_str(&format!(" backing_fmt={b}"));
            }
            if let Some(c) = &fo.compat {
                s.push_str(&format!(" compat={c}"));
            }
            s.push_str(&format!(
                " lazy_refcounts={} refcount_bits={}",
                if o.lazy_refcounts { "on" } else { "off" },
                o.refcount_bits
            ));
            s
        }
    }
}

/// Creates a raw image of `size` with preallocation.
pub fn create_raw(path: &Path, size: u64, prealloc: Preallocation) -> Result<(), ImgError> {
    let f = crate::file::ImageFile::create(path)?;
    match prealloc {
        Preallocation::Off | Preallocation::Metadata => f.set_len(size)?,
        Preallocation::Falloc | Preallocation::Full => {
            let zeroes = vec![0u8; 1 << 20];
            let mut pos = 0;
            while pos < size {
                let n = (size - pos).min(zeroes.len() as u64);
                f.write_at(&zeroes[..n as usize], pos)?;
                pos += n;
            }
            f.set_len(size)?;
        }
    }
    Ok(())
}

/// Builds qcow2 create options from `-o` values.
pub fn qcow2_options(fo: &FormatOptions, size: u64) -> CreateOptions {
    let d = CreateOptions::default();
    CreateOptions {
        size,
        cluster_size: fo.cluster_size.unwrap_or(d.cluster_size),
        version: match fo.compat.as_deref() {
            Some("0.10" | "v2") => 2,
            _ => 3,
        },
        backing_file: fo.backing_file.clone(),
        backing_format: fo.backing_fmt.clone(),
        lazy_refcounts: fo.lazy_refcounts.unwrap_or(false),
        refcount_bits: fo.refcount_bits.unwrap_or(16),
        preallocation: fo.preallocation.unwrap_or_default(),
    }
}

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(argv, "hf:F:b:o:qu", &["object="])?;
    super::reject_unsupported(&a, &["object"])?;
    let quiet = a.has("q");
    let fmt = parse_format(a.value("f").unwrap_or("raw"))?;
    let Some(path) = a.positional.first() else {
        return Err(ImgError::usage("Expecting image file name"));
    };
    if a.positional.len() > 2 {
        return Err(ImgError::usage(format!("Invalid parameter '{}'", a.positional[2])));
    }
    let size_arg = match a.positional.get(1) {
        Some(s) => Some(parse_size(s).ok_or_else(|| ImgError::new(SIZE_ERROR))?),
        None => None,
    };
    let mut fo = parse_format_options(&a.values("o"), fmt, path)?;
    if let Some(b) = a.value("b") {
        fo.backing_file = Some(b.to_string());
    }
    if let Some(f) = a.value("F") {
        fo.backing_fmt = Some(f.to_string());
    }
    if fo.backing_file.is_some() && fmt == Format::Raw {
        return Err(ImgError::new(format!("{path}: Backing file not supported for file format 'raw'")));
    }
    let mut size = size_arg.or(fo.size);
    if let Some(b) = fo.backing_file.clone() {
        let full = combine_backing_path(path, &b);
        if fo.backing_fmt.is_none() {
            let detected = Format::probe(Path::new(&full))
                .map(|f| format!("\nDetected format of {}.", f.name()))
                .unwrap_or_default();
            return Err(ImgError::new(format!(
                "{path}: Backing file specified without backing format{detected}"
            )));
        }
        if let Some(f) = &fo.backing_fmt {
            parse_format(f)
                .map_err(|_| ImgError::new(format!("{path}: Unknown backing file format '{f}'")))?;
        }
        if !a.has("u") || size.is_none() {
            match open_image(&full, fo.backing_fmt.as_deref(), true, Backing::FromHeader) {
                Ok(n) => {
                    if size.is_none() {
                        size = Some(n.size());
                    }
                }
                Err(e) => {
                    let inner = e
                        .msg
                        .strip_prefix(&format!("Could not open '{full}': "))
                        .unwrap_or(&e.msg)
                        .to_string();
                    return Err(ImgError::new(format!("{path}: {inner}\nCould not open backing image.")));
                }
            }
        }
    }
    let Some(size) = size else {
        return Err(ImgError::new(format!("{path}: Image creation needs a size parameter")));
    };
    match fmt {
        Format::Raw => {
            if !quiet {
                let co = CreateOptions { size, ..Default::default() };
                println!("{}", formatting_line(path, fmt, &co, &fo));
            }
            create_raw(Path::new(path), size, fo.preallocation.unwrap_or_default())?;
        }
        Format::Qcow2 => {
            let co = qcow2_options(&fo, size);
            crate::qcow2::create::validate(&co).map_err(|e| ImgError::new(format!("{path}: {e}")))?;
            if !quiet {
                println!("{}", formatting_line(path, fmt, &co, &fo));
            }
            create(Path::new(path), &co).map_err(|e| ImgError::new(format!("{path}: {e}")))?;
        }
    }
    Ok(0)
}
