//! `qmp-swarm ENDPOINT [--clients N] [--active K] [--per-client M]`: N clients connect to one QMP
//! socket at once (each gets its greeting and negotiates) and stay connected; once all are in, K of
//! them (default 10) each run M sequential `query-status` round trips while the others idle.
//! Prints one JSON line: how many were connected at once, connect+negotiate time, and round-trip
//! latency percentiles. `--active N` makes every client busy (a throughput test).
//!
//! A benchmark tool (bench/monitor_bench.sh runs it), not a test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Barrier;

fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

async fn connect(
    ep: &str,
) -> std::io::Result<(
    Box<dyn tokio::io::AsyncRead + Unpin + Send>,
    Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
)> {
    if let Some(p) = ep.strip_prefix("unix:") {
        let s = tokio::net::UnixStream::connect(p).await?;
        let (r, w) = s.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else if let Some(a) = ep.strip_prefix("tcp:") {
        let s = tokio::net::TcpStream::connect(a).await?;
        s.set_nodelay(true)?;
        let (r, w) = s.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else {
        Err(std::io::Error::other("endpoint must be unix:PATH or tcp:HOST:PORT"))
    }
}

async fn client(
    ep: String,
    per_client: usize,
    active: bool,
    barrier: Arc<Barrier>,
) -> Result<(Duration, Vec<Duration>), String> {
    let t0 = Instant::now();
    let mut attempt = 0;
    let (r, mut w) = loop {
        match connect(&ep).await {
            Ok(c) => break c,
            Err(e) if attempt < 50 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                let _ = e;
            }
            Err(e) => return Err(format!("connect: {e}")),
        }
    };
    let mut r = BufReader::new(r);
    let mut line = String::new();
    r.read_line(&mut line).await.map_err(|e| e.to_string())?;
    if !line.contains("\"QMP\"") {
        return Err(format!("no greeting: {line}"));
    }
    w.write_all(b"{\"execute\":\"qmp_capabilities\"}\n").await.map_err(|e| e.to_string())?;
    line.clear();
    r.read_line(&mut line).await.map_err(|e| e.to_string())?;
    let setup = t0.elapsed();
    barrier.wait().await;
    let mut lat = Vec::with_capacity(per_client);
    for _ in 0..if active { per_client } else { 0 } {
        let t = Instant::now();
        w.write_all(b"{\"execute\":\"query-status\"}\n").await.map_err(|e| e.to_string())?;
        loop {
            line.clear();
            if r.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
                return Err("EOF".into());
            }
            if line.contains("\"return\"") {
                break;
            }
        }
        lat.push(t.elapsed());
    }
    // Stay connected until everyone is done, so all clients are connected at once throughout.
    barrier.wait().await;
    Ok((setup, lat))
}

fn pct(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let i = ((v.len() - 1) as f64 * p / 100.0).round() as usize;
    v[i].as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut ep = None;
    let mut clients = 1000usize;
    let mut per_client = 1000usize;
    let mut active = 10usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--clients" => clients = it.next().and_then(|v| v.parse().ok()).unwrap_or(clients),
            "--active" => active = it.next().and_then(|v| v.parse().ok()).unwrap_or(active),
            "--per-client" => per_client = it.next().and_then(|v| v.parse().ok()).unwrap_or(per_client),
            other => ep = Some(other.to_string()),
        }
    }
    let Some(ep) = ep else {
        eprintln!("usage: qmp-swarm ENDPOINT [--clients N] [--active K] [--per-client M]");
        std::process::exit(2);
    };
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let result = rt.block_on(async move {
        let barrier = Arc::new(Barrier::new(clients));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|i| tokio::spawn(client(ep.clone(), per_client, i < active, barrier.clone())))
            .collect();
        let mut setups = Vec::new();
        let mut lats = Vec::new();
        let mut errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok((s, l))) => {
                    setups.push(s);
                    lats.extend(l);
                }
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (t0.elapsed(), setups, lats, errors)
    });
    let (total, mut setups, mut lats, errors) = result;
    setups.sort();
    lats.sort();
    println!(
        "{{\"clients\": {clients}, \"active\": {active}, \"connected\": {}, \"errors\": {}, \"first_error\": {:?}, \"setup_p50_ms\": {:.2}, \"setup_max_ms\": {:.2}, \"rtt_n\": {}, \"rtt_p50_us\": {:.1}, \"rtt_p99_us\": {:.1}, \"rtt_max_us\": {:.1}, \"total_s\": {:.3}}}",
        setups.len(),
        errors.len(),
        errors.first().cloned().unwrap_or_default(),
        pct(&setups, 50.0) / 1000.0,
        pct(&setups, 100.0) / 1000.0,
        lats.len(),
        pct(&lats, 50.0),
        pct(&lats, 99.0),
        pct(&lats, 100.0),
        total.as_secs_f64()
    );
}
