//! QEMU's `key=value,key=value` option strings (`-machine none,accel=kvm`, `-smp cpus=2`).
//!
//! A `,,` inside a value is a literal comma. The first item may be a bare value for an "implied"
//! key (`-machine pc` is `type=pc`, `-m 512` is `size=512`); a later bare word is a flag set to
//! `on` (`server` in `unix:/x,server,nowait`), which callers can reject.

use block::img::args::split_escaped;

/// Parsed options in order of appearance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyVal {
    pub items: Vec<(String, String)>,
}

impl KeyVal {
    /// Parses `s`; a first item without `=` is stored under `implied` if given.
    pub fn parse(s: &str, implied: Option<&str>) -> KeyVal {
        let mut items = Vec::new();
        for (i, part) in split_escaped(s).into_iter().enumerate() {
            if part.is_empty() {
                continue;
            }
            match part.split_once('=') {
                Some((k, v)) => items.push((k.to_string(), v.to_string())),
                None if i == 0 && implied.is_some() => {
                    items.push((implied.unwrap_or_default().to_string(), part));
                }
                None => items.push((part, "on".to_string())),
            }
        }
        KeyVal { items }
    }

    /// The last value given for `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.items.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// The first key not in `allowed`.
    pub fn unknown_key(&self, allowed: &[&str]) -> Option<&str> {
        self.items.iter().map(|(k, _)| k.as_str()).find(|k| !allowed.contains(k))
    }
}

/// QEMU's boolean spellings.
pub fn parse_bool(key: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" | "yes" | "true" | "y" => Ok(true),
        "off" | "no" | "false" | "n" => Ok(false),
        _ => Err(format!("Parameter '{key}' expects 'on' or 'off'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn implied_and_escapes() {
        let kv = KeyVal::parse("pc,accel=kvm,path=/a,,b", Some("type"));
        assert_eq!(kv.get("type"), Some("pc"));
        assert_eq!(kv.get("accel"), Some("kvm"));
        assert_eq!(kv.get("path"), Some("/a,b"));
        let kv = KeyVal::parse("cpus=2,sockets=1", Some("cpus"));
        assert_eq!(kv.get("cpus"), Some("2"));
        assert_eq!(KeyVal::parse("a,server", Some("x")).get("server"), Some("on"));
        assert_eq!(KeyVal::parse("x=1,bogus=2", None).unknown_key(&["x"]), Some("bogus"));
        assert_eq!(parse_bool("x", "maybe"), Err("Parameter 'x' expects 'on' or 'off'".into()));
    }
}
