//! Block-job progress: a tracker fed by job events and `query-block-jobs`, one text bar per
//! running job, and a watcher thread that polls while jobs run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::output::{Output, terminal_width};
use crate::qmp::QmpClient;

/// How often running jobs are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone, PartialEq)]
struct Job {
    kind: String,
    status: String,
    offset: u64,
    len: u64,
    speed: u64,
    /// Measured bytes per second (smoothed).
    rate: Option<f64>,
    last_sample: Option<(Instant, u64)>,
}

impl Job {
    fn new() -> Job {
        Job {
            kind: "job".into(),
            status: "created".into(),
            offset: 0,
            len: 0,
            speed: 0,
            rate: None,
            last_sample: None,
        }
    }
}

/// Known jobs by id.
#[derive(Debug, Default)]
pub struct JobTracker {
    jobs: BTreeMap<String, Job>,
}

impl JobTracker {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Replaces the job list with `query-block-jobs`'s return value.
    pub fn update_from_query(&mut self, list: &Value, now: Instant) {
        let Some(list) = list.as_array() else {
            return;
        };
        let mut seen = BTreeMap::new();
        for info in list {
            let Some(id) = info.get("device").and_then(Value::as_str) else {
                continue;
            };
            let status = info.get("status").and_then(Value::as_str).unwrap_or("running");
            if status == "concluded" || status == "null" {
                continue;
            }
            let mut job = self.jobs.remove(id).unwrap_or_else(Job::new);
            job.kind = info.get("type").and_then(Value::as_str).unwrap_or("job").to_string();
            job.status = if info.get("paused").and_then(Value::as_bool) == Some(true) {
                "paused".into()
            } else {
                status.to_string()
            };
            let num = |k: &str| info.get(k).and_then(Value::as_u64).unwrap_or(0);
            job.len = num("len");
            job.speed = num("speed");
            let offset = num("offset");
            if let Some((t, o)) = job.last_sample {
                let dt = now.saturating_duration_since(t).as_secs_f64();
                if dt > 0.05 && offset >= o {
                    let r = (offset - o) as f64 / dt;
                    job.rate = Some(match job.rate {
                        Some(prev) => prev * 0.5 + r * 0.5,
                        None => r,
                    });
                }
            }
            job.last_sample = Some((now, offset));
            job.offset = offset;
            seen.insert(id.to_string(), job);
        }
        self.jobs = seen;
    }

    /// Applies a job event. Returns true when the server should be polled for details.
    pub fn on_event(&mut self, event: &Map<String, Value>) -> bool {
        let name = event.get("event").and_then(Value::as_str).unwrap_or("");
        let data = event.get("data");
        let text = |k: &str| data.and_then(|d| d.get(k)).and_then(Value::as_str);
        match name {
            "JOB_STATUS_CHANGE" => {
                let (Some(id), Some(status)) = (text("id"), text("status")) else {
                    return false;
                };
                match status {
                    "concluded" | "null" | "aborting" => {
                        self.jobs.remove(id);
                        false
                    }
                    _ => {
                        let job = self.jobs.entry(id.to_string()).or_insert_with(Job::new);
                        job.status = status.to_string();
                        true
                    }
                }
            }
            "BLOCK_JOB_COMPLETED" | "BLOCK_JOB_CANCELLED" => {
                if let Some(id) = text("device") {
                    self.jobs.remove(id);
                }
                false
            }
            "BLOCK_JOB_READY" | "BLOCK_JOB_PENDING" | "BLOCK_JOB_ERROR" => true,
            _ => false,
        }
    }

    /// One line per job, at most `width` columns.
    pub fn lines(&self, width: usize) -> Vec<String> {
        self.jobs.iter().map(|(id, job)| render(id, job, width)).collect()
    }
}

fn render(id: &str, job: &Job, width: usize) -> String {
    let pct = if job.len > 0 { (job.offset.min(job.len) as f64 / job.len as f64 * 100.0) as u64 } else { 0 };
    let mut tail = format!(" {pct:>3}% {}/{}", human_bytes(job.offset), human_bytes(job.len));
    if let Some(r) = job.rate.filter(|_| job.status == "running") {
        tail.push_str(&format!(" {}/s", human_bytes(r as u64)));
    }
    if job.speed > 0 {
        tail.push_str(&format!(" (limit {}/s)", human_bytes(job.speed)));
    }
    if job.status != "running" {
        tail.push_str(&format!(" {}", job.status));
    }
    let head = format!("{} {id} ", job.kind);
    let used = head.chars().count() + tail.chars().count() + 2;
    let bar_width = width.saturating_sub(used + 1).clamp(10, 40);
    let filled = if job.len > 0 {
        ((job.offset.min(job.len) as f64 / job.len as f64) * bar_width as f64) as usize
    } else {
        0
    };
    let bar: String = "#".repeat(filled) + &"-".repeat(bar_width - filled);
    let line = format!("{head}[{bar}]{tail}");
    line.chars().take(width.saturating_sub(1).max(20)).collect()
}

/// `64.0 MiB`, `512 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Polls `query-block-jobs` while jobs run and keeps the status area up to date.
pub struct JobWatcher {
    tracker: Mutex<JobTracker>,
    poke: Mutex<bool>,
    wake: Condvar,
    stopped: AtomicBool,
    output: Arc<Output>,
}

impl JobWatcher {
    pub fn new(output: Arc<Output>) -> Arc<JobWatcher> {
        Arc::new(JobWatcher {
            tracker: Mutex::new(JobTracker::default()),
            poke: Mutex::new(true),
            wake: Condvar::new(),
            stopped: AtomicBool::new(false),
            output,
        })
    }

    /// Starts the polling thread for `client`.
    pub fn spawn(self: &Arc<Self>, client: Arc<QmpClient>) {
        let me = self.clone();
        let spawned = thread::Builder::new().name("vmmon-jobs".into()).spawn(move || me.run(&client));
        if spawned.is_err() {
            // Without the thread there is simply no progress display.
            self.stop();
        }
    }

    /// Asks for a poll soon (a job command ran or a job event arrived).
    pub fn poke(&self) {
        if let Ok(mut p) = self.poke.lock() {
            *p = true;
        }
        self.wake.notify_all();
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_all();
        self.output.set_status(Vec::new());
    }

    /// Feeds an event to the tracker.
    pub fn on_event(&self, event: &Map<String, Value>) {
        let wanted = match self.tracker.lock() {
            Ok(mut t) => {
                let wanted = t.on_event(event);
                self.output.set_status(t.lines(terminal_width()));
                wanted
            }
            Err(_) => false,
        };
        if wanted {
            self.poke();
        }
    }

    fn run(&self, client: &QmpClient) {
        while !self.stopped.load(Ordering::SeqCst) {
            let busy = self.tracker.lock().map(|t| !t.is_empty()).unwrap_or(false);
            let Ok(mut poked) = self.poke.lock() else {
                return;
            };
            if !*poked {
                let wait = if busy { POLL_INTERVAL } else { Duration::from_secs(3600) };
                poked = match self.wake.wait_timeout(poked, wait) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
                if !*poked && !busy {
                    continue;
                }
            }
            *poked = false;
            drop(poked);
            if self.stopped.load(Ordering::SeqCst) {
                return;
            }
            match client.execute("query-block-jobs", Map::new()) {
                Ok(list) => {
                    if let Ok(mut t) = self.tracker.lock() {
                        t.update_from_query(&list, Instant::now());
                        self.output.set_status(t.lines(terminal_width()));
                    }
                }
                Err(e) if e.is_fatal() => return,
                // A server without block jobs support: no progress display.
                Err(_) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn follows_events_and_queries() {
        let mut t = JobTracker::default();
        assert!(t.on_event(&ev(
            json!({"event": "JOB_STATUS_CHANGE", "data": {"status": "created", "id": "st0"}})
        )));
        assert_eq!(t.lines(80).len(), 1);
        let t0 = Instant::now();
        t.update_from_query(
            &json!([{"device": "st0", "type": "stream", "len": 1048576, "offset": 262144,
                     "speed": 65536, "status": "running", "paused": false}]),
            t0,
        );
        t.update_from_query(
            &json!([{"device": "st0", "type": "stream", "len": 1048576, "offset": 524288,
                     "speed": 65536, "status": "running", "paused": false}]),
            t0 + Duration::from_secs(1),
        );
        let line = &t.lines(100)[0];
        assert!(line.starts_with("stream st0 [#"), "{line}");
        assert!(line.contains(" 50% 512.0 KiB/1.0 MiB 256.0 KiB/s (limit 64.0 KiB/s)"), "{line}");
        assert!(line.chars().count() < 100);
        t.on_event(&ev(json!({"event": "BLOCK_JOB_COMPLETED", "data": {"device": "st0", "len": 1, "offset": 1, "speed": 0, "type": "stream"}})));
        assert!(t.is_empty());
    }

    #[test]
    fn paused_and_vanished_jobs() {
        let mut t = JobTracker::default();
        let now = Instant::now();
        t.update_from_query(
            &json!([{"device": "a", "type": "commit", "len": 0, "offset": 0, "speed": 0, "status": "paused", "paused": true},
                    {"device": "b", "type": "stream", "len": 10, "offset": 10, "status": "concluded"}]),
            now,
        );
        let lines = t.lines(80);
        assert_eq!(lines.len(), 1);
        assert!(lines[0].ends_with("paused"), "{}", lines[0]);
        t.update_from_query(&json!([]), now);
        assert!(t.is_empty());
        // Not a list: ignored, no panic.
        t.update_from_query(&json!({"x": 1}), now);
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
        assert_eq!(human_bytes(u64::MAX), "16384.0 PiB");
    }
}
