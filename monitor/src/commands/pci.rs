//! `query-pci`: the PCI functions of the machine, in QEMU 7.2's PciInfo shape.

use std::sync::Arc;

use serde::Serialize;

use crate::Monitor;
use crate::control::ControlRequest;
use crate::error::QmpError;
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};

/// One PCI bus and its functions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Qapi)]
pub struct PciInfo {
    pub bus: i64,
    pub devices: Vec<PciDeviceInfo>,
}

/// One function.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Qapi)]
pub struct PciDeviceInfo {
    pub bus: i64,
    pub slot: i64,
    pub function: i64,
    pub class_info: PciDeviceClass,
    pub id: PciDeviceId,
    /// The legacy interrupt line, present when the function has an interrupt pin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub irq: Option<i64>,
    /// 0: no pin, 1-4: INTA-INTD.
    pub irq_pin: i64,
    pub qdev_id: String,
    pub regions: Vec<PciMemoryRegion>,
}

/// Class and subclass, with QEMU's description when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Qapi)]
pub struct PciDeviceClass {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desc: Option<String>,
    #[serde(rename = "class")]
    pub class: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Qapi)]
pub struct PciDeviceId {
    pub device: i64,
    pub vendor: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subsystem: Option<i64>,
    #[serde(rename = "subsystem-vendor", skip_serializing_if = "Option::is_none")]
    pub subsystem_vendor: Option<i64>,
}

/// One BAR; `address` is -1 while unassigned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Qapi)]
pub struct PciMemoryRegion {
    pub bar: i64,
    #[serde(rename = "type")]
    pub kind: String,
    pub address: i64,
    pub size: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefetch: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mem_type_64: Option<bool>,
}

pub(super) fn register(reg: &mut Registry) {
    reg.add("query-pci", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<Vec<PciInfo>, QmpError>(m.control.call(ControlRequest::QueryPci).await?)
    });
}
