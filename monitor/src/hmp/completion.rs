//! TAB completion (QEMU's `monitor_find_completion`): command names, `info` subcommands, command
//! names after `help`, and file names for `F` arguments.

use super::args::{MAX_ARGS, is_space, split_words};
use super::table::{HmpCommand, find, tables};

/// Directory entries looked at for one file-name completion.
const MAX_DIR_ENTRIES: usize = 4096;

/// Completions for `line` (the text before the cursor): how many bytes of the word being completed
/// were typed, and the candidates.
pub fn complete(line: &[u8]) -> (usize, Vec<String>) {
    let Some(mut words) = split_words(line) else { return (0, Vec::new()) };
    if line.last().is_some_and(|&c| is_space(c)) {
        if words.len() >= MAX_ARGS {
            return (0, Vec::new());
        }
        words.push(String::new());
    }
    by_table(&tables().main, &words)
}

fn by_table(table: &[&'static HmpCommand], words: &[String]) -> (usize, Vec<String>) {
    if words.len() <= 1 {
        let typed = words.first().map_or("", String::as_str);
        let names = table.iter().flat_map(|c| c.names.split('|')).filter(|n| n.starts_with(typed));
        return (typed.len(), names.map(str::to_string).collect());
    }
    let Some(cmd) = find(table, &words[0]) else { return (0, Vec::new()) };
    if let Some(sub) = cmd.sub_table {
        return by_table(sub(), &words[1..]);
    }
    let last = &words[words.len() - 1];
    let types: Vec<u8> = cmd
        .args_type
        .split(',')
        .filter_map(|entry| entry.split_once(':'))
        .filter_map(|(_, t)| t.bytes().next())
        .collect();
    // Past the last argument QEMU keeps using the last type (so `help` completes every word).
    let mut i = (words.len() - 2).min(types.len().saturating_sub(1));
    while types.get(i) == Some(&b'-') {
        i += 1;
    }
    match types.get(i) {
        Some(b's' | b'S') if cmd.is_named("help") => by_table(&tables().main, &words[1..]),
        Some(b'F') => (last.len(), files(last)),
        _ => (0, Vec::new()),
    }
}

/// Files and directories (with a trailing `/`) whose path starts with `typed`.
fn files(typed: &str) -> Vec<String> {
    let (dir, prefix) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else { return Vec::new() };
    let mut out = Vec::new();
    for entry in entries.take(MAX_DIR_ENTRIES).flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with(prefix) {
            continue;
        }
        let is_dir = std::fs::metadata(entry.path()).is_ok_and(|m| m.is_dir());
        out.push(format!("{dir}{name}{}", if is_dir { "/" } else { "" }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn command_names_and_aliases() {
        let (n, c) = complete(b"sto");
        assert_eq!((n, c), (3, vec!["stop".to_string()]));
        let (n, c) = complete(b"c");
        assert_eq!(n, 1);
        assert_eq!(sorted(c), vec!["c", "commit", "cont", "cpu"]);
        let (_, all) = complete(b"");
        assert!(all.contains(&"system_powerdown".to_string()) && all.contains(&"?".to_string()));
    }

    #[test]
    fn info_subcommands_and_help_arguments() {
        let (n, c) = complete(b"info st");
        assert_eq!((n, c), (2, vec!["status".to_string()]));
        let (n, c) = complete(b"info ");
        assert_eq!(n, 0);
        assert!(c.contains(&"version".to_string()));
        let (n, c) = complete(b"help qu");
        assert_eq!((n, c), (2, vec!["quit".to_string()]));
        assert_eq!(complete(b"help info hi"), (2, vec!["history".to_string()]));
        assert_eq!(complete(b"stop x").1, Vec::<String>::new());
        assert_eq!(complete(b"bogus x").1, Vec::<String>::new());
    }

    #[test]
    fn file_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("disk.qcow2"), b"").unwrap();
        std::fs::create_dir(dir.path().join("disks")).unwrap();
        let base = format!("{}/dis", dir.path().display());
        let got = sorted(files(&base));
        assert_eq!(got, vec![format!("{base}k.qcow2"), format!("{base}ks/")]);
    }
}
