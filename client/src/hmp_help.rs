//! Completion data for HMP, read from the server's own `help` and `info` output.

/// One HMP command as listed by `help`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmpCommand {
    /// The name and its aliases (`cont|c` gives `["cont", "c"]`).
    pub names: Vec<String>,
    /// The parameter synopsis (`device [speed [base]]`).
    pub params: String,
}

/// Parses `help` output: `name|alias params -- text`, with tab-indented continuation lines.
pub fn parse_help(text: &str) -> Vec<HmpCommand> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) || line.trim().is_empty() {
            continue;
        }
        let Some((synopsis, _)) = line.split_once(" -- ") else {
            continue;
        };
        let synopsis = synopsis.trim();
        let (names, params) = synopsis.split_once(' ').unwrap_or((synopsis, ""));
        let names: Vec<String> = names.split('|').filter(|n| !n.is_empty()).map(str::to_string).collect();
        if names.is_empty() {
            continue;
        }
        out.push(HmpCommand { names, params: params.trim().to_string() });
    }
    out
}

/// Parses `info` (or `help info`) output: `info name params -- text`.
pub fn parse_info(text: &str) -> Vec<HmpCommand> {
    text.lines()
        .filter_map(|l| l.strip_prefix("info "))
        .map(|l| l.to_string())
        .flat_map(|l| parse_help(&l))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_help_lines() {
        let text = "block_job_cancel [-f] device -- stop an active background block operation (use -f\n\t\t\t if you want to abort\ncont|c  -- resume emulation\nhelp|? [cmd] -- show the help\n";
        let cmds = parse_help(text);
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0].names, ["block_job_cancel"]);
        assert_eq!(cmds[0].params, "[-f] device");
        assert_eq!(cmds[1].names, ["cont", "c"]);
        assert_eq!(cmds[1].params, "");
        assert_eq!(cmds[2].names, ["help", "?"]);
    }

    #[test]
    fn qemu_info_lines() {
        let text = "info balloon  -- show balloon information\ninfo block [-n] [-v] [device] -- show info of one block device or all block devices\n";
        let cmds = parse_info(text);
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[1].names, ["block"]);
        assert_eq!(cmds[1].params, "[-n] [-v] [device]");
    }
}
