//! `qom-list`, `qom-get`, `qom-set`: QEMU's `hmp_qom_*` over the QMP commands.

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::hmp::context::{Ctx, out};
use crate::hmp::table::{Args, HandlerFuture, HmpCommand};

pub(super) const INFO: &[HmpCommand] = &[HmpCommand {
    names: "qom-tree",
    args_type: "path:s?",
    params: "[path]",
    help: "show QOM composition tree",
    handler: info_qom_tree,
    sub_table: None,
}];

pub(super) const COMMANDS: &[HmpCommand] = &[
    HmpCommand {
        names: "qom-list",
        args_type: "path:s?",
        params: "path",
        help: "list QOM properties",
        handler: qom_list,
        sub_table: None,
    },
    HmpCommand {
        names: "qom-get",
        args_type: "path:s,property:s",
        params: "path property",
        help: "print QOM property",
        handler: qom_get,
        sub_table: None,
    },
    HmpCommand {
        names: "qom-set",
        args_type: "json:-j,path:s,property:s,value:S",
        params: "[-j] path property value",
        help: "set QOM property.\n\t\t\t-j: the value is specified in json format.",
        handler: qom_set,
        sub_table: None,
    },
];

fn text(args: &Args, key: &str) -> String {
    args.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// QEMU's `qobject_to_json_pretty`: four-space indents.
fn pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    match v.serialize(&mut ser) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => v.to_string(),
    }
}

/// Without a path QEMU prints `/` (the root's path) and nothing else.
fn qom_list(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let Some(path) = args.get("path").and_then(Value::as_str).map(str::to_string) else {
            out!(ctx, "/\n");
            return;
        };
        match ctx.qmp("qom-list", object(json!({ "path": path }))).await {
            Ok(list) => {
                for p in list.as_array().into_iter().flatten() {
                    let name = p.get("name").and_then(Value::as_str).unwrap_or_default();
                    let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
                    out!(ctx, "{name} ({kind})\n");
                }
            }
            Err(e) => ctx.print_error(&e),
        }
    })
}

/// `info qom-tree [path]` (default `/machine`): each object as `/name (type)`, children sorted
/// by name and indented by two, walked with `qom-list`.
fn info_qom_tree(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let path = args.get("path").and_then(Value::as_str).unwrap_or("/machine").to_string();
        let Ok(root_type) = ctx.qmp("qom-get", object(json!({"path": path, "property": "type"}))).await
        else {
            out!(ctx, "Path '{path}' could not be resolved.\n");
            return;
        };
        let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        let mut stack = vec![(path, name, root_type.as_str().unwrap_or_default().to_string(), 0usize)];
        while let Some((path, name, kind, indent)) = stack.pop() {
            out!(ctx, "{:indent$}/{name} ({kind})\n", "");
            let list = ctx.qmp("qom-list", object(json!({ "path": path }))).await.unwrap_or(Value::Null);
            let mut children: Vec<(String, String)> = list
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let kind = p.get("type")?.as_str()?.strip_prefix("child<")?.strip_suffix('>')?;
                    Some((p.get("name")?.as_str()?.to_string(), kind.to_string()))
                })
                .collect();
            children.sort();
            let base = path.trim_end_matches('/').to_string();
            for (child, kind) in children.into_iter().rev() {
                stack.push((format!("{base}/{child}"), child, kind, indent + 2));
            }
        }
    })
}

fn qom_get(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let a = json!({"path": text(&args, "path"), "property": text(&args, "property")});
        match ctx.qmp("qom-get", object(a)).await {
            Ok(v) => {
                let s = pretty(&v);
                out!(ctx, "{s}\n");
            }
            Err(e) => ctx.print_error(&e),
        }
    })
}

/// With `-j` the value is JSON; otherwise it is passed as a string.
fn qom_set(ctx: &mut Ctx, args: Args) -> HandlerFuture<'_> {
    Box::pin(async move {
        let raw = text(&args, "value");
        let value = if args.get("json").and_then(Value::as_bool) == Some(true) {
            match serde_json::from_str::<Value>(&raw) {
                Ok(v) => v,
                Err(e) => {
                    ctx.print_error(&crate::error::QmpError::generic(format!("JSON parse error, {e}")));
                    return;
                }
            }
        } else {
            Value::String(raw)
        };
        let a = json!({"path": text(&args, "path"), "property": text(&args, "property"), "value": value});
        if let Err(e) = ctx.qmp("qom-set", object(a)).await {
            ctx.print_error(&e);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_qemus_pretty_json() {
        assert_eq!(pretty(&json!("none-machine")), "\"none-machine\"");
        assert_eq!(pretty(&json!(16)), "16");
        assert_eq!(pretty(&json!({"a": [1]})), "{\n    \"a\": [\n        1\n    ]\n}");
    }
}
