//! A small QAPI type system: the shape of every command's arguments and return value, of every
//! event's data, described once by `#[derive(Qapi)]` on the serde types. From it come
//! - [`check`](check::check_arguments): argument checking with QEMU's exact error texts, run
//!   before a command has any side effect;
//! - [`introspect`]: `query-qmp-schema` in QEMU's SchemaInfo format.

pub mod check;
pub mod introspect;
pub mod output;
mod schema;

pub use monitor_derive::Qapi;
pub use schema::{
    AlternateDef, Builtin, Empty, EnumDef, IntKind, Member, ObjectDef, QType, Qapi, Size, TypeFn, UnionDef,
};

/// Helper for `#[serde(skip_serializing_if = "monitor::qapi::is_false")]`.
pub fn is_false(b: &bool) -> bool {
    !*b
}
