//! `info chardev`: `label: filename=...` for each character device (QMP `query-chardev`).

use serde_json::Value;

use crate::hmp::context::{Ctx, out};
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const INFO: &[HmpCommand] = &[HmpCommand {
    names: "chardev",
    args_type: "",
    params: "",
    help: "show the character devices",
    handler: chardev,
    sub_table: None,
}];

fn chardev(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(list) = ctx.qmp_simple("query-chardev").await else { return };
        for c in list.as_array().into_iter().flatten() {
            let s = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            out!(ctx, "{}: filename={}\n", s("label"), s("filename"));
        }
    })
}
