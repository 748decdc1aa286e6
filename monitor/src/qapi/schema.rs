//! The runtime description of QAPI types, built from `'static` tables that `#[derive(Qapi)]`
//! emits. Types refer to each other through `fn() -> QType`, so recursive types (an image's
//! `backing-image`) need no allocation.

use serde_json::Value;

/// A lazily resolved type reference.
pub type TypeFn = fn() -> QType;

/// One QAPI type.
#[derive(Clone, Copy)]
pub enum QType {
    Builtin(Builtin),
    Enum(&'static EnumDef),
    Array(TypeFn),
    Object(&'static ObjectDef),
    Alternate(&'static AlternateDef),
}

/// QAPI's built-in scalar types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Str,
    Int(IntKind),
    Bool,
    Number,
    /// Any JSON value.
    Any,
    Null,
}

/// The integer flavours; introspection shows them all as `int`, argument checking differs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    I64,
    U64,
    /// A byte count (QAPI `size`): checked like `uint64`.
    Size,
    I32,
    U32,
    U16,
    U8,
}

/// An enumeration of strings.
#[derive(Debug)]
pub struct EnumDef {
    pub name: &'static str,
    pub values: &'static [&'static str],
}

/// One member of an object.
pub struct Member {
    pub name: &'static str,
    pub ty: TypeFn,
    pub optional: bool,
    pub features: &'static [&'static str],
}

/// A struct, or the common part of a flat union.
pub struct ObjectDef {
    pub name: &'static str,
    /// Objects whose members come first (a QAPI base; serde `flatten`).
    pub bases: &'static [TypeFn],
    pub members: &'static [Member],
    pub union: Option<UnionDef>,
}

/// The variant part of a flat union: the value of `tag` selects the object whose members are added.
pub struct UnionDef {
    pub tag: &'static str,
    pub variants: &'static [(&'static str, TypeFn)],
}

/// One of several types, told apart by the JSON type of the value.
pub struct AlternateDef {
    pub name: &'static str,
    pub choices: &'static [TypeFn],
}

/// Implemented by every type that appears in a command, a return value or an event.
pub trait Qapi {
    fn qapi_type() -> QType;
}

macro_rules! builtin {
    ($($t:ty => $b:expr),* $(,)?) => {
        $(impl Qapi for $t {
            fn qapi_type() -> QType {
                QType::Builtin($b)
            }
        })*
    };
}

builtin! {
    String => Builtin::Str,
    bool => Builtin::Bool,
    i64 => Builtin::Int(IntKind::I64),
    u64 => Builtin::Int(IntKind::U64),
    i32 => Builtin::Int(IntKind::I32),
    u32 => Builtin::Int(IntKind::U32),
    u16 => Builtin::Int(IntKind::U16),
    u8 => Builtin::Int(IntKind::U8),
    f64 => Builtin::Number,
    Value => Builtin::Any,
    () => Builtin::Null,
}

impl<T: Qapi> Qapi for Vec<T> {
    fn qapi_type() -> QType {
        QType::Array(T::qapi_type)
    }
}

impl<T: Qapi> Qapi for Box<T> {
    fn qapi_type() -> QType {
        T::qapi_type()
    }
}

/// A byte count: serialises as an integer, checked and introspected as QAPI `size`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct Size(pub u64);

impl Qapi for Size {
    fn qapi_type() -> QType {
        QType::Builtin(Builtin::Int(IntKind::Size))
    }
}

/// The type of commands without arguments or without return data, and of events without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

impl Qapi for Empty {
    fn qapi_type() -> QType {
        static DEF: ObjectDef = ObjectDef { name: "Empty", bases: &[], members: &[], union: None };
        QType::Object(&DEF)
    }
}

impl ObjectDef {
    /// All members in visiting order: bases first (recursively), then the object's own.
    pub fn all_members(&'static self, out: &mut Vec<&'static Member>) {
        for base in self.bases {
            if let QType::Object(def) = base() {
                def.all_members(out);
            }
        }
        out.extend(self.members.iter());
    }
}

impl QType {
    /// A stable identity for a named type (used to number types in introspection).
    pub fn identity(&self) -> usize {
        match self {
            QType::Enum(d) => *d as *const EnumDef as usize,
            QType::Object(d) => *d as *const ObjectDef as usize,
            QType::Alternate(d) => *d as *const AlternateDef as usize,
            QType::Builtin(_) | QType::Array(_) => 0,
        }
    }
}
