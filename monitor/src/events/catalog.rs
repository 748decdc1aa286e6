//! Every event the server can emit, with its data type: the single list that introspection
//! (`query-qmp-schema`) reads, and the types producers emit.

use serde::Serialize;

use super::bus::QmpEvent;
use crate::control::ShutdownCause;
use crate::qapi::{Empty, Qapi, TypeFn};

macro_rules! no_data_event {
    ($(#[$m:meta])* $ty:ident, $name:literal) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, Default, Serialize)]
        pub struct $ty;
        impl Qapi for $ty {
            fn qapi_type() -> crate::qapi::QType {
                Empty::qapi_type()
            }
        }
        impl QmpEvent for $ty {
            const NAME: &'static str = $name;
        }
    };
}

no_data_event!(
    /// The VM stopped (`stop`, or an error policy).
    Stop,
    "STOP"
);
no_data_event!(
    /// The VM resumed.
    Resume,
    "RESUME"
);
no_data_event!(
    /// The ACPI power button was pressed (`system_powerdown`).
    Powerdown,
    "POWERDOWN"
);

/// The VM shut down (or was asked to quit).
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct Shutdown {
    pub guest: bool,
    pub reason: ShutdownCause,
}

impl QmpEvent for Shutdown {
    const NAME: &'static str = "SHUTDOWN";
}

/// The VM was reset.
#[derive(Debug, Clone, Serialize, Qapi)]
pub struct Reset {
    pub guest: bool,
    pub reason: ShutdownCause,
}

impl QmpEvent for Reset {
    const NAME: &'static str = "RESET";
}

/// `(name, data type)` of every event, in the order introspection lists them.
pub fn all() -> Vec<(&'static str, TypeFn)> {
    fn entry<E: QmpEvent>() -> (&'static str, TypeFn) {
        (E::NAME, E::qapi_type)
    }
    vec![entry::<Shutdown>(), entry::<Powerdown>(), entry::<Reset>(), entry::<Stop>(), entry::<Resume>()]
}
