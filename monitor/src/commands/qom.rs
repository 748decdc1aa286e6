//! `qom-list`, `qom-get`, `qom-set`: QEMU's object tree, read-only.
//!
//! The tree is a model of what QEMU 7.2 shows for the same command line: `/` (a container) with
//! `machine` and `chardevs`; `/machine` (type `<machine>-machine`, with `kernel`, `initrd`,
//! `append`) holding the `peripheral` (devices with an `id`), `peripheral-anon` (`device[N]`)
//! and `unattached` (the vCPUs, at the paths `query-cpus-fast` gives) containers; each device with the properties its command line set and its
//! `virtio-backend` child (the QOM path `query-block` reports as `qdev`); `/chardevs` with one
//! object per chardev. The VMM describes the machine subtree ([`ControlRequest::QomMachine`]);
//! the chardevs come from the monitor's own registry. Properties are not writable: `qom-set`
//! answers as QEMU does for a read-only property.
//!
//! Paths resolve as in QEMU's `object_resolve_path`: absolute (`/machine/peripheral/vd0`, a
//! trailing `/` allowed), or partial (`vd0`): the one object whose path ends with it, else
//! `Device '..' not found`, or for `qom-list` `Path '..' is ambiguous`.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Monitor;
use crate::control::ControlRequest;
use crate::error::QmpError;
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};
use crate::transport::ChardevInfo;

/// One object: its QOM type, its properties (besides `type` and the children), its children.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QomObject {
    pub type_name: String,
    pub props: Vec<QomProp>,
    pub children: Vec<(String, QomObject)>,
}

/// A property and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct QomProp {
    pub name: String,
    /// QEMU's property type (`string`, `str`, `uint16`, `int32`, `bool`).
    pub type_name: String,
    pub value: Value,
}

impl QomObject {
    pub fn new(type_name: &str) -> Self {
        QomObject { type_name: type_name.to_string(), ..Default::default() }
    }

    pub fn prop(mut self, name: &str, type_name: &str, value: impl Into<Value>) -> Self {
        self.props.push(QomProp { name: name.into(), type_name: type_name.into(), value: value.into() });
        self
    }

    pub fn child(mut self, name: &str, obj: QomObject) -> Self {
        self.children.push((name.to_string(), obj));
        self
    }

    /// The machine subtree for `-machine none` and for machines without devices.
    pub fn machine(machine_type: &str, kernel: &str, initrd: &str, append: &str) -> Self {
        QomObject::new(&format!("{machine_type}-machine"))
            .prop("kernel", "string", kernel)
            .prop("initrd", "string", initrd)
            .prop("append", "string", append)
            .child("peripheral-anon", QomObject::new("container"))
            .child("peripheral", QomObject::new("container"))
            .child("unattached", QomObject::new("container"))
    }

    fn child_mut(&mut self, name: &str) -> Option<&mut QomObject> {
        self.children.iter_mut().find(|(n, _)| n == name).map(|(_, o)| o)
    }

    /// Adds an object QEMU creates itself (a vCPU) as `unattached/device[N]`.
    pub fn add_unattached(&mut self, obj: QomObject) {
        if let Some(c) = self.child_mut("unattached") {
            let n = c.children.len();
            c.children.push((format!("device[{n}]"), obj));
        }
    }

    /// Adds a device under `peripheral/ID`, or `peripheral-anon/device[N]` without an id.
    pub fn add_device(&mut self, id: Option<&str>, device: QomObject) {
        let (container, name) = match id {
            Some(id) => ("peripheral", id.to_string()),
            None => {
                let n = self.child_mut("peripheral-anon").map_or(0, |c| c.children.len());
                ("peripheral-anon", format!("device[{n}]"))
            }
        };
        if self.child_mut(container).is_none() {
            self.children.push((container.to_string(), QomObject::new("container")));
        }
        if let Some(c) = self.child_mut(container) {
            c.children.push((name, device));
        }
    }
}

/// `ObjectPropertyInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Qapi)]
pub struct ObjectPropertyInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Deserialize, Qapi)]
struct QomListArgs {
    path: String,
}

#[derive(Debug, Deserialize, Qapi)]
struct QomGetArgs {
    path: String,
    property: String,
}

#[derive(Debug, Deserialize, Qapi)]
struct QomSetArgs {
    path: String,
    property: String,
    value: Value,
}

/// QOM's type name of a chardev, from its `query-chardev` filename.
fn chardev_type(filename: &str) -> &'static str {
    let f = filename.strip_prefix("disconnected:").unwrap_or(filename);
    if ["unix:", "tcp:", "telnet:", "tn3270:", "websocket:"].iter().any(|p| f.starts_with(p)) {
        "chardev-socket"
    } else if f == "stdio" {
        "chardev-stdio"
    } else if f == "null" {
        "chardev-null"
    } else if f.starts_with("mux") {
        "chardev-mux"
    } else if f.starts_with("file") {
        "chardev-file"
    } else if f.starts_with("pipe") {
        "chardev-pipe"
    } else {
        "chardev"
    }
}

/// The whole tree: the VMM's machine subtree and the monitor's chardevs.
pub fn tree(machine: QomObject, chardevs: &[ChardevInfo]) -> QomObject {
    let mut devs = QomObject::new("container");
    for c in chardevs {
        devs = devs.child(&c.label, QomObject::new(chardev_type(&c.filename)));
    }
    QomObject::new("container").child("machine", machine).child("chardevs", devs)
}

/// An object found by path, with its absolute path.
struct Found<'a> {
    path: String,
    obj: &'a QomObject,
}

/// Every object of the tree with its absolute path (`/` for the root), depth first.
fn walk<'a>(path: &str, obj: &'a QomObject, out: &mut Vec<Found<'a>>) {
    out.push(Found { path: if path.is_empty() { "/".into() } else { path.to_string() }, obj });
    for (name, child) in &obj.children {
        walk(&format!("{path}/{name}"), child, out);
    }
}

/// QEMU's `object_resolve_path`: Ok(object) or Err(ambiguous?).
fn resolve<'a>(root: &'a QomObject, path: &str) -> Result<Found<'a>, bool> {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if path.starts_with('/') {
        let mut obj = root;
        let mut abs = String::new();
        for p in &parts {
            obj = obj.children.iter().find(|(n, _)| n == p).map(|(_, o)| o).ok_or(false)?;
            abs = format!("{abs}/{p}");
        }
        return Ok(Found { path: if abs.is_empty() { "/".into() } else { abs }, obj });
    }
    if parts.is_empty() {
        return Err(false);
    }
    let mut all = Vec::new();
    walk("", root, &mut all);
    let suffix = format!("/{}", parts.join("/"));
    let mut hits = all.into_iter().filter(|f| f.path.ends_with(&suffix));
    match (hits.next(), hits.next()) {
        (Some(f), None) => Ok(f),
        (Some(_), Some(_)) => Err(true),
        (None, _) => Err(false),
    }
}

/// `qom-list`: `type`, the properties, then the children as `child<TYPE>`.
fn list(obj: &QomObject) -> Vec<ObjectPropertyInfo> {
    let mut v = vec![ObjectPropertyInfo { name: "type".into(), kind: "string".into() }];
    v.extend(
        obj.props.iter().map(|p| ObjectPropertyInfo { name: p.name.clone(), kind: p.type_name.clone() }),
    );
    v.extend(
        obj.children
            .iter()
            .map(|(n, c)| ObjectPropertyInfo { name: n.clone(), kind: format!("child<{}>", c.type_name) }),
    );
    v
}

/// `qom-get`: a child property reads as the child's path, as in QEMU.
fn get(found: &Found, property: &str) -> Result<Value, QmpError> {
    let obj = found.obj;
    if property == "type" {
        return Ok(Value::String(obj.type_name.clone()));
    }
    if let Some(p) = obj.props.iter().find(|p| p.name == property) {
        return Ok(p.value.clone());
    }
    if obj.children.iter().any(|(n, _)| n == property) {
        let base = if found.path == "/" { "" } else { found.path.as_str() };
        return Ok(Value::String(format!("{base}/{property}")));
    }
    Err(not_found(obj, property))
}

fn not_found(obj: &QomObject, property: &str) -> QmpError {
    QmpError::generic(format!("Property '{}.{property}' not found", obj.type_name))
}

async fn current(m: &Monitor) -> Result<QomObject, QmpError> {
    let machine = m.control.call(ControlRequest::QomMachine).await?;
    Ok(tree(machine, &m.chardevs.list()))
}

pub(super) fn register(reg: &mut Registry) {
    reg.add("qom-list", Flags::default(), |m: Arc<Monitor>, a: QomListArgs| async move {
        let root = current(&m).await?;
        match resolve(&root, &a.path) {
            Ok(f) => Ok(list(f.obj)),
            Err(true) => Err(QmpError::generic(format!("Path '{}' is ambiguous", a.path))),
            Err(false) => Err(QmpError::device_not_found(&a.path)),
        }
    });
    reg.add("qom-get", Flags::default(), |m: Arc<Monitor>, a: QomGetArgs| async move {
        let root = current(&m).await?;
        let found = resolve(&root, &a.path).map_err(|_| QmpError::device_not_found(&a.path))?;
        get(&found, &a.property)
    });
    reg.add("qom-set", Flags::default(), |m: Arc<Monitor>, a: QomSetArgs| async move {
        let _ = a.value;
        let root = current(&m).await?;
        let found = resolve(&root, &a.path).map_err(|_| QmpError::device_not_found(&a.path))?;
        get(&found, &a.property)?;
        Err::<Empty, _>(QmpError::generic(format!(
            "Property '{}.{}' is not writable",
            found.obj.type_name, a.property
        )))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QomObject {
        let mut machine = QomObject::machine("none", "", "", "");
        let blk = |drive: &str| {
            QomObject::new("virtio-blk-pci")
                .prop("drive", "str", drive)
                .child("virtio-backend", QomObject::new("virtio-blk-device").prop("drive", "str", drive))
        };
        machine.add_device(Some("vd0"), blk("d0"));
        machine.add_device(None, blk("virtio0"));
        let chardevs = vec![ChardevInfo {
            label: "compat_monitor0".into(),
            filename: "disconnected:unix:/tmp/q.sock,server=on".into(),
            frontend_open: true,
        }];
        tree(machine, &chardevs)
    }

    fn names(v: &[ObjectPropertyInfo]) -> Vec<(String, String)> {
        v.iter().map(|p| (p.name.clone(), p.kind.clone())).collect()
    }

    #[test]
    fn lists_like_qemu() {
        let root = sample();
        let r = resolve(&root, "/").unwrap();
        assert_eq!(
            names(&list(r.obj)),
            [("type", "string"), ("machine", "child<none-machine>"), ("chardevs", "child<container>")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        let r = resolve(&root, "/machine/peripheral-anon").unwrap();
        assert_eq!(names(&list(r.obj))[1], ("device[0]".to_string(), "child<virtio-blk-pci>".to_string()));
        let r = resolve(&root, "/chardevs").unwrap();
        assert_eq!(names(&list(r.obj))[1].1, "child<chardev-socket>");
    }

    #[test]
    fn paths_resolve_as_qemu() {
        let root = sample();
        assert_eq!(resolve(&root, "/machine/").unwrap().path, "/machine");
        assert_eq!(resolve(&root, "machine").unwrap().path, "/machine");
        assert_eq!(resolve(&root, "vd0").unwrap().path, "/machine/peripheral/vd0");
        assert_eq!(resolve(&root, "vd0/virtio-backend").unwrap().obj.type_name, "virtio-blk-device");
        assert!(matches!(resolve(&root, "virtio-backend"), Err(true)));
        assert!(matches!(resolve(&root, "/bogus"), Err(false)));
        assert!(matches!(resolve(&root, ""), Err(false)));
    }

    #[test]
    fn get_reads_type_props_and_child_paths() {
        let root = sample();
        let m = resolve(&root, "/machine").unwrap();
        assert_eq!(get(&m, "type").unwrap(), "none-machine");
        assert_eq!(get(&m, "peripheral").unwrap(), "/machine/peripheral");
        assert_eq!(get(&resolve(&root, "/").unwrap(), "machine").unwrap(), "/machine");
        assert_eq!(get(&resolve(&root, "vd0").unwrap(), "drive").unwrap(), "d0");
        assert_eq!(get(&m, "123").unwrap_err().desc, "Property 'none-machine.123' not found");
    }
}
