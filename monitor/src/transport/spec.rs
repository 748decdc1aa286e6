//! Where monitors listen, from QEMU's command-line spellings.
//!
//! * `-qmp SPEC` / `-monitor SPEC`: a legacy chardev spec (`stdio`, `null`, `file:PATH`,
//!   `unix:PATH[,opts]`, `tcp:[HOST]:PORT[,opts]`, `telnet:[HOST]:PORT[,opts]`, `chardev:ID`, a
//!   `mon:` prefix for a console shared with a serial port) plus a QMP or HMP monitor on it. Each
//!   gets the label `compat_monitorN`, N counting every `-qmp`/`-monitor` (QEMU's numbering).
//!   `-monitor none` adds nothing.
//! * `-chardev BACKEND,id=ID[,opts]` with BACKEND `socket`, `stdio`, `null` or `file`, and
//!   `-mon [chardev=]ID[,mode=readline|control]` to put a monitor on it.
//!
//! Socket options: `path=` or `host=`+`port=` (`to=`, `ipv4=`, `ipv6=`), `server=on|off`,
//! `wait=on|off`, `telnet=on|off`, `nodelay`, `reconnect=SECONDS` (client mode); the legacy flags
//! `server`, `nowait`, `nodelay` work. Defaults as QEMU: a socket is a client unless
//! `server=on`, and a server waits for its first client unless `wait=off`. Errors use QEMU's words.

use std::path::PathBuf;

use super::error::TransportError;
use super::opts::{self, Opts};

/// The options QEMU's `-chardev` accepts (qemu_chardev_opts); anything else is `Invalid parameter`.
const CHARDEV_KEYS: &[&str] = &[
    "backend",
    "path",
    "input-path",
    "host",
    "port",
    "fd",
    "localaddr",
    "localport",
    "to",
    "ipv4",
    "ipv6",
    "wait",
    "server",
    "delay",
    "nodelay",
    "reconnect",
    "reconnect-ms",
    "telnet",
    "tn3270",
    "tls-creds",
    "tls-authz",
    "websocket",
    "width",
    "height",
    "cols",
    "rows",
    "mux",
    "signal",
    "name",
    "debug",
    "size",
    "chardev",
    "append",
    "logfile",
    "logappend",
    "mouse",
    "clipboard",
    "tight",
    "abstract",
];
const CHARDEV_BOOLS: &[&str] = &[
    "ipv4",
    "ipv6",
    "wait",
    "server",
    "delay",
    "nodelay",
    "telnet",
    "tn3270",
    "websocket",
    "mux",
    "signal",
    "append",
    "logappend",
    "mouse",
    "clipboard",
    "tight",
    "abstract",
];
const CHARDEV_NUMBERS: &[&str] =
    &["to", "reconnect", "reconnect-ms", "width", "height", "cols", "rows", "debug"];

/// Backends QEMU has that this VMM does not provide.
const UNSUPPORTED_BACKENDS: &[&str] = &[
    "pty",
    "vc",
    "pipe",
    "udp",
    "serial",
    "parallel",
    "ringbuf",
    "memory",
    "msmouse",
    "wctablet",
    "braille",
    "testdev",
    "spicevmc",
    "spiceport",
    "qemu-vdagent",
    "dbus",
    "console",
    "hub",
];

/// What a monitor speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MonitorMode {
    /// QMP (`-qmp`, `mode=control`).
    Control,
    /// HMP with line editing (`-monitor`, `mode=readline`, the default of `-mon`).
    Readline,
    /// Not a monitor: the bytes are bridged to a device (`-serial unix:..`, `-serial chardev:ID`);
    /// the device's side is taken with [`Running::serial`](super::Running::serial).
    Device,
}

/// A socket address as given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddress {
    Unix(PathBuf),
    /// `host` may be empty (`tcp::4444`): we listen on loopback only, and say so.
    Inet {
        host: String,
        port: String,
        to: Option<u16>,
        ipv4: Option<bool>,
        ipv6: Option<bool>,
    },
}

/// A `socket` chardev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    pub addr: SocketAddress,
    pub server: bool,
    /// Server only: wait for the first client before the machine starts.
    pub wait: bool,
    pub telnet: bool,
    pub nodelay: bool,
    /// Client only: seconds between connection attempts (0: connect once, at start).
    pub reconnect: u64,
}

/// A chardev back end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// The process's stdin/stdout; `signal=off` keeps Ctrl-C from killing the process.
    Stdio {
        signal: bool,
    },
    Null,
    /// Output to a file (created, or appended to); input from `input-path` if given.
    File {
        path: PathBuf,
        append: bool,
        input: Option<PathBuf>,
    },
    Socket(SocketSpec),
}

/// One chardev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChardevSpec {
    pub id: String,
    pub backend: Backend,
    /// Shared between a serial port and the HMP monitor (`mon:` prefix, `mux=on`).
    pub mux: bool,
    /// The command-line option it came from (`-qmp unix:/x,server=on`), for messages.
    pub option: String,
}

/// A monitor on a chardev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorUse {
    pub chardev: String,
    pub mode: MonitorMode,
    pub option: String,
}

/// Everything the command line said about monitors and their chardevs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSpecs {
    pub chardevs: Vec<ChardevSpec>,
    pub monitors: Vec<MonitorUse>,
    /// The program name used in messages printed while starting (`vmm: -qmp ...: info: ...`).
    pub program: String,
    compat_index: usize,
    /// A `-monitor`, `-qmp` or `-mon` was given (even `-monitor none`): QEMU then adds no default
    /// monitor.
    monitor_option_seen: bool,
}

impl Default for MonitorSpecs {
    fn default() -> Self {
        MonitorSpecs {
            chardevs: Vec::new(),
            monitors: Vec::new(),
            program: "vmm".into(),
            compat_index: 0,
            monitor_option_seen: false,
        }
    }
}

impl MonitorSpecs {
    pub fn new(program: &str) -> Self {
        MonitorSpecs { program: program.to_string(), ..Default::default() }
    }

    /// Handles `-qmp`, `-monitor`, `-chardev` or `-mon` (`name` without the dash, e.g. `"qmp"`).
    /// Returns `Ok(false)` for any other option.
    pub fn add_option(&mut self, name: &str, value: &str) -> Result<bool, TransportError> {
        match name {
            "qmp" => self.add_qmp(value)?,
            "monitor" => self.add_monitor(value)?,
            "chardev" => self.add_chardev(value)?,
            "mon" => self.add_mon(value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `-qmp SPEC`.
    pub fn add_qmp(&mut self, value: &str) -> Result<(), TransportError> {
        self.monitor_option_seen = true;
        self.add_compat(&format!("-qmp {value}"), value, MonitorMode::Control)
    }

    /// `-monitor SPEC` (`none` adds nothing).
    pub fn add_monitor(&mut self, value: &str) -> Result<(), TransportError> {
        self.monitor_option_seen = true;
        if value.starts_with("none") {
            return Ok(());
        }
        self.add_compat(&format!("-monitor {value}"), value, MonitorMode::Readline)
    }

    /// An HMP monitor sharing a console with a serial port (`-serial mon:stdio`, `-nographic`):
    /// the chardev `label` from the legacy `spec`, with `mux` set. The serial side is taken with
    /// [`Running::take_mux`](super::Running::take_mux).
    pub fn add_muxed_monitor(&mut self, option: &str, label: &str, spec: &str) -> Result<(), TransportError> {
        let spec = spec.strip_prefix("mon:").unwrap_or(spec);
        let mut chardev = parse_compat(label, spec, option).map_err(|m| TransportError::new(option, m))?;
        chardev.mux = true;
        if let Backend::Stdio { signal } = &mut chardev.backend {
            *signal = false;
        }
        self.push_chardev(chardev)?;
        self.monitors.push(MonitorUse {
            chardev: label.into(),
            mode: MonitorMode::Readline,
            option: option.into(),
        });
        Ok(())
    }

    fn add_compat(&mut self, option: &str, value: &str, mode: MonitorMode) -> Result<(), TransportError> {
        let label = match value.strip_prefix("chardev:") {
            Some(id) => id.to_string(),
            None => {
                let label = format!("compat_monitor{}", self.compat_index);
                let chardev =
                    parse_compat(&label, value, option).map_err(|m| TransportError::new(option, m))?;
                self.push_chardev(chardev)?;
                label
            }
        };
        self.compat_index += 1;
        self.monitors.push(MonitorUse { chardev: label, mode, option: option.into() });
        Ok(())
    }

    /// `-chardev BACKEND,id=ID,...`.
    pub fn add_chardev(&mut self, value: &str) -> Result<(), TransportError> {
        let option = format!("-chardev {value}");
        let fail = |m: String| TransportError::new(&option, vec![m]);
        let o = opts::parse(value, Some("backend"));
        check_chardev_opts(&o).map_err(fail)?;
        let Some(id) = o.id.clone() else { return Err(fail("chardev: no id specified".into())) };
        if !opts::id_wellformed(&id) {
            return Err(TransportError::with_hint(
                &option,
                "Parameter 'id' expects an identifier",
                "Identifiers consist of letters, digits, '-', '.', '_', starting with a letter.",
            ));
        }
        if self.chardevs.iter().any(|c| c.id == id) {
            return Err(fail(format!("Duplicate ID '{id}' for chardev")));
        }
        let chardev = chardev_from_opts(&id, &o, &option).map_err(fail)?;
        self.chardevs.push(chardev);
        Ok(())
    }

    /// `-mon [chardev=]ID[,mode=readline|control][,pretty=on|off]`.
    pub fn add_mon(&mut self, value: &str) -> Result<(), TransportError> {
        self.monitor_option_seen = true;
        let option = format!("-mon {value}");
        let fail = |m: String| TransportError::new(&option, vec![m]);
        let o = opts::parse(value, Some("chardev"));
        o.check_keys(&["chardev", "mode", "pretty"]).map_err(fail)?;
        let mode = match o.get("mode") {
            None | Some("readline") => MonitorMode::Readline,
            Some("control") => MonitorMode::Control,
            Some(other) => return Err(fail(format!("Parameter 'mode' does not accept value '{other}'"))),
        };
        let pretty = o.get_bool("pretty").map_err(fail)?.unwrap_or(false);
        let Some(chardev) = o.get("chardev") else {
            return Err(fail("Parameter 'chardev' is missing".into()));
        };
        if pretty {
            return Err(fail(match mode {
                MonitorMode::Readline | MonitorMode::Device => {
                    "'pretty' is not compatible with HMP monitors".into()
                }
                MonitorMode::Control => "'pretty' output is not supported by this monitor".into(),
            }));
        }
        self.monitors.push(MonitorUse { chardev: chardev.into(), mode, option });
        Ok(())
    }

    /// A serial port on a socket chardev: `-serial unix:..`/`tcp:..`/`telnet:..` (a new chardev
    /// named `label`) or `-serial chardev:ID` (an existing `-chardev`). Its bytes are bridged to
    /// the device instead of a monitor.
    pub fn add_device_frontend(
        &mut self,
        option: &str,
        label: &str,
        spec: &str,
    ) -> Result<(), TransportError> {
        let chardev = match spec.strip_prefix("chardev:") {
            Some(id) => id.to_string(),
            None => {
                let c = parse_compat(label, spec, option).map_err(|m| TransportError::new(option, m))?;
                if !matches!(c.backend, Backend::Socket(_)) {
                    return Err(TransportError::new(
                        option,
                        vec![format!("'{spec}' is not a socket chardev")],
                    ));
                }
                self.push_chardev(c)?;
                label.to_string()
            }
        };
        self.monitors.push(MonitorUse { chardev, mode: MonitorMode::Device, option: option.into() });
        Ok(())
    }

    fn push_chardev(&mut self, chardev: ChardevSpec) -> Result<(), TransportError> {
        if self.chardevs.iter().any(|c| c.id == chardev.id) {
            return Err(TransportError::new(
                &chardev.option,
                vec![format!("Duplicate ID '{}' for chardev", chardev.id)],
            ));
        }
        self.chardevs.push(chardev);
        Ok(())
    }

    /// Whether any monitor or chardev uses stdio (the VMM must then not use it for anything else).
    pub fn uses_stdio(&self) -> bool {
        self.chardevs.iter().any(|c| matches!(c.backend, Backend::Stdio { .. }))
    }

    pub fn has_monitors(&self) -> bool {
        !self.monitors.is_empty()
    }

    /// Whether `-monitor`, `-qmp` or `-mon` appeared (`-monitor none` included), which in QEMU
    /// turns off the default monitor.
    pub fn monitor_option_given(&self) -> bool {
        self.monitor_option_seen
    }

    /// Checks what can only be checked once the whole command line is known, in QEMU's order and
    /// words: one stdio chardev, monitors on existing chardevs, one monitor per chardev.
    pub fn check(&self) -> Result<(), TransportError> {
        let mut stdio = false;
        for c in &self.chardevs {
            if matches!(c.backend, Backend::Stdio { .. }) {
                if stdio {
                    return Err(TransportError::new(
                        &c.option,
                        vec!["cannot use stdio by multiple character devices".into()],
                    ));
                }
                stdio = true;
            }
        }
        for (i, m) in self.monitors.iter().enumerate() {
            if !self.chardevs.iter().any(|c| c.id == m.chardev) {
                return Err(TransportError::new(
                    &m.option,
                    vec![format!("chardev \"{}\" not found", m.chardev)],
                ));
            }
            if self.monitors[..i].iter().any(|o| o.chardev == m.chardev) {
                return Err(TransportError::new(
                    &m.option,
                    vec![format!("Device '{}' is in use", m.chardev)],
                ));
            }
        }
        Ok(())
    }
}

/// Checks option names and the types of typed options, as QemuOpts does while parsing.
fn check_chardev_opts(o: &Opts) -> Result<(), String> {
    o.check_keys(CHARDEV_KEYS)?;
    for k in CHARDEV_BOOLS {
        o.get_bool(k)?;
    }
    for k in CHARDEV_NUMBERS {
        o.get_number(k)?;
    }
    Ok(())
}

/// A legacy spec (`qemu_chr_parse_compat`). Errors are the lines QEMU prints.
fn parse_compat(label: &str, spec: &str, option: &str) -> Result<ChardevSpec, Vec<String>> {
    let parse_error = || format!("parse error: {spec}");
    let (mux, filename) = match spec.strip_prefix("mon:") {
        Some(rest) => (true, rest),
        None => (false, spec),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut pair = |k: &str, v: &str| pairs.push((k.to_string(), v.to_string()));
    // User options after the address, and the key of their first element if it may omit it.
    let mut user: Option<(&str, Option<&str>)> = None;
    let mut telnet = false;
    if filename == "stdio" || filename == "null" {
        pair("backend", filename);
    } else if let Some(path) = filename.strip_prefix("file:") {
        pair("backend", "file");
        pair("path", path);
    } else if let Some((proto, rest)) = filename
        .strip_prefix("tcp:")
        .map(|r| ("tcp", r))
        .or_else(|| filename.strip_prefix("telnet:").map(|r| ("telnet", r)))
    {
        let (host, port, tail) = split_host_port(rest).ok_or_else(|| vec![parse_error()])?;
        pair("backend", "socket");
        pair("host", &host);
        pair("port", &port);
        user = tail.strip_prefix(',').map(|t| (t, None));
        telnet = proto == "telnet";
    } else if let Some(rest) = filename.strip_prefix("unix:") {
        pair("backend", "socket");
        user = Some((rest, Some("path")));
    } else {
        let known = ["pty", "vc", "con:", "COM", "pipe:", "pty:", "udp:", "/dev/", "tn3270:", "websocket:"];
        if known.iter().any(|k| filename.starts_with(k))
            || ["msmouse", "wctablet", "braille", "testdev"].contains(&filename)
        {
            return Err(vec![format!("'{filename}' is not supported by this VMM")]);
        }
        return Err(vec![format!("'{filename}' is not a valid char driver"), parse_error()]);
    }
    if let Some((text, implied)) = user {
        let o = opts::parse(text, implied);
        check_chardev_opts(&o).map_err(|e| vec![e, parse_error()])?;
        pairs.extend(o.pairs().map(|(k, v)| (k.to_string(), v.to_string())));
    }
    // Applied after the user's options, as QEMU does.
    if telnet {
        pairs.push(("telnet".into(), "on".into()));
    }
    if mux && filename == "stdio" {
        pairs.push(("signal".into(), "off".into()));
    }
    let o = Opts::from_pairs(pairs);
    let mut chardev = chardev_from_opts(label, &o, option).map_err(|e| vec![e])?;
    chardev.mux = chardev.mux || mux;
    Ok(chardev)
}

/// `HOST:PORT[,rest]`, `:PORT[,rest]` or `[V6HOST]:PORT[,rest]` (QEMU accepts no brackets; we do).
fn split_host_port(s: &str) -> Option<(String, String, &str)> {
    let (host, after) = if let Some(rest) = s.strip_prefix('[') {
        let close = rest.find(']')?;
        (rest[..close].to_string(), rest[close + 1..].strip_prefix(':')?)
    } else {
        let colon = s.find(':')?;
        if colon > 64 {
            return None;
        }
        (s[..colon].to_string(), &s[colon + 1..])
    };
    let end = after.find(',').unwrap_or(after.len());
    let port = &after[..end];
    if port.is_empty() || port.len() > 32 {
        return None;
    }
    Some((host, port.to_string(), &after[end..]))
}

/// Builds a chardev from checked options (QEMU's `qemu_chr_parse_*` and socket validation).
fn chardev_from_opts(id: &str, o: &Opts, option: &str) -> Result<ChardevSpec, String> {
    let flag = |k: &str| o.get_bool(k);
    let Some(backend) = o.get("backend") else { return Err(format!("chardev: \"{id}\" missing backend")) };
    let mux = flag("mux")?.unwrap_or(false);
    let backend = match backend {
        "stdio" => Backend::Stdio { signal: flag("signal")?.unwrap_or(true) },
        "null" => Backend::Null,
        "file" => {
            let Some(path) = o.get("path") else { return Err("chardev: file: no filename given".into()) };
            Backend::File {
                path: path.into(),
                append: flag("append")?.unwrap_or(false),
                input: o.get("input-path").map(PathBuf::from),
            }
        }
        "socket" => Backend::Socket(socket_from_opts(o)?),
        b if UNSUPPORTED_BACKENDS.contains(&b) => {
            return Err(format!("'{b}' chardev backend is not supported by this VMM"));
        }
        b => return Err(format!("'{b}' is not a valid char driver name")),
    };
    for unsupported in ["logfile", "tls-creds", "tls-authz", "websocket", "tn3270", "fd", "abstract"] {
        if o.contains(unsupported) && o.get_bool(unsupported) != Ok(Some(false)) {
            return Err(format!("chardev option '{unsupported}' is not supported by this VMM"));
        }
    }
    Ok(ChardevSpec { id: id.into(), backend, mux, option: option.into() })
}

fn socket_from_opts(o: &Opts) -> Result<SocketSpec, String> {
    let (path, host, port, fd) = (o.get("path"), o.get("host"), o.get("port"), o.get("fd"));
    if usize::from(path.is_some()) + usize::from(host.is_some()) + usize::from(fd.is_some()) > 1 {
        return Err("None or one of 'path', 'fd' or 'host' option required.".into());
    }
    if host.is_some() && port.is_none() {
        return Err("chardev: socket: no port given".into());
    }
    let addr = match (path, host, port) {
        (Some(p), _, _) => SocketAddress::Unix(p.into()),
        (None, Some(h), Some(p)) => SocketAddress::Inet {
            host: h.into(),
            port: p.into(),
            to: o.get_number("to")?.map(|t| u16::try_from(t).unwrap_or(u16::MAX)),
            ipv4: o.get_bool("ipv4")?,
            ipv6: o.get_bool("ipv6")?,
        },
        _ if fd.is_some() => return Err("chardev option 'fd' is not supported by this VMM".into()),
        _ => return Err("chardev: socket: no path or host given".into()),
    };
    let server = o.get_bool("server")?.unwrap_or(false);
    let wait = o.get_bool("wait")?;
    let reconnect = o.get_number("reconnect")?;
    if server {
        if reconnect.is_some() || o.contains("reconnect-ms") {
            return Err("'reconnect' option is incompatible with socket in server listen mode".into());
        }
    } else if wait.is_some() {
        return Err("'wait' option is incompatible with socket in client connect mode".into());
    }
    if o.contains("delay") && o.contains("nodelay") {
        return Err("'delay' and 'nodelay' are mutually exclusive".into());
    }
    let nodelay = o.get_bool("nodelay")?.unwrap_or(false) || o.get_bool("delay")? == Some(false);
    let reconnect_ms = o.get_number("reconnect-ms")?;
    let reconnect = match (reconnect, reconnect_ms) {
        (Some(_), Some(_)) => return Err("'reconnect' and 'reconnect-ms' are mutually exclusive".into()),
        (Some(s), None) => s,
        (None, Some(ms)) => ms.div_ceil(1000),
        (None, None) => 0,
    };
    Ok(SocketSpec {
        addr,
        server,
        wait: server && wait.unwrap_or(true),
        telnet: o.get_bool("telnet")?.unwrap_or(false),
        nodelay,
        reconnect,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(args: &[(&str, &str)]) -> Result<MonitorSpecs, String> {
        let mut s = MonitorSpecs::new("vmm");
        for (k, v) in args {
            s.add_option(k, v).map_err(|e| e.report("vmm"))?;
        }
        s.check().map_err(|e| e.report("vmm"))?;
        Ok(s)
    }

    fn sock(s: &MonitorSpecs, i: usize) -> SocketSpec {
        match &s.chardevs[i].backend {
            Backend::Socket(sk) => sk.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn legacy_specs() {
        let s = specs(&[
            ("qmp", "unix:/tmp/q.sock,server=on,wait=off"),
            ("monitor", "telnet:127.0.0.1:4444,server,nowait"),
            ("qmp", "tcp::4445,server=on,wait=off,nodelay"),
            ("monitor", "tcp:[::1]:4446,server=on,wait=off"),
        ])
        .unwrap();
        assert_eq!(s.chardevs.len(), 4);
        assert_eq!(s.chardevs[0].id, "compat_monitor0");
        assert_eq!(s.chardevs[3].id, "compat_monitor3");
        let q = sock(&s, 0);
        assert_eq!(q.addr, SocketAddress::Unix("/tmp/q.sock".into()));
        assert!(q.server && !q.wait && !q.telnet);
        let t = sock(&s, 1);
        assert!(t.server && !t.wait && t.telnet);
        assert!(
            matches!(&t.addr, SocketAddress::Inet { host, port, .. } if host == "127.0.0.1" && port == "4444")
        );
        let n = sock(&s, 2);
        assert!(n.nodelay && matches!(&n.addr, SocketAddress::Inet { host, .. } if host.is_empty()));
        assert!(matches!(&sock(&s, 3).addr, SocketAddress::Inet { host, .. } if host == "::1"));
        assert_eq!(s.monitors[0].mode, MonitorMode::Control);
        assert_eq!(s.monitors[1].mode, MonitorMode::Readline);
    }

    #[test]
    fn server_waits_by_default_and_client_is_default() {
        let s = specs(&[("qmp", "unix:/tmp/a.sock,server")]).unwrap();
        assert!(sock(&s, 0).wait);
        let s = specs(&[("qmp", "unix:/tmp/a.sock")]).unwrap();
        assert!(!sock(&s, 0).server);
        let s = specs(&[("qmp", "stdio"), ("monitor", "none"), ("monitor", "null")]).unwrap();
        assert!(s.monitor_option_given());
        assert!(!MonitorSpecs::default().monitor_option_given());
        assert!(specs(&[("monitor", "none")]).unwrap().monitor_option_given());
        assert_eq!(s.chardevs[1].id, "compat_monitor1");
        assert_eq!(s.chardevs[0].backend, Backend::Stdio { signal: true });
    }

    #[test]
    fn chardev_and_mon() {
        let s = specs(&[
            ("chardev", "socket,id=qmp2,path=/tmp/q2.sock,server=on,wait=off"),
            ("mon", "chardev=qmp2,mode=control"),
            ("chardev", "socket,id=hmp,host=127.0.0.1,port=0,server=on,wait=off,telnet=on"),
            ("mon", "hmp"),
            ("chardev", "file,id=f,path=/tmp/out.txt"),
        ])
        .unwrap();
        assert_eq!(
            s.monitors[0],
            MonitorUse {
                chardev: "qmp2".into(),
                mode: MonitorMode::Control,
                option: "-mon chardev=qmp2,mode=control".into()
            }
        );
        assert_eq!(s.monitors[1].mode, MonitorMode::Readline);
        assert!(sock(&s, 1).telnet);
        assert!(matches!(&s.chardevs[2].backend, Backend::File { append: false, .. }));
    }

    #[test]
    fn errors_use_qemu_words() {
        let err = |args: &[(&str, &str)]| specs(args).unwrap_err();
        assert_eq!(
            err(&[("monitor", "bogus:x")]),
            "vmm: -monitor bogus:x: 'bogus:x' is not a valid char driver\nvmm: -monitor bogus:x: parse error: bogus:x"
        );
        assert_eq!(
            err(&[("monitor", "tcp:localhost")]),
            "vmm: -monitor tcp:localhost: parse error: tcp:localhost"
        );
        assert_eq!(
            err(&[("monitor", "unix:/tmp/a.sock,server=on,foo=1")]),
            "vmm: -monitor unix:/tmp/a.sock,server=on,foo=1: Invalid parameter 'foo'\n\
             vmm: -monitor unix:/tmp/a.sock,server=on,foo=1: parse error: unix:/tmp/a.sock,server=on,foo=1"
        );
        assert_eq!(
            err(&[("monitor", "unix:/tmp/a.sock,server=maybe")]).lines().next().unwrap(),
            "vmm: -monitor unix:/tmp/a.sock,server=maybe: Parameter 'server' expects 'on' or 'off'"
        );
        assert_eq!(
            err(&[("monitor", "unix:/tmp/zz3.sock,server=off,wait=off")]),
            "vmm: -monitor unix:/tmp/zz3.sock,server=off,wait=off: 'wait' option is incompatible with socket in client connect mode"
        );
        assert_eq!(
            err(&[("chardev", "socket,id=c1,host=127.0.0.1")]),
            "vmm: -chardev socket,id=c1,host=127.0.0.1: chardev: socket: no port given"
        );
        assert_eq!(
            err(&[("chardev", "socket,path=/x")]),
            "vmm: -chardev socket,path=/x: chardev: no id specified"
        );
        assert_eq!(
            err(&[("chardev", "bogus,id=c1")]),
            "vmm: -chardev bogus,id=c1: 'bogus' is not a valid char driver name"
        );
        assert_eq!(
            err(&[("chardev", "socket,id=c1,host=h,port=1,path=/x")]),
            "vmm: -chardev socket,id=c1,host=h,port=1,path=/x: None or one of 'path', 'fd' or 'host' option required."
        );
        assert_eq!(
            err(&[("chardev", "file,id=x")]),
            "vmm: -chardev file,id=x: chardev: file: no filename given"
        );
        assert_eq!(
            err(&[("chardev", "null,id=c1"), ("chardev", "null,id=c1")]),
            "vmm: -chardev null,id=c1: Duplicate ID 'c1' for chardev"
        );
        assert_eq!(err(&[("mon", "chardev=nope")]), "vmm: -mon chardev=nope: chardev \"nope\" not found");
        assert_eq!(err(&[("mon", "mode=control")]), "vmm: -mon mode=control: Parameter 'chardev' is missing");
        assert_eq!(
            err(&[("chardev", "null,id=c1"), ("mon", "chardev=c1,mode=foo")]),
            "vmm: -mon chardev=c1,mode=foo: Parameter 'mode' does not accept value 'foo'"
        );
        assert_eq!(
            err(&[("chardev", "null,id=c1"), ("mon", "chardev=c1,foo=1")]),
            "vmm: -mon chardev=c1,foo=1: Invalid parameter 'foo'"
        );
        assert_eq!(
            err(&[("qmp", "stdio"), ("monitor", "stdio")]),
            "vmm: -monitor stdio: cannot use stdio by multiple character devices"
        );
        assert_eq!(
            err(&[("chardev", "stdio,id=s1"), ("mon", "chardev=s1"), ("mon", "chardev=s1")]),
            "vmm: -mon chardev=s1: Device 's1' is in use"
        );
        assert_eq!(
            err(&[("monitor", "chardev:nope")]),
            "vmm: -monitor chardev:nope: chardev \"nope\" not found"
        );
        assert_eq!(
            err(&[("chardev", "socket,id=1x,path=/x")]),
            "vmm: -chardev socket,id=1x,path=/x: Parameter 'id' expects an identifier\n\
             Identifiers consist of letters, digits, '-', '.', '_', starting with a letter."
        );
    }

    #[test]
    fn chardev_reference_and_mux() {
        let s = specs(&[("chardev", "null,id=n"), ("monitor", "chardev:n"), ("qmp", "null")]).unwrap();
        assert_eq!(s.monitors[0].chardev, "n");
        assert_eq!(s.chardevs[1].id, "compat_monitor1", "chardev: references count in the numbering");
        let mut s = MonitorSpecs::new("vmm");
        s.add_muxed_monitor("-nographic", "serial0", "mon:stdio").unwrap();
        assert!(s.chardevs[0].mux);
        assert_eq!(s.chardevs[0].backend, Backend::Stdio { signal: false });
        assert_eq!(s.monitors[0].mode, MonitorMode::Readline);
        assert!(s.uses_stdio());
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("h:1,x"), Some(("h".into(), "1".into(), ",x")));
        assert_eq!(split_host_port(":1"), Some((String::new(), "1".into(), "")));
        assert_eq!(split_host_port("[::1]:22,server"), Some(("::1".into(), "22".into(), ",server")));
        assert_eq!(split_host_port("h:"), None);
        assert_eq!(split_host_port("h"), None);
        assert_eq!(split_host_port("[::1]22"), None);
    }
}
