//! Commands about the protocol itself: negotiation, identity, introspection, HMP passthrough.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::QmpError;
use crate::events::catalog;
use crate::qapi::introspect::{CommandIntro, EventIntro, schema_info};
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};
use crate::{Monitor, VersionInfo};

/// QMP capabilities a client can enable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Qapi)]
#[qapi(name = "QMPCapability")]
#[serde(rename_all = "kebab-case")]
pub enum QmpCapability {
    Oob,
}

/// Arguments of `qmp_capabilities`.
#[derive(Debug, Clone, Default, Deserialize, Qapi)]
pub struct QmpCapabilitiesArgs {
    pub enable: Option<Vec<QmpCapability>>,
}

/// `query-commands` element.
#[derive(Debug, Serialize, Qapi)]
struct CommandInfo {
    name: String,
}

/// Arguments of `human-monitor-command`.
#[derive(Debug, Deserialize, Qapi)]
struct HumanMonitorCommandArgs {
    #[serde(rename = "command-line")]
    command_line: String,
    #[serde(rename = "cpu-index")]
    cpu_index: Option<i64>,
}

/// Opaque introspection result (its shape is described by SchemaInfo in QEMU; we do not model
/// the meta-schema and declare it as a list of `any`).
#[derive(Serialize)]
#[serde(transparent)]
struct SchemaList(Value);

impl Qapi for SchemaList {
    fn qapi_type() -> crate::qapi::QType {
        <Vec<Value>>::qapi_type()
    }
}

pub(super) fn register(reg: &mut Registry) {
    // In negotiation mode the session handles qmp_capabilities itself; reaching the handler means
    // the session is already in command mode.
    reg.add("qmp_capabilities", Flags::default(), |_m, _a: QmpCapabilitiesArgs| async {
        Err::<Empty, _>(QmpError::command_not_found(
            "Capabilities negotiation is already complete, command ignored",
        ))
    });
    reg.add("query-version", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<VersionInfo, QmpError>(m.config.version.clone())
    });
    reg.add("query-commands", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<_, QmpError>(
            m.registry.iter().map(|c| CommandInfo { name: c.name.to_string() }).collect::<Vec<_>>(),
        )
    });
    reg.add("query-qmp-schema", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        let commands = m.registry.iter().map(|c| CommandIntro {
            name: c.name,
            args: (c.args)(),
            ret: (c.ret)(),
            allow_oob: c.flags.allow_oob,
            features: c.flags.features,
        });
        let events = catalog::all();
        let events = events.iter().map(|(name, ty)| EventIntro { name, data: ty() });
        Ok::<_, QmpError>(SchemaList(schema_info(commands, events)))
    });
    reg.add(
        "human-monitor-command",
        Flags::default(),
        |m: Arc<Monitor>, a: HumanMonitorCommandArgs| async move {
            crate::hmp::human_monitor_command(&m, &a.command_line, a.cpu_index).await
        },
    );
}
