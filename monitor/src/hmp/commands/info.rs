//! `info status`, `version`, `kvm`, `name`, `uuid`, `memory_size_summary`, `history`: the QMP
//! queries, formatted as QEMU's HMP prints them.

use serde_json::Value;

use crate::hmp::context::{Ctx, out};
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const INFO: &[HmpCommand] = &[
    HmpCommand {
        names: "status",
        args_type: "",
        params: "",
        help: "show the current VM status (running|paused)",
        handler: status,
        sub_table: None,
    },
    HmpCommand {
        names: "version",
        args_type: "",
        params: "",
        help: "show the version of QEMU",
        handler: version,
        sub_table: None,
    },
    HmpCommand {
        names: "kvm",
        args_type: "",
        params: "",
        help: "show KVM information",
        handler: kvm,
        sub_table: None,
    },
    HmpCommand {
        names: "name",
        args_type: "",
        params: "",
        help: "show the current VM name",
        handler: name,
        sub_table: None,
    },
    HmpCommand {
        names: "uuid",
        args_type: "",
        params: "",
        help: "show the current VM UUID",
        handler: uuid,
        sub_table: None,
    },
    HmpCommand {
        names: "memory_size_summary",
        args_type: "",
        params: "",
        help: "show the amount of initially allocated and present hotpluggable (if enabled) memory in bytes.",
        handler: memory_size_summary,
        sub_table: None,
    },
    HmpCommand {
        names: "history",
        args_type: "",
        params: "",
        help: "show the command line history",
        handler: history,
        sub_table: None,
    },
];

fn int(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or(0)
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// `VM status: running`, `VM status: paused`, `VM status: paused (prelaunch)`.
fn status(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(info) = ctx.qmp_simple("query-status").await else { return };
        let running = info.get("running").and_then(Value::as_bool).unwrap_or(false);
        let singlestep = info.get("singlestep").and_then(Value::as_bool).unwrap_or(false);
        let state = text(&info, "status");
        out!(
            ctx,
            "VM status: {}{}",
            if running { "running" } else { "paused" },
            if singlestep { " (single step mode)" } else { "" }
        );
        if !running && state != "paused" {
            out!(ctx, " ({state})");
        }
        out!(ctx, "\n");
    })
}

/// `<major>.<minor>.<micro><package>`, no separator before the package.
fn version(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(info) = ctx.qmp_simple("query-version").await else { return };
        let q = info.get("qemu").cloned().unwrap_or(Value::Null);
        out!(
            ctx,
            "{}.{}.{}{}\n",
            int(&q, "major"),
            int(&q, "minor"),
            int(&q, "micro"),
            text(&info, "package")
        );
    })
}

fn kvm(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(info) = ctx.qmp_simple("query-kvm").await else { return };
        let flag = |k: &str| info.get(k).and_then(Value::as_bool).unwrap_or(false);
        let state = match (flag("present"), flag("enabled")) {
            (false, _) => "not compiled",
            (true, true) => "enabled",
            (true, false) => "disabled",
        };
        out!(ctx, "kvm support: {state}\n");
    })
}

/// The name, or nothing at all when the VM has none.
fn name(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(info) = ctx.qmp_simple("query-name").await else { return };
        if let Some(name) = info.get("name").and_then(Value::as_str) {
            out!(ctx, "{name}\n");
        }
    })
}

fn uuid(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(info) = ctx.qmp_simple("query-uuid").await else { return };
        out!(ctx, "{}\n", text(&info, "UUID"));
    })
}

fn memory_size_summary(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(info) = ctx.qmp_simple("query-memory-size-summary").await else { return };
        let base = info.get("base-memory").and_then(Value::as_u64).unwrap_or(0);
        out!(ctx, "base memory: {base}\n");
        if let Some(plugged) = info.get("plugged-memory").and_then(Value::as_u64) {
            out!(ctx, "plugged memory: {plugged}\n");
        }
    })
}

/// `0: 'info status'` lines; empty without a line editor (over `human-monitor-command`).
fn history(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(entries) = ctx.history.take() else { return };
        for (i, e) in entries.iter().enumerate() {
            out!(ctx, "{i}: '{e}'\n");
        }
        ctx.history = Some(entries);
    })
}
