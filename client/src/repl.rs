//! The interactive loop: rustyline with completion and history; events and job progress are
//! printed through rustyline's external printer so the line being typed survives them.

use std::path::Path;
use std::sync::Arc;

use rustyline::config::Config;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{CompletionType, Editor};

use crate::completion::MonitorHelper;
use crate::error::{EXIT_CONNECTION, EXIT_OK};
use crate::output::Output;
use crate::session::{Flow, Session};

/// Runs the REPL until `exit` or Ctrl-D. Returns the exit status.
pub fn run(session: &mut Session, output: &Arc<Output>, history: Option<&Path>) -> i32 {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .history_ignore_space(true)
        .history_ignore_dups(true)
        .and_then(|b| b.max_history_size(5000))
        .map(|b| b.auto_add_history(false).build());
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            output.error(&format!("vmmon: cannot configure the line editor: {e}"));
            return EXIT_CONNECTION;
        }
    };
    let mut editor: Editor<MonitorHelper, FileHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => {
            output.error(&format!("vmmon: cannot start the line editor: {e}"));
            return EXIT_CONNECTION;
        }
    };
    editor.set_helper(Some(MonitorHelper::new(session.completion())));
    if let Some(path) = history {
        if let Some(dir) = path.parent() {
            // Without the directory there is just no saved history.
            let _ = std::fs::create_dir_all(dir);
        }
        if path.exists()
            && let Err(e) = editor.load_history(path)
        {
            output.error(&format!("vmmon: cannot read history {}: {e}", path.display()));
        }
    }
    match editor.create_external_printer() {
        Ok(p) => output.use_printer(Box::new(p)),
        Err(e) => output.error(&format!("vmmon: events will be printed between lines only ({e})")),
    }
    output.message(&session.describe());
    output.message("Type 'help' for help, Tab to complete, Ctrl-D to leave.");
    loop {
        let prompt = session.prompt();
        match editor.readline(&prompt) {
            Ok(line) => {
                output.detach_status();
                if !line.trim().is_empty() {
                    // History is a convenience: failing to record it is not an error.
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = history {
                        let _ = editor.append_history(path);
                    }
                }
                match session.run_line(&line) {
                    Ok(Flow::Exit) => break,
                    Ok(Flow::Continue) => {}
                    Err(f) if !f.reported => output.error(&f.error.to_string()),
                    Err(_) => {}
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => {
                output.error(&format!("vmmon: terminal error: {e}"));
                return EXIT_CONNECTION;
            }
        }
    }
    EXIT_OK
}
