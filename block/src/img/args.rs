//! getopt-style parsing as qemu-img does it: short options (clustered, with inline or
//! separate values), long options (`--name=value` or `--name value`), options mixed with
//! positionals, and `--` to end options.

use super::ImgError;

/// A parsed command line.
#[derive(Debug, Default)]
pub struct Args {
    pub opts: Vec<(String, Option<String>)>,
    pub positional: Vec<String>,
}

/// `short` lists option letters, a `:` after a letter means it takes a value (getopt).
/// `long` lists long names; a trailing `=` means it takes a value.
pub fn parse(argv: &[String], short: &str, long: &[&str]) -> Result<Args, ImgError> {
    let takes_value = |c: char| -> Option<bool> {
        let i = short.find(c)?;
        Some(short[i + c.len_utf8()..].starts_with(':'))
    };
    let mut a = Args::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg == "--" {
            a.positional.extend(argv[i..].iter().cloned());
            break;
        }
        if let Some(rest) = arg.strip_prefix("--") {
            let (name, inline) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (rest, None),
            };
            let spec = long
                .iter()
                .find(|l| l.trim_end_matches('=') == name)
                .ok_or_else(|| ImgError::usage(format!("unrecognized option '--{name}'")))?;
            if spec.ends_with('=') {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        let v = argv.get(i).cloned().ok_or_else(|| {
                            ImgError::usage(format!("option '--{name}' requires an argument"))
                        })?;
                        i += 1;
                        v
                    }
                };
                a.opts.push((name.to_string(), Some(v)));
            } else {
                if inline.is_some() {
                    return Err(ImgError::usage(format!("option '--{name}' doesn't allow an argument")));
                }
                a.opts.push((name.to_string(), None));
            }
            continue;
        }
        if arg.len() > 1 && arg.starts_with('-') {
            let chars: Vec<char> = arg[1..].chars().collect();
            let mut j = 0;
            while j < chars.len() {
                let c = chars[j];
                j += 1;
                match takes_value(c) {
                    None => return Err(ImgError::usage(format!("invalid option -- '{c}'"))),
                    Some(false) => a.opts.push((c.to_string(), None)),
                    Some(true) => {
                        let v = if j < chars.len() {
                            chars[j..].iter().collect()
                        } else {
                            let v = argv.get(i).cloned().ok_or_else(|| {
                                ImgError::usage(format!("option requires an argument -- '{c}'"))
                            })?;
                            i += 1;
                            v
                        };
                        a.opts.push((c.to_string(), Some(v)));
                        j = chars.len();
                    }
                }
            }
            continue;
        }
        a.positional.push(arg.clone());
    }
    Ok(a)
}

impl Args {
    pub fn has(&self, name: &str) -> bool {
        self.opts.iter().any(|(n, _)| n == name)
    }

    /// Last value given for an option.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.opts.iter().rev().find(|(n, _)| n == name).and_then(|(_, v)| v.as_deref())
    }

    /// All values of a repeatable option (`-o a=1 -o b=2`).
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.opts.iter().filter(|(n, _)| n == name).filter_map(|(_, v)| v.as_deref()).collect()
    }
}

/// Splits QEMU's option syntax on single commas; `,,` is a literal comma (shared with the
/// `vmm` command line).
pub fn split_escaped(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ',' {
            if chars.peek() == Some(&',') {
                chars.next();
                cur.push(',');
            } else {
                parts.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    parts.push(cur);
    parts
}

/// Splits a `-o` option string (`a=1,b=2`; `,,` escapes a comma).
pub fn split_options(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let parts = split_escaped(s);
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        match p.split_once('=') {
            Some((k, v)) => out.push((k.to_string(), v.to_string())),
            None => out.push((p, "on".to_string())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn getopt_like() {
        let a = parse(
            &v(&["-qf", "qcow2", "x.img", "--output=json", "-o", "a=1,,2,b", "--", "-1M"]),
            "qf:o:",
            &["output="],
        )
        .unwrap();
        assert!(a.has("q"));
        assert_eq!(a.value("f"), Some("qcow2"));
        assert_eq!(a.value("output"), Some("json"));
        assert_eq!(a.positional, v(&["x.img", "-1M"]));
        assert_eq!(
            split_options(a.value("o").unwrap()),
            vec![("a".into(), "1,2".into()), ("b".into(), "on".into())]
        );
        assert!(parse(&v(&["-z"]), "q", &[]).is_err());
    }
}
