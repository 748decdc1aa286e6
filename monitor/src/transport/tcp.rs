//! TCP listeners (also for telnet) and client connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::{TcpListener, TcpStream};

use super::error::strerror;
use super::unix::LISTEN_BACKLOG;

/// Sockets listening on every address a host name resolved to, on one port.
pub struct TcpListening {
    pub listeners: Vec<TcpListener>,
    /// The first listener's address (what QEMU shows in the chardev's filename).
    pub local: SocketAddr,
}

/// Resolves `host:port` (numeric port) with QEMU's error text, keeping the families allowed by
/// `ipv4=`/`ipv6=`.
pub async fn resolve(
    host: &str,
    port: &str,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
) -> Result<Vec<SocketAddr>, String> {
    let fail = |why: &str| format!("address resolution failed for {host}:{port}: {why}");
    let Ok(port_num) = port.parse::<u16>() else {
        return Err(fail("Servname not supported for ai_socktype"));
    };
    let mut addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port_num)],
        Err(_) => match tokio::net::lookup_host((host, port_num)).await {
            Ok(a) => a.collect(),
            Err(e) => {
                let text = strerror(&e);
                let text =
                    text.strip_prefix("failed to lookup address information: ").unwrap_or(&text).to_string();
                return Err(fail(&text));
            }
        },
    };
    let want_v4 = ipv4.unwrap_or(ipv6 != Some(true));
    let want_v6 = ipv6.unwrap_or(ipv4 != Some(true));
    addrs.retain(|a| if a.is_ipv4() { want_v4 } else { want_v6 });
    let mut unique = Vec::new();
    for a in addrs {
        if !unique.contains(&a) {
            unique.push(a);
        }
    }
    if unique.is_empty() {
        return Err(fail("Address family for hostname not supported"));
    }
    Ok(unique)
}

/// Listens on every address of `host` at `port` (or the first free port up to `to`). An empty
/// host means loopback (127.0.0.1) — QEMU would listen on all interfaces. Must run inside a tokio
/// runtime.
pub async fn listen(
    host: &str,
    port: &str,
    to: Option<u16>,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
) -> Result<TcpListening, String> {
    let addrs = if host.is_empty() {
        let p = port.parse::<u16>().map_err(|_| {
            format!("address resolution failed for {host}:{port}: Servname not supported for ai_socktype")
        })?;
        vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p)]
    } else {
        resolve(host, port, ipv4, ipv6).await?
    };
    let first = addrs[0].port();
    let last = to.unwrap_or(first).max(first);
    let mixed = addrs.iter().any(SocketAddr::is_ipv4) && addrs.iter().any(SocketAddr::is_ipv6);
    let mut port_num = first;
    loop {
        match bind_all(&addrs, port_num, mixed) {
            Ok(l) => return Ok(l),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                if port_num >= last {
                    return Err(format!("Failed to find an available port: {}", strerror(&e)));
                }
                port_num += 1;
            }
            Err(e) => return Err(format!("Failed to bind socket: {}", strerror(&e))),
        }
    }
}

fn bind_all(addrs: &[SocketAddr], port: u16, mixed: bool) -> std::io::Result<TcpListening> {
    let mut listeners = Vec::new();
    let mut local = None;
    // Port 0: every address gets the port the first one was given.
    let mut port = port;
    for a in addrs {
        let addr = SocketAddr::new(a.ip(), port);
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
        sock.set_reuse_address(true)?;
        if addr.is_ipv6() && mixed {
            sock.set_only_v6(true)?;
        }
        sock.bind(&SockAddr::from(addr))?;
        sock.listen(LISTEN_BACKLOG)?;
        sock.set_nonblocking(true)?;
        let l = TcpListener::from_std(std::net::TcpListener::from(sock))?;
        let bound = l.local_addr()?;
        port = bound.port();
        local.get_or_insert(bound);
        listeners.push(l);
    }
    let local = local.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::AddrNotAvailable))?;
    Ok(TcpListening { listeners, local })
}

/// Connects out (client mode) to the first address that answers, with QEMU's error text.
pub async fn connect(
    host: &str,
    port: &str,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
) -> Result<TcpStream, String> {
    let host_or_loopback = if host.is_empty() { "127.0.0.1" } else { host };
    let addrs = resolve(host_or_loopback, port, ipv4, ipv6).await?;
    let mut last = None;
    for a in addrs {
        match TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    let why = last.map_or_else(String::new, |e| strerror(&e));
    Err(format!("Failed to connect to '{host}:{port}': {why}"))
}

/// `host:port` as QEMU prints it in filenames, with brackets for IPv6 when `brackets`.
pub fn show(addr: &SocketAddr, brackets: bool) -> String {
    match addr.ip() {
        IpAddr::V6(ip) if brackets => format!("[{ip}]:{}", addr.port()),
        ip => format!("{ip}:{}", addr.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_by_default_and_port_zero() {
        let l = listen("", "0", None, None, None).await.unwrap();
        assert_eq!(l.local.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_ne!(l.local.port(), 0);
    }

    #[tokio::test]
    async fn busy_port_and_range() {
        let a = listen("127.0.0.1", "0", None, None, None).await.unwrap();
        let port = a.local.port().to_string();
        let err = listen("127.0.0.1", &port, None, None, None).await.err().unwrap();
        assert_eq!(err, "Failed to find an available port: Address already in use");
        let next =
            listen("127.0.0.1", &port, Some(a.local.port().saturating_add(50)), None, None).await.unwrap();
        assert!(next.local.port() > a.local.port());
    }

    #[tokio::test]
    async fn resolution_errors() {
        let err = listen("127.0.0.1", "abc", None, None, None).await.err().unwrap();
        assert_eq!(
            err,
            "address resolution failed for 127.0.0.1:abc: Servname not supported for ai_socktype"
        );
        let err = resolve("127.0.0.1", "1", None, Some(true)).await.unwrap_err();
        assert!(err.starts_with("address resolution failed for 127.0.0.1:1"));
        let err = connect("127.0.0.1", "1", None, None).await.unwrap_err();
        assert_eq!(err, "Failed to connect to '127.0.0.1:1': Connection refused");
    }

    #[test]
    fn shown_addresses() {
        let v6: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(show(&v6, true), "[::1]:80");
        assert_eq!(show(&v6, false), "::1:80");
    }
}
