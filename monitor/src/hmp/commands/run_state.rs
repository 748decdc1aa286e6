//! Run-state commands: `stop|s`, `cont|c`, `system_reset`, `system_powerdown`, `quit|q`. Each calls
//! the QMP command of the same name; success is silent, as in QEMU.

use crate::hmp::context::Ctx;
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const COMMANDS: &[HmpCommand] = &[
    HmpCommand {
        names: "stop|s",
        args_type: "",
        params: "",
        help: "stop emulation",
        handler: stop,
        sub_table: None,
    },
    HmpCommand {
        names: "cont|c",
        args_type: "",
        params: "",
        help: "resume emulation",
        handler: cont,
        sub_table: None,
    },
    HmpCommand {
        names: "system_reset",
        args_type: "",
        params: "",
        help: "reset the system",
        handler: system_reset,
        sub_table: None,
    },
    HmpCommand {
        names: "system_powerdown",
        args_type: "",
        params: "",
        help: "send system power down event",
        handler: system_powerdown,
        sub_table: None,
    },
    HmpCommand {
        names: "system_wakeup",
        args_type: "",
        params: "",
        help: "wakeup guest from suspend",
        handler: system_wakeup,
        sub_table: None,
    },
    HmpCommand {
        names: "quit|q",
        args_type: "",
        params: "",
        help: "quit the emulator",
        handler: quit,
        sub_table: None,
    },
];

fn stop(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        ctx.qmp_simple("stop").await;
    })
}

fn cont(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        ctx.qmp_simple("cont").await;
    })
}

fn system_reset(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        ctx.qmp_simple("system_reset").await;
    })
}

fn system_wakeup(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        ctx.qmp_simple("system_wakeup").await;
    })
}

fn system_powerdown(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        ctx.qmp_simple("system_powerdown").await;
    })
}

/// `quit`: the process exits; the session closes its connection at once (QEMU's connection ends
/// with the process).
fn quit(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        if ctx.qmp_simple("quit").await.is_some() {
            ctx.request_close();
        }
    })
}
