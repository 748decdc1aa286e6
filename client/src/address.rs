//! Monitor addresses as typed on the command line: `unix:PATH`, `tcp:HOST:PORT`,
//! `telnet:HOST:PORT` or a bare socket path.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// Where the monitor listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
    },
    /// TCP with telnet option negotiation (QEMU's `-monitor telnet:...`).
    Telnet {
        host: String,
        port: u16,
    },
}

impl Address {
    /// Parses an address. QEMU-style trailing options (`,server=on,wait=off`) are ignored so a
    /// user can paste the string from a QEMU command line.
    pub fn parse(text: &str) -> Result<Address> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::Usage("Empty monitor address".into()));
        }
        if let Some(rest) = text.strip_prefix("unix:") {
            let path = strip_options(rest);
            if path.is_empty() {
                return Err(Error::Usage(format!("Missing socket path in '{text}'")));
            }
            return Ok(Address::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = text.strip_prefix("tcp:") {
            let (host, port) = host_port(strip_options(rest), text)?;
            return Ok(Address::Tcp { host, port });
        }
        if let Some(rest) = text.strip_prefix("telnet:") {
            let (host, port) = host_port(strip_options(rest), text)?;
            return Ok(Address::Telnet { host, port });
        }
        Ok(Address::Unix(PathBuf::from(text)))
    }

    /// True for addresses whose byte stream carries telnet commands.
    pub fn is_telnet(&self) -> bool {
        matches!(self, Address::Telnet { .. })
    }
}

fn strip_options(s: &str) -> &str {
    s.split(',').next().unwrap_or(s)
}

fn host_port(s: &str, whole: &str) -> Result<(String, u16)> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(Error::Usage(format!("Expected HOST:PORT in '{whole}' (e.g. tcp:127.0.0.1:4444)")));
    };
    let port: u16 = port.parse().map_err(|_| Error::Usage(format!("Invalid port '{port}' in '{whole}'")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    Ok((host.to_string(), port))
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Unix(p) => write!(f, "unix:{}", p.display()),
            Address::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            Address::Telnet { host, port } => write!(f, "telnet:{host}:{port}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        assert_eq!(
            Address::parse("unix:/run/vm/qmp.sock").unwrap(),
            Address::Unix("/run/vm/qmp.sock".into())
        );
        assert_eq!(Address::parse("/tmp/x.sock").unwrap(), Address::Unix("/tmp/x.sock".into()));
        assert_eq!(
            Address::parse("tcp:localhost:4444").unwrap(),
            Address::Tcp { host: "localhost".into(), port: 4444 }
        );
        assert_eq!(
            Address::parse("telnet:127.0.0.1:5555,server=on,wait=off").unwrap(),
            Address::Telnet { host: "127.0.0.1".into(), port: 5555 }
        );
        assert_eq!(
            Address::parse("tcp::4444").unwrap(),
            Address::Tcp { host: "127.0.0.1".into(), port: 4444 }
        );
        assert_eq!(
            Address::parse("tcp:[::1]:4444").unwrap(),
            Address::Tcp { host: "::1".into(), port: 4444 }
        );
    }

    #[test]
    fn rejects_bad_ports() {
        assert!(Address::parse("tcp:localhost").is_err());
        assert!(Address::parse("tcp:localhost:99999").is_err());
        assert!(Address::parse("telnet:h:x").is_err());
        assert!(Address::parse("unix:").is_err());
        assert!(Address::parse("").is_err());
    }
}
