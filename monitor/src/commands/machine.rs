//! Identity and machine queries: query-name, query-uuid, query-kvm, query-target,
//! query-machines, query-current-machine, query-cpus-fast, query-memory-size-summary,
//! query-cpu-definitions (the models `-cpu` accepts), query-iothreads, query-hotpluggable-cpus and query-balloon (no CPU hot-plug, no balloon:
//! QEMU's answers for a machine without them).

use std::sync::Arc;

use serde::Serialize;

use crate::control::{ControlRequest, CpuInfoFast};
use crate::error::QmpError;
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};
use crate::{KvmInfo, Monitor};

#[derive(Debug, Serialize, Qapi)]
struct NameInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
}

#[derive(Debug, Serialize, Qapi)]
#[allow(clippy::upper_case_acronyms)]
struct UuidInfo {
    #[serde(rename = "UUID")]
    uuid: String,
}

#[derive(Debug, Serialize, Qapi)]
struct TargetInfo {
    arch: String,
}

#[derive(Debug, Serialize, Qapi)]
struct CurrentMachineParams {
    #[serde(rename = "wakeup-suspend-support")]
    wakeup_suspend_support: bool,
}

#[derive(Debug, Serialize, Qapi)]
struct MemoryInfo {
    #[serde(rename = "base-memory")]
    base_memory: u64,
    #[serde(rename = "plugged-memory", skip_serializing_if = "Option::is_none")]
    plugged_memory: Option<u64>,
}

#[derive(Debug, Serialize, Qapi)]
struct MachineInfo {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    alias: Option<String>,
    #[serde(rename = "is-default", skip_serializing_if = "Option::is_none")]
    is_default: Option<bool>,
    #[serde(rename = "cpu-max")]
    cpu_max: i64,
    #[serde(rename = "hotpluggable-cpus")]
    hotpluggable_cpus: bool,
    #[serde(rename = "numa-mem-supported")]
    numa_mem_supported: bool,
    deprecated: bool,
    #[serde(rename = "default-ram-id", skip_serializing_if = "Option::is_none")]
    default_ram_id: Option<String>,
}

/// `IOThreadInfo` (`-object iothread` is not supported: the list is always empty).
#[derive(Debug, Serialize, Qapi)]
pub struct IoThreadInfo {
    id: String,
    #[serde(rename = "thread-id")]
    thread_id: i64,
    #[serde(rename = "poll-max-ns")]
    poll_max_ns: i64,
    #[serde(rename = "poll-grow")]
    poll_grow: i64,
    #[serde(rename = "poll-shrink")]
    poll_shrink: i64,
    #[serde(rename = "aio-max-batch")]
    aio_max_batch: i64,
}

/// `HotpluggableCPU`.
#[derive(Debug, Serialize, Qapi)]
pub struct HotpluggableCpu {
    #[serde(rename = "type")]
    kind: String,
    #[serde(rename = "vcpus-count")]
    vcpus_count: i64,
    props: crate::control::CpuInstanceProperties,
    #[serde(rename = "qom-path", skip_serializing_if = "Option::is_none")]
    qom_path: Option<String>,
}

/// `CpuDefinitionInfo`: the models `-cpu` accepts here.
#[derive(Debug, Serialize, Qapi)]
pub struct CpuDefinitionInfo {
    name: String,
    #[serde(rename = "migration-safe")]
    migration_safe: bool,
    #[serde(rename = "static")]
    is_static: bool,
    #[serde(rename = "unavailable-features")]
    unavailable_features: Vec<String>,
    typename: String,
    deprecated: bool,
}

/// `max` and `host`, as QEMU lists them; `host` needs KVM (not available with `-machine none`).
fn cpu_definitions(kvm: bool) -> Vec<CpuDefinitionInfo> {
    let def = |name: &str, unavailable: Vec<String>| CpuDefinitionInfo {
        name: name.into(),
        migration_safe: false,
        is_static: false,
        unavailable_features: unavailable,
        typename: format!("{name}-x86_64-cpu"),
        deprecated: false,
    };
    vec![def("max", Vec::new()), def("host", if kvm { Vec::new() } else { vec!["kvm".into()] })]
}

/// `BalloonInfo`.
#[derive(Debug, Serialize, Qapi)]
pub struct BalloonInfo {
    actual: i64,
}

/// The machine types `-machine` accepts: ours, under QEMU's names as aliases, and `none`.
fn machine_list() -> Vec<MachineInfo> {
    let ours = |name: &str, alias: Option<&str>, is_default: bool| MachineInfo {
        name: name.to_string(),
        alias: alias.map(str::to_string),
        is_default: is_default.then_some(true),
        cpu_max: 255,
        hotpluggable_cpus: false,
        numa_mem_supported: false,
        deprecated: false,
        default_ram_id: Some("pc.ram".to_string()),
    };
    vec![
        ours("vmm", Some("pc"), true),
        ours("vmm-q35", Some("q35"), false),
        ours("vmm-microvm", Some("microvm"), false),
        MachineInfo {
            name: "none".into(),
            alias: None,
            is_default: None,
            cpu_max: 1,
            hotpluggable_cpus: false,
            numa_mem_supported: false,
            deprecated: false,
            default_ram_id: None,
        },
    ]
}

pub(super) fn register(reg: &mut Registry) {
    reg.add("query-name", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<_, QmpError>(NameInfo { name: m.config.name.clone() })
    });
    reg.add("query-uuid", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<_, QmpError>(UuidInfo { uuid: m.config.uuid.clone() })
    });
    reg.add("query-kvm", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<KvmInfo, QmpError>(m.config.kvm)
    });
    reg.add("query-target", Flags::default(), |_m, _a: Empty| async {
        Ok::<_, QmpError>(TargetInfo { arch: "x86_64".into() })
    });
    reg.add("query-machines", Flags::default(), |_m, _a: Empty| async { Ok::<_, QmpError>(machine_list()) });
    reg.add("query-current-machine", Flags::default(), |_m, _a: Empty| async {
        Ok::<_, QmpError>(CurrentMachineParams { wakeup_suspend_support: false })
    });
    reg.add("query-memory-size-summary", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<_, QmpError>(MemoryInfo { base_memory: m.config.memory_bytes, plugged_memory: Some(0) })
    });
    reg.add("query-iothreads", Flags::default(), |_m, _a: Empty| async {
        Ok::<Vec<IoThreadInfo>, QmpError>(Vec::new())
    });
    // No machine here supports CPU hot-plug (`hotpluggable-cpus: false` in query-machines):
    // QEMU's answer for such a machine.
    reg.add("query-hotpluggable-cpus", Flags::default(), |_m, _a: Empty| async {
        Err::<Vec<HotpluggableCpu>, _>(QmpError::generic(
            "The feature 'query-hotpluggable-cpus' is not enabled",
        ))
    });
    // There is no balloon device: QEMU's answer without one.
    reg.add("query-balloon", Flags::default(), |_m, _a: Empty| async {
        Err::<BalloonInfo, _>(QmpError::device_not_active("No balloon device has been activated"))
    });
    reg.add("query-cpu-definitions", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<_, QmpError>(cpu_definitions(m.config.kvm.enabled))
    });
    reg.add("query-cpus-fast", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<Vec<CpuInfoFast>, QmpError>(m.control.call(ControlRequest::QueryCpusFast).await?)
    });
}
