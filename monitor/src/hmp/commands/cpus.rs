//! CPU commands: `cpu N` (the session's current CPU), `info cpus`, `info registers`.
//! The CPU list comes from QMP `query-cpus-fast`; register dumps from the control loop
//! ([`ControlRequest::InfoRegisters`]), which has no QMP counterpart in QEMU either.

use serde_json::Value;

use crate::control::ControlRequest;
use crate::error::QmpError;
use crate::hmp::context::{Ctx, out};
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const COMMANDS: &[HmpCommand] = &[HmpCommand {
    names: "cpu",
    args_type: "index:i",
    params: "index",
    help: "set the default CPU",
    handler: cpu,
    sub_table: None,
}];

pub(super) const INFO: &[HmpCommand] = &[
    HmpCommand {
        names: "cpus",
        args_type: "",
        params: "",
        help: "show infos for each CPU",
        handler: info_cpus,
        sub_table: None,
    },
    HmpCommand {
        names: "registers",
        args_type: "cpustate_all:-a,vcpu:i?",
        params: "[-a|vcpu]",
        help: "show the cpu registers (-a: show register info for all cpus; vcpu: specific vCPU to query; show the current CPU's registers if no argument is specified)",
        handler: info_registers,
        sub_table: None,
    },
];

/// `(cpu-index, thread-id)` of every vCPU, in order.
pub(crate) async fn cpu_list(ctx: &Ctx) -> Result<Vec<(i64, i64)>, QmpError> {
    let list = ctx.qmp("query-cpus-fast", Default::default()).await?;
    Ok(list
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let n = |k: &str| c.get(k).and_then(Value::as_i64).unwrap_or(0);
            (n("cpu-index"), n("thread-id"))
        })
        .collect())
}

/// The session's CPU: the one chosen with `cpu`, else the first (QEMU's `mon_get_cpu`).
pub(super) fn current_cpu(ctx: &Ctx, cpus: &[(i64, i64)]) -> Option<i64> {
    match ctx.state.cpu_index {
        Some(i) if cpus.iter().any(|c| c.0 == i) => Some(i),
        _ => cpus.first().map(|c| c.0),
    }
}

fn cpu(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let index = args.get("index").and_then(Value::as_i64).unwrap_or(-1);
        match cpu_list(ctx).await {
            Ok(cpus) if cpus.iter().any(|c| c.0 == index) => ctx.state.cpu_index = Some(index),
            Ok(_) => out!(ctx, "invalid CPU index\n"),
            Err(e) => ctx.print_error(&e),
        }
    })
}

/// `* CPU #0: thread_id=1234`, the star marking the session's CPU.
fn info_cpus(ctx: &mut Ctx, _args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let cpus = match cpu_list(ctx).await {
            Ok(c) => c,
            Err(e) => return ctx.print_error(&e),
        };
        let current = current_cpu(ctx, &cpus);
        for (index, thread_id) in cpus {
            let mark = if Some(index) == current { '*' } else { ' ' };
            out!(ctx, "{mark} CPU #{index}: thread_id={thread_id}\n");
        }
    })
}

fn info_registers(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let all = args.get("cpustate_all").and_then(Value::as_bool).unwrap_or(false);
        let vcpu = args.get("vcpu").and_then(Value::as_i64);
        let cpus = match cpu_list(ctx).await {
            Ok(c) => c,
            Err(e) => return ctx.print_error(&e),
        };
        if all {
            for (index, _) in cpus {
                dump_registers(ctx, index).await;
            }
            return;
        }
        let target = match vcpu {
            Some(v) if cpus.iter().any(|c| c.0 == v) => v,
            Some(v) => return out!(ctx, "CPU#{v} not available\n"),
            None => match current_cpu(ctx, &cpus) {
                Some(c) => c,
                None => return out!(ctx, "No CPU available\n"),
            },
        };
        dump_registers(ctx, target).await;
    })
}

/// `\nCPU#N\n` and the control loop's dump (QEMU's `cpu_dump_state` text).
async fn dump_registers(ctx: &mut Ctx, index: i64) {
    out!(ctx, "\nCPU#{index}\n");
    let Ok(cpu) = usize::try_from(index) else { return };
    match ctx.monitor.control.call(|reply| ControlRequest::InfoRegisters { cpu, reply }).await {
        Ok(text) => ctx.print_str(&text),
        Err(e) => ctx.print_error(&QmpError::from(e)),
    }
}
