//! `-device DRIVER,prop=value,...`: the devices this VMM can create, with QEMU's property names
//! and error texts. Only virtio-blk-pci (alias virtio-blk) exists so far.

use crate::blockdev::OnError;
use crate::cli::keyval::{KeyVal, parse_bool};

/// One `-device`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceSpec {
    VirtioBlk(VirtioBlkSpec),
}

/// `-device virtio-blk-pci,...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtioBlkSpec {
    /// A drive name (`-drive id=`) or a block node name (`-blockdev node-name=`).
    pub drive: String,
    pub id: Option<String>,
    pub serial: Option<String>,
    pub num_queues: u16,
    pub queue_size: u16,
    /// `addr=SLOT[.FN]` (hex, function 0 only).
    pub slot: Option<u8>,
    /// `rerror=` / `werror=`; `None` (`auto`, the default) keeps the drive's.
    pub rerror: Option<OnError>,
    pub werror: Option<OnError>,
}

/// Properties virtio-blk-pci accepts (some only for compatibility: `bus=pci.0`, `bootindex`).
const BLK_PROPS: &[&str] = &[
    "driver",
    "drive",
    "id",
    "serial",
    "num-queues",
    "queue-size",
    "addr",
    "bus",
    "bootindex",
    "disable-legacy",
    "disable-modern",
    "rerror",
    "werror",
];

/// Models QEMU has that are not implemented here (a clearer error than "not a valid model").
const KNOWN_UNSUPPORTED: &[&str] = &[
    "virtio-net-pci",
    "virtio-net",
    "e1000",
    "e1000e",
    "rtl8139",
    "ide-hd",
    "ide-cd",
    "scsi-hd",
    "virtio-scsi-pci",
    "nvme",
    "virtio-rng-pci",
    "virtio-balloon-pci",
    "virtio-serial-pci",
    "usb-storage",
];

/// QEMU's rule for ids: a letter, then letters, digits, `-`, `.`, `_`.
pub fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

fn prop_err(driver: &str, prop: &str, value: &str) -> String {
    format!("Property '{driver}.{prop}' doesn't take value '{value}'")
}

/// `rerror` / `werror` as a device property (QEMU's BlockdevOnError: `auto` inherits the drive's).
fn parse_on_error(kv: &KeyVal, prop: &str) -> Result<Option<OnError>, String> {
    let Some(v) = kv.get(prop) else { return Ok(None) };
    match v {
        "auto" => Ok(None),
        "report" => Ok(Some(OnError::Report)),
        "ignore" => Ok(Some(OnError::Ignore)),
        "enospc" => Ok(Some(OnError::Enospc)),
        "stop" => Ok(Some(OnError::Stop)),
        _ => Err(format!("Parameter '{prop}' does not accept value '{v}'")),
    }
}

fn parse_slot(driver: &str, v: &str) -> Result<u8, String> {
    let (slot, func) = v.split_once('.').unwrap_or((v, "0"));
    let hex = |s: &str| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    match (hex(slot), hex(func)) {
        (Some(s), Some(0)) if s < 32 => Ok(s as u8),
        (Some(s), Some(f)) if s < 32 && f < 8 => {
            Err(format!("{driver}: PCI function {f} is not supported (single-function devices only)"))
        }
        _ => Err(prop_err(driver, "addr", v)),
    }
}

/// Parses one `-device` argument.
pub fn parse(opts: &str) -> Result<DeviceSpec, String> {
    let kv = KeyVal::parse(opts, Some("driver"));
    let driver = kv.get("driver").ok_or("Parameter 'driver' is missing")?;
    match driver {
        "virtio-blk-pci" | "virtio-blk" => {}
        d if KNOWN_UNSUPPORTED.contains(&d) => {
            return Err(format!("device '{d}' is not supported by vmm yet"));
        }
        d => return Err(format!("'{d}' is not a valid device model name")),
    }
    let name = "virtio-blk-pci";
    if let Some(k) = kv.unknown_key(BLK_PROPS) {
        return Err(format!("Property '{name}.{k}' not found"));
    }
    let id = kv.get("id").map(str::to_string);
    if let Some(id) = &id
        && !valid_id(id)
    {
        return Err("Parameter 'id' expects an identifier".into());
    }
    let drive = kv.get("drive").ok_or("drive property not set")?.to_string();
    let num_queues = match kv.get("num-queues") {
        None => 1,
        Some(v) => {
            let n: u16 = v.parse().map_err(|_| prop_err(name, "num-queues", v))?;
            if n == 0 {
                return Err("num-queues property must be larger than 0".into());
            }
            if usize::from(n) > crate::machine::virtio::pci::MAX_QUEUES {
                return Err(format!(
                    "num-queues property must be at most {}",
                    crate::machine::virtio::pci::MAX_QUEUES
                ));
            }
            n
        }
    };
    let queue_size = match kv.get("queue-size") {
        None => crate::machine::virtio::blk::DEFAULT_QUEUE_SIZE,
        Some(v) => {
            let n: u16 = v.parse().map_err(|_| prop_err(name, "queue-size", v))?;
            if !n.is_power_of_two() || n > 1024 {
                return Err(format!("invalid queue-size property ({n}), must be a power of 2 (max 1024)"));
            }
            if n <= 2 {
                return Err(format!("invalid queue-size property ({n}), must be > 2"));
            }
            n
        }
    };
    let slot = kv.get("addr").map(|v| parse_slot(name, v)).transpose()?;
    if let Some(bus) = kv.get("bus").filter(|b| *b != "pci.0") {
        return Err(format!("Bus '{bus}' not found"));
    }
    if let Some(v) = kv.get("disable-modern")
        && parse_bool("disable-modern", v)?
    {
        return Err(format!("{name}: only the modern (virtio 1.x) interface is implemented"));
    }
    if let Some(v) = kv.get("disable-legacy") {
        parse_bool("disable-legacy", v)?;
    }
    Ok(DeviceSpec::VirtioBlk(VirtioBlkSpec {
        drive,
        id,
        serial: kv.get("serial").map(str::to_string),
        num_queues,
        queue_size,
        slot,
        rerror: parse_on_error(&kv, "rerror")?,
        werror: parse_on_error(&kv, "werror")?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blk(s: &str) -> VirtioBlkSpec {
        match parse(s) {
            Ok(DeviceSpec::VirtioBlk(b)) => b,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn virtio_blk_properties() {
        let b = blk("virtio-blk-pci,drive=d0,id=vd0,serial=ABC,,1,num-queues=2,queue-size=128,addr=0x1f");
        assert_eq!(b.drive, "d0");
        assert_eq!(b.id.as_deref(), Some("vd0"));
        assert_eq!(b.serial.as_deref(), Some("ABC,1"));
        assert_eq!((b.num_queues, b.queue_size, b.slot), (2, 128, Some(31)));
        let b = blk("driver=virtio-blk,drive=d1,addr=3.0,bus=pci.0,disable-legacy=on");
        assert_eq!((b.id, b.slot, b.num_queues, b.queue_size), (None, Some(3), 1, 256));
    }

    #[test]
    fn qemu_error_texts() {
        let e = |s: &str| parse(s).unwrap_err();
        assert_eq!(e("virtio-blk-pci"), "drive property not set");
        assert_eq!(e("virtio-blk-pci,drive=d0,bogus=1"), "Property 'virtio-blk-pci.bogus' not found");
        assert_eq!(e("foo"), "'foo' is not a valid device model name");
        assert_eq!(e("virtio-blk-pci,drive=d0,num-queues=0"), "num-queues property must be larger than 0");
        assert_eq!(
            e("virtio-blk-pci,drive=d0,queue-size=3"),
            "invalid queue-size property (3), must be a power of 2 (max 1024)"
        );
        assert_eq!(
            e("virtio-blk-pci,drive=d0,addr=32"),
            "Property 'virtio-blk-pci.addr' doesn't take value '32'"
        );
        assert_eq!(e("virtio-blk-pci,drive=d0,id=1x"), "Parameter 'id' expects an identifier");
        assert!(e("virtio-net-pci,netdev=n0").contains("not supported"));
        assert!(e("virtio-blk-pci,drive=d0,disable-modern=on").contains("modern"));
        assert!(e("virtio-blk-pci,drive=d0,addr=2.1").contains("function 1"));
    }
}
