//! The one table of QMP commands. Each entry knows its argument and return types (for checking and
//! introspection), its flags, and its handler. QMP dispatch, `query-commands`,
//! `query-qmp-schema`, HMP and `human-monitor-command` all go through it, so no command's logic
//! exists twice.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Monitor;
use crate::error::QmpError;
use crate::qapi::{Qapi, TypeFn, check::check_arguments};

/// A boxed command future.
pub type CommandFuture = Pin<Box<dyn Future<Output = Result<Value, QmpError>> + Send>>;

type Handler = Box<dyn Fn(Arc<Monitor>, Value) -> CommandFuture + Send + Sync>;

/// Flags of a command (QEMU's `QCO_*` and QAPI features).
#[derive(Debug, Clone, Copy, Default)]
pub struct Flags {
    /// May be run with `exec-oob` (must never block).
    pub allow_oob: bool,
    /// QAPI features shown by introspection (`deprecated`, ...).
    pub features: &'static [&'static str],
}

/// One command.
pub struct CommandDef {
    pub name: &'static str,
    pub args: TypeFn,
    pub ret: TypeFn,
    pub flags: Flags,
    handler: Handler,
}

impl CommandDef {
    /// Checks `args` against the argument type (QEMU's texts), then runs the command. Nothing of
    /// the command runs if the check fails.
    pub fn call(&self, monitor: Arc<Monitor>, args: Map<String, Value>) -> CommandFuture {
        if let Err(e) = check_arguments(&args, (self.args)()) {
            return Box::pin(std::future::ready(Err(e)));
        }
        (self.handler)(monitor, Value::Object(args))
    }
}

/// All commands, in registration order.
#[derive(Default)]
pub struct Registry {
    commands: Vec<CommandDef>,
    index: HashMap<&'static str, usize>,
}

impl Registry {
    /// Registers a typed command: `A` is checked and decoded from the arguments, `R` encoded as the
    /// return value. Registering a name twice is a programming error and panics at start-up.
    pub fn add<A, R, F, Fut>(&mut self, name: &'static str, flags: Flags, f: F)
    where
        A: Qapi + DeserializeOwned + Send + 'static,
        R: Qapi + Serialize + Send + 'static,
        F: Fn(Arc<Monitor>, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, QmpError>> + Send + 'static,
    {
        assert!(!self.index.contains_key(name), "command {name} registered twice");
        let f = Arc::new(f);
        let handler: Handler = Box::new(move |monitor, args| {
            let args: A = match serde_json::from_value(args) {
                Ok(a) => a,
                // The schema check passed, so this is a mismatch between the Rust type and its
                // schema: report it rather than run with wrong arguments.
                Err(e) => return Box::pin(std::future::ready(Err(QmpError::generic(e.to_string())))),
            };
            let fut = f(monitor, args);
            Box::pin(async move {
                let r = fut.await?;
                let mut v = serde_json::to_value(r).map_err(|e| QmpError::generic(e.to_string()))?;
                crate::qapi::output::strip_absent(&mut v, R::qapi_type());
                Ok(v)
            })
        });
        self.index.insert(name, self.commands.len());
        self.commands.push(CommandDef { name, args: A::qapi_type, ret: R::qapi_type, flags, handler });
    }

    pub fn get(&self, name: &str) -> Option<&CommandDef> {
        self.index.get(name).map(|&i| &self.commands[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &CommandDef> {
        self.commands.iter()
    }
}
