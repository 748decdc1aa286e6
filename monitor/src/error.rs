//! The error a QMP client sees: `{"error": {"class": .., "desc": ..}}`.

use serde::Serialize;

/// QEMU's error classes (qapi/error.json, complete list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ErrorClass {
    GenericError,
    CommandNotFound,
    DeviceNotActive,
    DeviceNotFound,
    #[serde(rename = "KVMMissingCap")]
    KvmMissingCap,
}

/// A failed command, as sent on the wire. `desc` is QEMU's text where QEMU has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{desc}")]
pub struct QmpError {
    pub class: ErrorClass,
    pub desc: String,
}

impl QmpError {
    /// A `GenericError` with the given text.
    pub fn generic(desc: impl Into<String>) -> Self {
        QmpError { class: ErrorClass::GenericError, desc: desc.into() }
    }

    pub fn command_not_found(desc: impl Into<String>) -> Self {
        QmpError { class: ErrorClass::CommandNotFound, desc: desc.into() }
    }

    /// `Device 'x' not found` (class DeviceNotFound).
    pub fn device_not_found(name: &str) -> Self {
        QmpError { class: ErrorClass::DeviceNotFound, desc: format!("Device '{name}' not found") }
    }

    pub fn device_not_active(desc: impl Into<String>) -> Self {
        QmpError { class: ErrorClass::DeviceNotActive, desc: desc.into() }
    }

    /// `Parameter 'x' is missing`.
    pub fn missing_parameter(name: &str) -> Self {
        Self::generic(format!("Parameter '{name}' is missing"))
    }

    /// `Invalid parameter type for 'x', expected: integer`.
    pub fn invalid_type(name: &str, expected: &str) -> Self {
        Self::generic(format!("Invalid parameter type for '{name}', expected: {expected}"))
    }

    /// `Parameter 'x' expects uint64`.
    pub fn invalid_value(name: &str, expected: &str) -> Self {
        Self::generic(format!("Parameter '{name}' expects {expected}"))
    }

    /// `Parameter 'x' is unexpected`.
    pub fn unexpected_parameter(name: &str) -> Self {
        Self::generic(format!("Parameter '{name}' is unexpected"))
    }

    /// `Parameter 'x' does not accept value 'y'`.
    pub fn bad_enum_value(name: &str, value: &str) -> Self {
        Self::generic(format!("Parameter '{name}' does not accept value '{value}'"))
    }
}
