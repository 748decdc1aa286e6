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
    HmpCommand {
        names: "iothreads",
        args_type: "",
        params: "",
        help: "show iothreads",
        handler: iothreads,
        sub_table: None,
    },
    HmpCommand {
        names: "balloon",
        args_type: "",
        params: "",
        help: "show balloon information",
        handler: balloon,
        sub_table: None,
    },
    HmpCommand {
        names: "hotpluggable-cpus",
        args_type: "",
        params: "",
        help: "Show information about hotpluggable CPUs",
        handler: hotpluggable_cpus,
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

/// `hmp_info_iothreads`.
fn iothreads(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(list) = ctx.qmp_simple("query-iothreads").await else { return };
        for t in list.as_array().into_iter().flatten() {
            let int = |k: &str| t.get(k).and_then(Value::as_i64).unwrap_or(0);
            out!(ctx, "{}:\n", text(t, "id"));
            out!(ctx, "  thread_id={}\n", int("thread-id"));
            out!(ctx, "  poll-max-ns={}\n", int("poll-max-ns"));
            out!(ctx, "  poll-grow={}\n", int("poll-grow"));
            out!(ctx, "  poll-shrink={}\n", int("poll-shrink"));
            out!(ctx, "  aio-max-batch={}\n", int("aio-max-batch"));
        }
    })
}

/// `hmp_info_balloon` (only its error path can happen here: there is no balloon).
fn balloon(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(info) = ctx.qmp_simple("query-balloon").await else { return };
        let mib = info.get("actual").and_then(Value::as_i64).unwrap_or(0) >> 20;
        out!(ctx, "balloon: actual={mib}\n");
    })
}

/// `hmp_hotpluggable_cpus` (only its error path can happen here: no machine has CPU hot-plug).
fn hotpluggable_cpus(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(list) = ctx.qmp_simple("query-hotpluggable-cpus").await else { return };
        out!(ctx, "Hotpluggable CPUs:\n");
        for c in list.as_array().into_iter().flatten() {
            out!(ctx, "  type: \"{}\"\n", text(c, "type"));
            out!(ctx, "  vcpus_count: \"{}\"\n", c.get("vcpus-count").and_then(Value::as_i64).unwrap_or(0));
            if let Some(p) = c.get("qom-path").and_then(Value::as_str) {
                out!(ctx, "  qom_path: \"{p}\"\n");
            }
            out!(ctx, "  CPUInstance Properties:\n");
            let props = c.get("props").cloned().unwrap_or(Value::Null);
            for k in ["socket-id", "core-id", "thread-id"] {
                if let Some(v) = props.get(k).and_then(Value::as_i64) {
                    out!(ctx, "    {k}: \"{v}\"\n");
                }
            }
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
