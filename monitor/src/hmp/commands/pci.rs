//! `info pci`: QEMU's `hmp_info_pci` layout over QMP `query-pci`.

use serde_json::Value;

use crate::hmp::context::{Ctx, out};
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const INFO: &[HmpCommand] = &[HmpCommand {
    names: "pci",
    args_type: "",
    params: "",
    help: "show PCI info",
    handler: info_pci,
    sub_table: None,
}];

fn int(v: &Value, k: &str) -> i64 {
    v.get(k).and_then(Value::as_i64).unwrap_or(0)
}

/// One function, as `hmp_info_pci_device` prints it.
pub(crate) fn format_device(d: &Value) -> String {
    let mut s = format!(
        "  Bus {:2}, device {:3}, function {}:\n    ",
        int(d, "bus"),
        int(d, "slot"),
        int(d, "function")
    );
    let class = d.get("class_info").cloned().unwrap_or(Value::Null);
    match class.get("desc").and_then(Value::as_str) {
        Some(desc) => s.push_str(desc),
        None => s.push_str(&format!("Class {:04}", int(&class, "class"))),
    }
    let id = d.get("id").cloned().unwrap_or(Value::Null);
    s.push_str(&format!(": PCI device {:04x}:{:04x}\n", int(&id, "vendor"), int(&id, "device")));
    if let (Some(sv), Some(ss)) =
        (id.get("subsystem-vendor").and_then(Value::as_i64), id.get("subsystem").and_then(Value::as_i64))
    {
        s.push_str(&format!("      PCI subsystem {sv:04x}:{ss:04x}\n"));
    }
    if let Some(irq) = d.get("irq").and_then(Value::as_i64) {
        let pin = (b'A' as i64 + int(d, "irq_pin") - 1) as u8 as char;
        s.push_str(&format!("      IRQ {irq}, pin {pin}\n"));
    }
    for r in d.get("regions").and_then(Value::as_array).into_iter().flatten() {
        let addr = int(r, "address") as u64;
        let end = addr.wrapping_add(int(r, "size") as u64).wrapping_sub(1);
        s.push_str(&format!("      BAR{}: ", int(r, "bar")));
        if r.get("type").and_then(Value::as_str) == Some("io") {
            s.push_str(&format!("I/O at 0x{addr:04x} [0x{end:04x}].\n"));
        } else {
            let bits = if r.get("mem_type_64").and_then(Value::as_bool) == Some(true) { 64 } else { 32 };
            let pf =
                if r.get("prefetch").and_then(Value::as_bool) == Some(true) { " prefetchable" } else { "" };
            s.push_str(&format!("{bits} bit{pf} memory at 0x{addr:08x} [0x{end:08x}].\n"));
        }
    }
    s.push_str(&format!("      id \"{}\"\n", d.get("qdev_id").and_then(Value::as_str).unwrap_or("")));
    s
}

fn info_pci(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(list) = ctx.qmp_simple("query-pci").await else { return };
        for bus in list.as_array().into_iter().flatten() {
            for d in bus.get("devices").and_then(Value::as_array).into_iter().flatten() {
                let text = format_device(d);
                out!(ctx, "{text}");
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// QEMU 7.2's `info pci` for these functions (shared/ref/qemu-7.2/qemu72-t2.txt, and a run
    /// with a modern-only virtio-blk-pci).
    #[test]
    fn matches_qemu_text() {
        let dev = serde_json::json!({
            "bus": 0, "slot": 2, "function": 0,
            "class_info": {"class": 256, "desc": "SCSI controller"},
            "id": {"device": 4097, "vendor": 6900, "subsystem": 2, "subsystem-vendor": 6900},
            "irq": 10, "irq_pin": 1, "qdev_id": "vd0",
            "regions": [
                {"bar": 0, "type": "io", "address": 49152, "size": 128},
                {"bar": 1, "type": "memory", "address": 4273733632u64, "size": 4096, "prefetch": false, "mem_type_64": false},
                {"bar": 4, "type": "memory", "address": 4273963008u64, "size": 16384, "prefetch": true, "mem_type_64": true}
            ]
        });
        assert_eq!(
            format_device(&dev),
            "  Bus  0, device   2, function 0:\n    SCSI controller: PCI device 1af4:1001\n      PCI subsystem 1af4:0002\n      IRQ 10, pin A\n      BAR0: I/O at 0xc000 [0xc07f].\n      BAR1: 32 bit memory at 0xfebc0000 [0xfebc0fff].\n      BAR4: 64 bit prefetchable memory at 0xfebf8000 [0xfebfbfff].\n      id \"vd0\"\n"
        );
        let unassigned = serde_json::json!({
            "bus": 0, "slot": 3, "function": 0,
            "class_info": {"class": 3328},
            "id": {"device": 4162, "vendor": 6900},
            "irq_pin": 0, "qdev_id": "",
            "regions": [{"bar": 1, "type": "memory", "address": -1, "size": 4096, "prefetch": false, "mem_type_64": false}]
        });
        assert_eq!(
            format_device(&unassigned),
            "  Bus  0, device   3, function 0:\n    Class 3328: PCI device 1af4:1042\n      BAR1: 32 bit memory at 0xffffffffffffffff [0x00000ffe].\n      id \"\"\n"
        );
    }
}
