//! `vmm-img map`: the allocation map as qemu-img prints it (human or JSON).

use super::size::parse_size;
use super::{ImgError, ImgResult, args, open_image, output_json};
use crate::node::Backing;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    start: u64,
    length: u64,
    depth: u32,
    present: bool,
    zero: bool,
    data: bool,
    offset: Option<u64>,
    file: String,
}

impl Entry {
    fn can_merge(&self, n: &Entry) -> bool {
        self.depth == n.depth
            && self.present == n.present
            && self.zero == n.zero
            && self.data == n.data
            && self.file == n.file
            && match (self.offset, n.offset) {
                (None, None) => true,
                (Some(a), Some(b)) => a + self.length == b,
                _ => false,
            }
    }

    fn json(&self) -> String {
        let mut s = format!(
            "{{ \"start\": {}, \"length\": {}, \"depth\": {}, \"present\": {}, \"zero\": {}, \"data\": {}",
            self.start, self.length, self.depth, self.present, self.zero, self.data
        );
        if let Some(o) = self.offset {
            s.push_str(&format!(", \"offset\": {o}"));
        }
        s.push('}');
        s
    }
}

fn hex(v: u64) -> String {
    if v == 0 { "0".into() } else { format!("{v:#x}") }
}

pub fn run(argv: &[String]) -> ImgResult {
    let a = args::parse(
        argv,
        "hf:U",
        &["output=", "start-offset=", "max-length=", "object=", "image-opts", "force-share"],
    )?;
    super::reject_unsupported(&a, &["object", "image-opts"])?;
    let json = output_json(&a)?;
    let Some(path) = a.positional.first() else {
        return Err(ImgError::usage("Expecting one image file name"));
    };
    let start = match a.value("start-offset") {
        None => 0,
        Some(s) => parse_size(s).ok_or_else(|| {
            ImgError::new("Invalid start offset specified! You may use k, M, G, T, P or E suffixes for ")
        })?,
    };
    let node = open_image(path, a.value("f"), true, Backing::FromHeader)?;
    let chain = node.chain();
    let size = node.size();
    let end = match a.value("max-length") {
        None => size,
        Some(s) => {
            let l = parse_size(s).ok_or_else(|| ImgError::new("Invalid max length specified!"))?;
            start.saturating_add(l).min(size)
        }
    };
    let mut entries: Vec<Entry> = Vec::new();
    let mut off = start;
    while off < end {
        let st = node.block_status(off, end - off)?;
        let file = chain.get(st.depth as usize).map(|n| n.filename().to_string()).unwrap_or_default();
        let e = Entry {
            start: off,
            length: st.len,
            depth: st.depth,
            present: st.present,
            zero: st.zero,
            data: st.data,
            offset: st.offset,
            file,
        };
        match entries.last_mut() {
            Some(l) if l.can_merge(&e) => l.length += e.length,
            _ => entries.push(e),
        }
        off += st.len.max(1);
    }
    if json {
        let parts: Vec<String> = entries.iter().map(Entry::json).collect();
        println!("[{}]", parts.join(",\n"));
    } else {
        let mut out = format!("{:<16}{:<16}{:<16}{}\n", "Offset", "Length", "Mapped to", "File");
        for e in &entries {
            if e.data && e.offset.is_none() {
                print!("{out}");
                return Err(ImgError::new("File contains external, encrypted or compressed clusters."));
            }
            if let (true, Some(o)) = (e.data, e.offset) {
                out.push_str(&format!(
                    "{:<15} {:<15} {:<15} {}\n",
                    hex(e.start),
                    hex(e.length),
                    hex(o),
                    e.file
                ));
            }
        }
        print!("{out}");
    }
    Ok(0)
}
