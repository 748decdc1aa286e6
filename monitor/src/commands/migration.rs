//! The migration commands a client meets without migrating. This VMM does not migrate, so no
//! migration has ever run and a postcopy migration is never active or paused: these commands
//! give exactly the answer QEMU gives in that state (`query-migrate` is `{}` then). They are
//! `allow-oob` as in QEMU, so clients written for QEMU's OOB (which use `migrate-pause` to probe
//! it) see the same behaviour.

use serde::{Deserialize, Serialize};

use crate::error::QmpError;
use crate::qapi::{Empty, Qapi};
use crate::registry::{Flags, Registry};

/// `MigrationInfo`: every member is optional, and none is present before a migration.
#[derive(Debug, Serialize, Qapi)]
pub struct MigrationInfo {}

#[derive(Debug, Deserialize, Qapi)]
struct MigrateRecoverArgs {
    #[allow(dead_code)]
    uri: String,
}

pub(super) fn register(reg: &mut Registry) {
    reg.add("query-migrate", Flags::default(), |_m, _a: Empty| async { Ok::<_, QmpError>(MigrationInfo {}) });
    let oob = Flags { allow_oob: true, ..Flags::default() };
    reg.add("migrate-pause", oob, |_m, _a: Empty| async {
        Err::<Empty, _>(QmpError::generic(
            "migrate-pause is currently only supported during postcopy-active state",
        ))
    });
    reg.add("migrate-recover", oob, |_m, _a: MigrateRecoverArgs| async {
        Err::<Empty, _>(QmpError::generic("Migrate recover can only be run when postcopy is paused."))
    });
}
