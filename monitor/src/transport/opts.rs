//! QEMU's `key=value,key2=value2` option strings (QemuOpts), as `-chardev`, `-mon`, the legacy
//! `-qmp unix:PATH,server=on` suffixes and HMP's `O` arguments (`netdev_add user,id=n1`) use them.
//!
//! Rules (util/qemu-option.c): options are separated by `,`; a literal comma inside a value is
//! written `,,`; the first element may omit its key when the list has an *implied* key
//! (`socket,id=x` means `backend=socket`); any other element without `=` is a flag: `foo` means
//! `foo=on` and `nofoo` means `foo=off`. `id=` names the option group itself. A key given twice
//! keeps its last value.

/// The parsed options, in the order given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Opts {
    pub id: Option<String>,
    pairs: Vec<(String, String)>,
}

/// Splits an option string. `implied` is the key of a first element written without `key=`.
pub fn parse(input: &str, implied: Option<&str>) -> Opts {
    let mut opts = Opts::default();
    let bytes = input.as_bytes();
    let mut pos = 0;
    let mut first = true;
    while pos < bytes.len() {
        let rest = &input[pos..];
        let name_len = rest.find(['=', ',']).unwrap_or(rest.len());
        let (name, value, next) = if rest.as_bytes().get(name_len) == Some(&b'=') {
            let (value, used) = read_value(&rest[name_len + 1..]);
            (rest[..name_len].to_string(), value, pos + name_len + 1 + used)
        } else if let (true, Some(key)) = (first, implied) {
            let (value, used) = read_value(rest);
            (key.to_string(), value, pos + used)
        } else {
            let word = &rest[..name_len];
            let (name, value) = match word.strip_prefix("no") {
                Some(stripped) => (stripped.to_string(), "off".to_string()),
                None => (word.to_string(), "on".to_string()),
            };
            (name, value, pos + name_len)
        };
        first = false;
        // Skip the separating comma.
        pos = if bytes.get(next) == Some(&b',') { next + 1 } else { next };
        if name == "id" {
            opts.id = Some(value);
        } else {
            opts.pairs.push((name, value));
        }
    }
    opts
}

/// Reads a value up to an unescaped comma; `,,` stands for `,`. Returns the value and the number of
/// input bytes used (not counting the terminating comma).
fn read_value(s: &str) -> (String, usize) {
    let bytes = s.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    let mut start = 0;
    while i < bytes.len() {
        if bytes[i] == b',' {
            if bytes.get(i + 1) == Some(&b',') {
                out.push_str(&s[start..=i]);
                i += 2;
                start = i;
                continue;
            }
            break;
        }
        i += 1;
    }
    out.push_str(&s[start..i]);
    (out, i)
}

impl Opts {
    /// Options from already split pairs (no id).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        Opts { id: None, pairs }
    }

    /// The last value given for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// A boolean option (`on|off`, also `yes|no|true|false|y|n` as QEMU accepts), with QEMU's text
    /// `Parameter 'x' expects 'on' or 'off'` for anything else.
    pub fn get_bool(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                parse_bool(v).map(Some).ok_or_else(|| format!("Parameter '{name}' expects 'on' or 'off'"))
            }
        }
    }

    /// A number option, with QEMU's text `Parameter 'x' expects a number`.
    pub fn get_number(&self, name: &str) -> Result<Option<u64>, String> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| format!("Parameter '{name}' expects a number")),
        }
    }

    /// The first key not in `allowed`, reported as QEMU does: `Invalid parameter 'x'`.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<(), String> {
        match self.pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
            Some((k, _)) => Err(format!("Invalid parameter '{k}'")),
            None => Ok(()),
        }
    }

    /// All pairs in the order given (later duplicates included).
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// QEMU's boolean spellings.
pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "on" | "yes" | "true" | "y" => Some(true),
        "off" | "no" | "false" | "n" => Some(false),
        _ => None,
    }
}

/// QEMU's rule for ids (`id_wellformed`): a letter, then letters, digits, `-`, `.`, `_`.
pub fn id_wellformed(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_key_flags_and_escapes() {
        let o = parse("socket,id=m0,path=/tmp/a,,b.sock,server,nowait", Some("backend"));
        assert_eq!(o.id.as_deref(), Some("m0"));
        assert_eq!(o.get("backend"), Some("socket"));
        assert_eq!(o.get("path"), Some("/tmp/a,b.sock"));
        assert_eq!(o.get_bool("server"), Ok(Some(true)));
        assert_eq!(o.get_bool("wait"), Ok(Some(false)));
        assert_eq!(o.get_bool("telnet"), Ok(None));
    }

    #[test]
    fn implied_key_only_for_the_first_element() {
        let o = parse("/tmp/x.sock,server=on,wait=off", Some("path"));
        assert_eq!(o.get("path"), Some("/tmp/x.sock"));
        let o = parse("server=on,/tmp/x.sock", Some("path"));
        assert_eq!(o.get("path"), None);
        assert_eq!(o.get("/tmp/x.sock"), Some("on"));
    }

    #[test]
    fn errors_use_qemu_texts() {
        let o = parse("server=maybe,foo=1,to=x", None);
        assert_eq!(o.get_bool("server"), Err("Parameter 'server' expects 'on' or 'off'".into()));
        assert_eq!(o.check_keys(&["server", "to"]), Err("Invalid parameter 'foo'".into()));
        assert_eq!(o.get_number("to"), Err("Parameter 'to' expects a number".into()));
    }

    #[test]
    fn last_value_wins_and_empty_values() {
        let o = parse("a=1,a=2,b=,c", None);
        assert_eq!(o.get("a"), Some("2"));
        assert_eq!(o.get("b"), Some(""));
        assert_eq!(o.get("c"), Some("on"));
        assert_eq!(parse("", Some("x")), Opts::default());
        let o = parse(",,x", Some("path"));
        assert_eq!(o.get("path"), Some(",x"));
    }

    #[test]
    fn ids() {
        assert!(id_wellformed("compat_monitor0"));
        assert!(id_wellformed("a.b-c_d"));
        assert!(!id_wellformed("0abc"));
        assert!(!id_wellformed(""));
        assert!(!id_wellformed("a b"));
    }
}
