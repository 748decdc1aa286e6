//! `-drive` and `-hda`..`-hdd`: QEMU's legacy drive options, parsed into [`DriveSpec`]s.
//!
//! QEMU gives `-hda` (and `if=ide`) an IDE disk; we give a virtio-blk disk under the same drive
//! name (`ide0-hd0`), so monitor commands written for QEMU (`snapshot_blkdev ide0-hd0 ...`) work.

use block::Format;

use crate::cli::keyval::{KeyVal, parse_bool};

/// Which bus a drive's device sits on (`if=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    /// A virtio-blk-pci device is created for it.
    Virtio,
    /// QEMU's IDE: a virtio-blk-pci device here, named as QEMU names IDE drives.
    Ide,
    /// No device; `-device virtio-blk-pci,drive=ID` attaches one.
    None,
}

/// `cache=`: QEMU's cache modes reduced to what they mean for a drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheMode {
    /// `writethrough`, `directsync`: each write is flushed before it completes.
    pub writethrough: bool,
    /// `none`, `directsync`: O_DIRECT in QEMU (reported in query-block; we use the page cache).
    pub direct: bool,
    /// `unsafe`: flushes are ignored.
    pub no_flush: bool,
}

impl CacheMode {
    pub fn parse(s: &str) -> Result<CacheMode, String> {
        let (writethrough, direct, no_flush) = match s {
            "writeback" => (false, false, false),
            "none" => (false, true, false),
            "writethrough" => (true, false, false),
            "directsync" => (true, true, false),
            "unsafe" => (false, false, true),
            _ => return Err(format!("invalid cache option {s}")),
        };
        Ok(CacheMode { writethrough, direct, no_flush })
    }
}

/// One drive from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveSpec {
    /// The drive (BlockBackend) name: `id=`, or QEMU's default (`virtio0`, `ide0-hd0`).
    pub name: String,
    pub file: String,
    /// `None`: probe (with QEMU's warning for raw).
    pub format: Option<Format>,
    pub interface: Interface,
    pub node_name: Option<String>,
    pub read_only: bool,
    pub cache: CacheMode,
    /// `discard=unmap` (default `ignore`).
    pub discard_unmap: bool,
    /// `serial=` (QEMU moved it to -device; still accepted here).
    pub serial: Option<String>,
    /// `rerror=` (default `report`).
    pub rerror: OnError,
    /// `werror=` (default `enospc`).
    pub werror: OnError,
}

/// `rerror=` / `werror=`: what a guest request that fails on the host gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnError {
    /// The guest gets an I/O error.
    Report,
    /// The guest is told the request worked.
    Ignore,
    /// `stop` on ENOSPC, `report` otherwise (writes only).
    Enospc,
    /// The VM stops (`io-error`); the request is retried on `cont`.
    Stop,
}

impl OnError {
    /// QEMU's `parse_block_error_action`: `enospc` is for writes only.
    pub fn parse(value: &str, is_read: bool) -> Result<Self, String> {
        match value {
            "ignore" => Ok(OnError::Ignore),
            "enospc" if !is_read => Ok(OnError::Enospc),
            "stop" => Ok(OnError::Stop),
            "report" => Ok(OnError::Report),
            _ => Err(format!("'{value}' invalid {} error action", if is_read { "read" } else { "write" })),
        }
    }
}

/// Keys `-drive` accepts.
const KEYS: &[&str] = &[
    "file",
    "format",
    "if",
    "index",
    "bus",
    "unit",
    "media",
    "id",
    "node-name",
    "readonly",
    "read-only",
    "cache",
    "discard",
    "serial",
    "aio",
    "detect-zeroes",
    "werror",
    "rerror",
];

/// Allocates QEMU's default drive names while parsing a command line.
#[derive(Debug, Default)]
pub struct DriveNamer {
    virtio: u32,
    ide: [bool; 4],
}

impl DriveNamer {
    fn virtio(&mut self) -> String {
        let n = self.virtio;
        self.virtio += 1;
        format!("virtio{n}")
    }

    /// `ide{bus}-hd{unit}` for IDE index 0..3 (`-hda` = 0).
    fn ide(&mut self, index: Option<u32>) -> Result<String, String> {
        let i = match index {
            Some(i) => i as usize,
            None => self.ide.iter().position(|used| !used).ok_or("too many IDE drives")?,
        };
        if i >= 4 {
            return Err(format!("index {i} is out of range for IDE (0..3)"));
        }
        if self.ide[i] {
            return Err(format!("drive with bus={}, unit={} (index={i}) exists", i / 2, i % 2));
        }
        self.ide[i] = true;
        Ok(format!("ide{}-hd{}", i / 2, i % 2))
    }

    /// `-hda FILE` (index 0) .. `-hdd FILE` (index 3).
    pub fn hd(&mut self, index: u8, file: &str) -> Result<DriveSpec, String> {
        Ok(DriveSpec {
            name: self.ide(Some(index.into()))?,
            file: file.to_string(),
            format: None,
            interface: Interface::Ide,
            node_name: None,
            read_only: false,
            cache: CacheMode::default(),
            discard_unmap: false,
            serial: None,
            rerror: OnError::Report,
            werror: OnError::Enospc,
        })
    }

    /// `-drive KEY=VALUE,...`.
    pub fn drive(&mut self, opts: &str) -> Result<DriveSpec, String> {
        let kv = KeyVal::parse(opts, None);
        if let Some(k) = kv.unknown_key(KEYS) {
            return Err(format!("Block format 'raw' does not support the option '{k}'"));
        }
        let file = kv.get("file").ok_or("A block device must be specified for \"file\"")?.to_string();
        let format = kv.get("format").map(|f| Format::parse(f).map_err(|e| e.to_string())).transpose()?;
        let interface = match kv.get("if").unwrap_or("ide") {
            "virtio" => Interface::Virtio,
            "ide" => Interface::Ide,
            "none" => Interface::None,
            other => return Err(format!("unsupported bus type '{other}'")),
        };
        if let Some(m) = kv.get("media").filter(|m| *m != "disk") {
            return Err(format!("'{m}' media is not supported (only disk)"));
        }
        let index = kv
            .get("index")
            .map(|i| i.parse::<u32>().map_err(|_| format!("invalid index '{i}'")))
            .transpose()?;
        let name = match (kv.get("id"), interface) {
            (Some(id), Interface::Ide) => {
                self.ide(index)?;
                id.to_string()
            }
            (Some(id), _) => id.to_string(),
            (None, Interface::Virtio) => self.virtio(),
            (None, Interface::Ide) => self.ide(index)?,
            (None, Interface::None) => return Err("drive with if=none needs an id".into()),
        };
        let read_only = match kv.get("readonly").or(kv.get("read-only")) {
            Some(v) => parse_bool("read-only", v)?,
            None => false,
        };
        let cache = kv.get("cache").map(CacheMode::parse).transpose()?.unwrap_or_default();
        let discard_unmap = match kv.get("discard") {
            None | Some("ignore" | "off") => false,
            Some("unmap" | "on") => true,
            Some(other) => return Err(format!("Invalid discard option '{other}'")),
        };
        let rerror =
            kv.get("rerror").map(|v| OnError::parse(v, true)).transpose()?.unwrap_or(OnError::Report);
        let werror =
            kv.get("werror").map(|v| OnError::parse(v, false)).transpose()?.unwrap_or(OnError::Enospc);
        Ok(DriveSpec {
            name,
            file,
            format,
            interface,
            node_name: kv.get("node-name").map(str::to_string),
            read_only,
            cache,
            discard_unmap,
            serial: kv.get("serial").map(str::to_string),
            rerror,
            werror,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_default_names() {
        let mut n = DriveNamer::default();
        assert_eq!(n.hd(0, "a.qcow2").unwrap().name, "ide0-hd0");
        assert_eq!(n.drive("file=b.img,if=virtio,format=raw").unwrap().name, "virtio0");
        assert_eq!(n.drive("file=c.img,if=virtio").unwrap().name, "virtio1");
        assert_eq!(n.drive("file=d.img").unwrap().name, "ide0-hd1");
        let d = n
            .drive("file=e.qcow2,if=none,id=drive0,readonly=on,cache=none,discard=unmap,node-name=n0")
            .unwrap();
        assert_eq!((d.name.as_str(), d.interface, d.read_only), ("drive0", Interface::None, true));
        assert!(d.cache.direct && d.discard_unmap);
        assert_eq!(d.node_name.as_deref(), Some("n0"));
        assert!(n.hd(0, "x").is_err(), "index 0 is taken");
    }

    #[test]
    fn errors() {
        let mut n = DriveNamer::default();
        assert!(n.drive("if=virtio").is_err());
        assert!(n.drive("file=x,if=none").is_err());
        assert!(n.drive("file=x,bogus=1").unwrap_err().contains("'bogus'"));
        assert!(n.drive("file=x,format=vmdk").is_err());
        assert!(n.drive("file=x,cache=fast").is_err());
        assert!(n.drive("file=x,if=scsi").is_err());
    }
}
