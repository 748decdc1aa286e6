//! Running commands without a terminal: `-c` arguments, a script file or stdin.

use std::io::{self, BufRead};
use std::sync::Arc;

use crate::completion::json_incomplete;
use crate::error::{EXIT_CONNECTION, EXIT_OK};
use crate::output::Output;
use crate::session::{Flow, Session};

/// Runs `inputs` in order. A failed command stops the run (exit 1) unless `keep_going`; a
/// connection failure or timeout always stops it (exit 2). Lines of a JSON request that spans
/// several lines are joined.
pub fn run<I>(session: &mut Session, output: &Arc<Output>, inputs: I, keep_going: bool) -> i32
where
    I: IntoIterator<Item = io::Result<String>>,
{
    let mut status = EXIT_OK;
    let mut pending = String::new();
    for (n, line) in inputs.into_iter().enumerate() {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                output.error(&format!("vmmon: cannot read input: {e}"));
                return EXIT_CONNECTION;
            }
        };
        if pending.is_empty() {
            pending = line;
        } else {
            pending.push('\n');
            pending.push_str(&line);
        }
        if json_incomplete(&pending) {
            continue;
        }
        let input = std::mem::take(&mut pending);
        match session.run_line(&input) {
            Ok(Flow::Exit) => return status,
            Ok(Flow::Continue) => {}
            Err(f) => {
                if !f.reported {
                    output.error(&format!("vmmon: input {}: {}", n + 1, f.error));
                }
                let code = f.error.exit_code();
                if f.error.is_fatal() || !keep_going {
                    return code;
                }
                status = status.max(code);
            }
        }
    }
    if !pending.trim().is_empty() {
        output.error("vmmon: the input ended inside a JSON request");
        return status.max(crate::error::EXIT_COMMAND_FAILED);
    }
    status
}

/// Lines of a reader, for [`run`].
pub fn lines<R: BufRead>(reader: R) -> impl Iterator<Item = io::Result<String>> {
    reader.lines()
}
