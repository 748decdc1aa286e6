//! `query-chardev`: the character devices the transports opened (QEMU's labels and filenames).

use std::sync::Arc;

use crate::Monitor;
use crate::error::QmpError;
use crate::qapi::Empty;
use crate::registry::{Flags, Registry};
use crate::transport::ChardevInfo;

pub(super) fn register(reg: &mut Registry) {
    reg.add("query-chardev", Flags::default(), |m: Arc<Monitor>, _a: Empty| async move {
        Ok::<Vec<ChardevInfo>, QmpError>(m.chardevs.list())
    });
}
