//! `yank` and `query-yank` (both allow-oob, as in QEMU): forcibly close the connections of a
//! socket chardev, e.g. to get rid of a stuck client without waiting for TCP timeouts. Every
//! socket chardev is a yank instance, as in QEMU.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::Monitor;
use crate::error::{ErrorClass, QmpError};
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};

/// `YankInstance`: a union on `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[serde(tag = "type")]
pub enum YankInstance {
    #[serde(rename = "block-node")]
    BlockNode(YankInstanceBlockNode),
    #[serde(rename = "chardev")]
    Chardev(YankInstanceChardev),
    #[serde(rename = "migration")]
    Migration(Empty),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct YankInstanceBlockNode {
    #[serde(rename = "node-name")]
    pub node_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Qapi)]
pub struct YankInstanceChardev {
    pub id: String,
}

#[derive(Debug, Deserialize, Qapi)]
struct YankArgs {
    instances: Vec<YankInstance>,
}

pub(super) fn register(reg: &mut Registry) {
    let oob = Flags { allow_oob: true, ..Flags::default() };
    reg.add("yank", oob, |m: Arc<Monitor>, a: YankArgs| async move {
        // Every instance must exist before anything is yanked (QEMU checks them all first).
        let known = m.chardevs.yank_instances();
        let found = |i: &YankInstance| matches!(i, YankInstance::Chardev(c) if known.contains(&c.id));
        if !a.instances.iter().all(found) {
            return Err(QmpError { class: ErrorClass::DeviceNotFound, desc: "Instance not found".into() });
        }
        for i in &a.instances {
            if let YankInstance::Chardev(c) = i {
                m.chardevs.yank(&c.id);
            }
        }
        Ok(Empty {})
    });
    reg.add("query-yank", oob, |m: Arc<Monitor>, _a: Empty| async move {
        let list: Vec<YankInstance> = m
            .chardevs
            .yank_instances()
            .into_iter()
            .map(|id| YankInstance::Chardev(YankInstanceChardev { id }))
            .collect();
        Ok::<_, QmpError>(list)
    });
}
