//! Where monitors listen: QEMU's spellings, the listeners, and the stream adapters.
//!
//! # API (for the vmm binary)
//!
//! ```text
//! let mut specs = transport::MonitorSpecs::new("vmm");
//! for (name, value) in monitor_options {            // "qmp", "monitor", "chardev", "mon"
//!     specs.add_option(name, value)?;               // syntax errors, in QEMU's words
//! }
//! // -nographic: specs.add_muxed_monitor("-nographic", "serial0", "mon:stdio")?;
//! let mut running = transport::start(monitor.clone(), specs).await?;   // binds, spawns sessions
//! let serial = running.take_mux("serial0");         // the UART's side of a shared console
//! running.wait_for_clients().await;                 // wait=on: first client before the machine starts
//! // ... on exit: running.shutdown() (also on drop): socket files removed, terminal restored.
//! ```
//! Errors are [`TransportError`]s; [`TransportError::report`] renders them exactly as QEMU prints
//! them (`vmm: -qmp unix:/x/y.sock,server=on: Failed to bind socket to /x/y.sock: No such file or
//! directory`).
//!
//! # What happens
//!
//! * Unix sockets: a stale socket file is replaced (a live one is refused), the new one is created
//!   mode 0600, and removed at shutdown. TCP: `tcp::PORT` (empty host) listens on 127.0.0.1 only
//!   and says so on stderr; `0.0.0.0` listens everywhere; a host name listens on every address it
//!   resolves to; `[::1]` works. Listen backlog 4096; `RLIMIT_NOFILE` is raised to the hard limit.
//! * Every socket accepts any number of clients at once, each an independent session (QEMU serves
//!   one at a time). Accept errors (`EMFILE`...) are logged and retried after a short pause; they
//!   never stop the listener.
//! * Telnet (`telnet:` or `telnet=on`) wraps each connection in [`telnet::TelnetStream`]; it works
//!   under QMP as well as HMP.
//! * `server=off` connects out once at start (errors reported as QEMU), or keeps reconnecting
//!   every `reconnect=` seconds.
//! * stdio: the terminal goes raw (see [`stdio`]); a `mux` chardev shares it between the HMP
//!   monitor and a serial port ([`mux`]).
//! * The transport never looks at the bytes: the monitor mode picks `qmp::serve` or `hmp::serve`.
//!   QMP offers the `oob` capability everywhere, stdio included, as QEMU 7.2 does.
//! * Chardevs no monitor uses are recorded (for `query-chardev`) but not opened; they are
//!   returned by [`Running::unused`] for the VMM to wire (serial ports).

pub mod chardevs;
pub mod device;
pub mod error;
pub mod limits;
pub mod mux;
pub mod opts;
pub mod session;
pub mod spec;
pub mod stdio;
pub mod tcp;
pub mod telnet;
pub mod unix;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Map;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub use chardevs::{ChardevInfo, ChardevRegistry};
pub use device::DeviceSide;
pub use error::TransportError;
pub use mux::{MuxEvent, MuxSerial};
pub use spec::{Backend, ChardevSpec, MonitorMode, MonitorSpecs, MonitorUse, SocketAddress, SocketSpec};

use crate::Monitor;
use crate::hmp::HmpOptions;
use chardevs::Chardev;
use error::strerror;
use unix::SocketFile;

/// Pause after an accept error such as `EMFILE` before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Where a listening chardev ended up (port 0 gets a real port).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

/// The monitors' transports, running.
pub struct Running {
    monitor: Arc<Monitor>,
    tasks: Vec<JoinHandle<()>>,
    socket_files: Vec<SocketFile>,
    waiting: Vec<oneshot::Receiver<()>>,
    addresses: Vec<(String, ListenAddress)>,
    muxes: HashMap<String, MuxSerial>,
    devices: HashMap<String, device::DeviceSide>,
    unused: Vec<ChardevSpec>,
    labels: Vec<String>,
    terminal: bool,
}

/// Opens every chardev a monitor uses and starts serving. Must run inside the monitor's tokio
/// runtime; sessions and listeners are tasks on it.
pub async fn start(monitor: Arc<Monitor>, specs: MonitorSpecs) -> Result<Running, TransportError> {
    specs.check()?;
    if let Err(e) = limits::raise_nofile_limit() {
        tracing::warn!("could not raise the open-files limit: {e}");
    }
    let mut running = Running {
        monitor: monitor.clone(),
        tasks: Vec::new(),
        socket_files: Vec::new(),
        waiting: Vec::new(),
        addresses: Vec::new(),
        muxes: HashMap::new(),
        devices: HashMap::new(),
        unused: Vec::new(),
        labels: Vec::new(),
        terminal: false,
    };
    for c in &specs.chardevs {
        let mode = specs.monitors.iter().find(|m| m.chardev == c.id).map(|m| m.mode);
        match mode {
            Some(mode) => running.open(c, mode, &specs.program).await?,
            None => {
                monitor.chardevs.add(&c.id, &idle_filename(c), false);
                running.labels.push(c.id.clone());
                running.unused.push(c.clone());
            }
        }
    }
    Ok(running)
}

/// The filename QEMU shows for a chardev with no client.
fn idle_filename(c: &ChardevSpec) -> String {
    match &c.backend {
        Backend::Stdio { .. } => "stdio".into(),
        Backend::Null => "null".into(),
        Backend::File { .. } => "file".into(),
        Backend::Socket(s) => {
            let server = if s.server { ",server=on" } else { "" };
            match &s.addr {
                SocketAddress::Unix(p) => format!("disconnected:unix:{}{server}", p.display()),
                SocketAddress::Inet { host, port, .. } => {
                    let proto = if s.telnet && s.server { "telnet" } else { "tcp" };
                    format!("disconnected:{proto}:{host}:{port}{server}")
                }
            }
        }
    }
}

impl Running {
    /// Resolves once every `wait=on` server has accepted its first client.
    pub async fn wait_for_clients(&mut self) {
        for rx in self.waiting.drain(..) {
            let _ = rx.await;
        }
    }

    /// Where a listening chardev listens (its label: `compat_monitor0`, an `id=`).
    pub fn address(&self, label: &str) -> Option<&ListenAddress> {
        self.addresses.iter().find(|(l, _)| l == label).map(|(_, a)| a)
    }

    /// The TCP port a listening chardev got.
    pub fn tcp_port(&self, label: &str) -> Option<u16> {
        match self.address(label)? {
            ListenAddress::Tcp(a) => Some(a.port()),
            ListenAddress::Unix(_) => None,
        }
    }

    /// The serial port's side of a console shared with the monitor (`mux`), once.
    pub fn take_mux(&mut self, label: &str) -> Option<MuxSerial> {
        self.muxes.remove(label)
    }

    /// The device side of a chardev bridged to a device (`-serial unix:..`), once.
    pub fn serial(&mut self, label: &str) -> Option<device::DeviceSide> {
        self.devices.remove(label)
    }

    /// Chardevs no monitor uses (not opened).
    pub fn unused(&self) -> &[ChardevSpec] {
        &self.unused
    }

    /// Stops listening and serving, removes the socket files, restores the terminal.
    pub fn shutdown(&mut self) {
        for t in self.tasks.drain(..) {
            t.abort();
        }
        for f in self.socket_files.drain(..) {
            f.remove();
        }
        for l in self.labels.drain(..) {
            self.monitor.chardevs.remove(&l);
        }
        if self.terminal {
            stdio::restore_terminal();
            self.terminal = false;
        }
    }

    async fn open(
        &mut self,
        c: &ChardevSpec,
        mode: MonitorMode,
        program: &str,
    ) -> Result<(), TransportError> {
        let fail = |m: String| TransportError::new(&c.option, vec![m]);
        if mode == MonitorMode::Device && !matches!(c.backend, Backend::Socket(_)) {
            return Err(fail(format!("chardev '{}': a serial port can use socket chardevs only here", c.id)));
        }
        if c.mux && !matches!(c.backend, Backend::Stdio { .. }) {
            return Err(fail(
                "a console shared with the monitor ('mon:', 'mux=on') works on stdio only".into(),
            ));
        }
        self.labels.push(c.id.clone());
        let monitor = self.monitor.clone();
        match &c.backend {
            Backend::Null => {
                monitor.chardevs.add(&c.id, "null", true);
            }
            Backend::File { path, append, input } => {
                let out = open_output(path, *append).await.map_err(fail)?;
                let reader: Box<dyn AsyncRead + Unpin + Send> =
                    match input {
                        Some(p) => Box::new(tokio::fs::File::open(p).await.map_err(|e| {
                            fail(format!("Could not open '{}': {}", p.display(), strerror(&e)))
                        })?),
                        None => Box::new(tokio::io::empty()),
                    };
                monitor.chardevs.add(&c.id, "file", true);
                self.tasks.push(session::spawn(monitor, mode, reader, out, HmpOptions::default(), None));
            }
            Backend::Stdio { signal } => {
                stdio::set_raw_terminal(*signal);
                self.terminal = true;
                let (stdin, stdout) = stdio::streams();
                if c.mux {
                    // As QEMU lists it: the back end as `<id>-base`, the mux as `<id>`.
                    let base = format!("{}-base", c.id);
                    monitor.chardevs.add(&base, "stdio", true);
                    monitor.chardevs.add(&c.id, "mux", true);
                    self.labels.push(base);
                    self.open_mux(&c.id, stdin, stdout);
                } else {
                    monitor.chardevs.add(&c.id, "stdio", true);
                    self.tasks.push(session::spawn(
                        monitor,
                        mode,
                        stdin,
                        stdout,
                        HmpOptions::default(),
                        None,
                    ));
                }
            }
            Backend::Socket(s) if s.server => self.open_server(c, s, mode, program).await?,
            Backend::Socket(s) => self.open_client(c, s, mode).await?,
        }
        Ok(())
    }

    /// For a device frontend: links the chardev's connections to a device side kept for the VMM.
    fn bridge_device(&mut self, chardev: &Arc<Chardev>, mode: MonitorMode) {
        if mode == MonitorMode::Device {
            let (link, side) = device::link();
            chardev.set_device_link(link);
            self.devices.insert(chardev.label().to_string(), side);
        }
    }

    /// A console shared by the HMP monitor and a serial port.
    fn open_mux<R, W>(&mut self, label: &str, reader: R, writer: W)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (mon, mut serial) = mux::spawn(reader, writer);
        let (tx, rx) = mpsc::unbounded_channel();
        let mut events = std::mem::replace(&mut serial.events, rx);
        let monitor = self.monitor.clone();
        // `C-a x` quits through the QMP command, like `quit` anywhere else; the rest goes to the
        // VMM with the serial side.
        self.tasks.push(tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if ev == MuxEvent::Quit {
                    if let Some(def) = monitor.registry.get("quit")
                        && let Err(e) = def.call(monitor.clone(), Map::new()).await
                    {
                        tracing::warn!("quit from the console failed: {e}");
                    }
                } else {
                    let _ = tx.send(ev);
                }
            }
        }));
        let (r, w) = tokio::io::split(mon.stream);
        let opts = HmpOptions { focus: Some(mon.focus) };
        self.tasks.push(session::spawn(self.monitor.clone(), MonitorMode::Readline, r, w, opts, None));
        self.muxes.insert(label.to_string(), serial);
    }

    async fn open_server(
        &mut self,
        c: &ChardevSpec,
        s: &SocketSpec,
        mode: MonitorMode,
        program: &str,
    ) -> Result<(), TransportError> {
        let fail = |m: String| TransportError::new(&c.option, vec![m]);
        let (listeners, idle, shown): (Vec<Listener>, String, String) = match &s.addr {
            SocketAddress::Unix(path) => {
                let (l, file) = unix::listen(path).map_err(|e| TransportError {
                    option: c.option.clone(),
                    messages: vec![e.message],
                    hint: e.hint,
                })?;
                self.socket_files.push(file);
                self.addresses.push((c.id.clone(), ListenAddress::Unix(path.clone())));
                let shown = format!("unix:{},server=on", path.display());
                (vec![Listener::Unix(l, path.clone())], format!("disconnected:{shown}"), shown)
            }
            SocketAddress::Inet { host, port, to, ipv4, ipv6 } => {
                let l = tcp::listen(host, port, *to, *ipv4, *ipv6).await.map_err(fail)?;
                if host.is_empty() {
                    eprintln!(
                        "{program}: {}: info: no host given: listening on {} only (use 0.0.0.0 for all interfaces)",
                        c.option,
                        l.local.ip()
                    );
                }
                self.addresses.push((c.id.clone(), ListenAddress::Tcp(l.local)));
                let proto = if s.telnet { "telnet" } else { "tcp" };
                let shown = format!("{proto}:{},server=on", tcp::show(&l.local, false));
                (l.listeners.into_iter().map(Listener::Tcp).collect(), format!("disconnected:{shown}"), shown)
            }
        };
        let chardev = self.monitor.chardevs.add(&c.id, &idle, true);
        self.bridge_device(&chardev, mode);
        let first_client = if s.wait {
            eprintln!("{program}: {}: info: QEMU waiting for connection on: {idle}", c.option);
            let (tx, rx) = oneshot::channel();
            self.waiting.push(rx);
            Some(tx)
        } else {
            None
        };
        tracing::debug!("listening on {shown}");
        let ctx = Arc::new(ListenCtx {
            monitor: self.monitor.clone(),
            mode,
            chardev,
            telnet: s.telnet,
            nodelay: s.nodelay,
            first_client: Mutex::new(first_client),
        });
        for l in listeners {
            self.tasks.push(tokio::spawn(accept_loop(l, ctx.clone())));
        }
        Ok(())
    }

    async fn open_client(
        &mut self,
        c: &ChardevSpec,
        s: &SocketSpec,
        mode: MonitorMode,
    ) -> Result<(), TransportError> {
        let chardev = self.monitor.chardevs.add(&c.id, &idle_filename(c), true);
        self.bridge_device(&chardev, mode);
        let monitor = self.monitor.clone();
        let addr = s.addr.clone();
        if s.reconnect == 0 {
            let conn = connect(&addr).await.map_err(|m| TransportError::new(&c.option, vec![m]))?;
            self.tasks.push(tokio::spawn(serve_client(monitor, mode, conn, chardev)));
            return Ok(());
        }
        let every = Duration::from_secs(s.reconnect);
        let label = c.id.clone();
        self.tasks.push(tokio::spawn(async move {
            let mut reported = false;
            loop {
                match connect(&addr).await {
                    Ok(conn) => {
                        reported = false;
                        serve_client(monitor.clone(), mode, conn, chardev.clone()).await;
                    }
                    Err(e) if !reported => {
                        tracing::warn!("Unable to connect character device {label}: {e}");
                        reported = true;
                    }
                    Err(_) => {}
                }
                tokio::time::sleep(every).await;
            }
        }));
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn open_output(path: &Path, append: bool) -> Result<tokio::fs::File, String> {
    let mut o = tokio::fs::OpenOptions::new();
    o.write(true).create(true);
    if append {
        o.append(true);
    } else {
        o.truncate(true);
    }
    o.open(path).await.map_err(|e| format!("Could not open '{}': {}", path.display(), strerror(&e)))
}

/// A client-mode connection and the filename it shows while connected.
enum Outgoing {
    Unix(tokio::net::UnixStream, String),
    Tcp(tokio::net::TcpStream, String),
}

async fn connect(addr: &SocketAddress) -> Result<Outgoing, String> {
    match addr {
        SocketAddress::Unix(p) => {
            let s = unix::connect(p).await?;
            Ok(Outgoing::Unix(s, format!("unix:{}", p.display())))
        }
        SocketAddress::Inet { host, port, ipv4, ipv6, .. } => {
            let s = tcp::connect(host, port, *ipv4, *ipv6).await?;
            let name = match (s.local_addr(), s.peer_addr()) {
                (Ok(l), Ok(p)) => format!("tcp:{} <-> {}", tcp::show(&l, true), tcp::show(&p, true)),
                _ => format!("tcp:{host}:{port}"),
            };
            Ok(Outgoing::Tcp(s, name))
        }
    }
}

/// Serves one outgoing connection until its session ends.
async fn serve_client(monitor: Arc<Monitor>, mode: MonitorMode, conn: Outgoing, chardev: Arc<Chardev>) {
    let task = match conn {
        Outgoing::Unix(s, name) => {
            let guard = chardev.client_connected(name);
            let (r, w) = s.into_split();
            session::spawn(monitor, mode, r, w, HmpOptions::default(), Some(guard))
        }
        Outgoing::Tcp(s, name) => {
            let guard = chardev.client_connected(name);
            let (r, w) = s.into_split();
            session::spawn(monitor, mode, r, w, HmpOptions::default(), Some(guard))
        }
    };
    let _ = task.await;
}

enum Listener {
    Unix(tokio::net::UnixListener, PathBuf),
    Tcp(tokio::net::TcpListener),
}

/// What every connection of one listening chardev shares.
struct ListenCtx {
    monitor: Arc<Monitor>,
    mode: MonitorMode,
    chardev: Arc<Chardev>,
    telnet: bool,
    nodelay: bool,
    first_client: Mutex<Option<oneshot::Sender<()>>>,
}

/// Accepts connections until the monitor closes; each gets its own session.
async fn accept_loop(listener: Listener, ctx: Arc<ListenCtx>) {
    let mut closing = ctx.monitor.closing_signal();
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            _ = closing.changed() => return,
            a = accept(&listener) => a,
        };
        match accepted {
            Ok(conn) => {
                if let Ok(mut first) = ctx.first_client.lock()
                    && let Some(tx) = first.take()
                {
                    let _ = tx.send(());
                }
                serve_accepted(&ctx, conn);
            }
            Err(e) => {
                let resource = matches!(
                    e.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    tracing::warn!("{}: accept failed: {e}", ctx.chardev.label());
                    last_warning = Some(Instant::now());
                }
                if resource {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream, String),
    Tcp(tokio::net::TcpStream, String),
}

async fn accept(listener: &Listener) -> std::io::Result<Accepted> {
    match listener {
        Listener::Unix(l, path) => {
            let (s, _) = l.accept().await?;
            Ok(Accepted::Unix(s, format!("unix:{},server=on", path.display())))
        }
        Listener::Tcp(l) => {
            let (s, peer) = l.accept().await?;
            let local = s.local_addr()?;
            Ok(Accepted::Tcp(
                s,
                format!("{},server=on <-> {}", tcp::show(&local, true), tcp::show(&peer, true)),
            ))
        }
    }
}

fn serve_accepted(ctx: &ListenCtx, conn: Accepted) {
    let monitor = ctx.monitor.clone();
    match conn {
        Accepted::Unix(s, name) => {
            let guard = ctx.chardev.client_connected(name);
            let (r, w) = s.into_split();
            session::spawn(monitor, ctx.mode, r, w, HmpOptions::default(), Some(guard));
        }
        Accepted::Tcp(s, addrs) => {
            if ctx.nodelay {
                let _ = s.set_nodelay(true);
            }
            let proto = if ctx.telnet { "telnet" } else { "tcp" };
            let guard = ctx.chardev.client_connected(format!("{proto}:{addrs}"));
            if ctx.telnet {
                let (r, w) = tokio::io::split(telnet::TelnetStream::new(s));
                session::spawn(monitor, ctx.mode, r, w, HmpOptions::default(), Some(guard));
            } else {
                let (r, w) = s.into_split();
                session::spawn(monitor, ctx.mode, r, w, HmpOptions::default(), Some(guard));
            }
        }
    }
}
