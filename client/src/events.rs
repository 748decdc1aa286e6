//! Events kept for `wait-event`: every event received is queued (bounded), and a wait takes the
//! oldest queued event that matches, so an event that arrived before the wait began (for
//! example before the reply of the command that caused it) is not missed.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Events kept unmatched before the oldest are dropped.
const MAX_QUEUED: usize = 10_000;

/// A `key=value` condition on an event's `data` (nested keys with dots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub path: Vec<String>,
    pub value: String,
}

impl Filter {
    /// Parses `key=value`.
    pub fn parse(text: &str) -> Result<Filter> {
        let Some((key, value)) = text.split_once('=') else {
            return Err(Error::Input(format!("Expected key=value as an event filter, got '{text}'")));
        };
        if key.is_empty() {
            return Err(Error::Input(format!("Empty key in event filter '{text}'")));
        }
        Ok(Filter { path: key.split('.').map(str::to_string).collect(), value: value.to_string() })
    }

    /// Compares the value at the path with the filter text (strings by content, other values
    /// by their JSON text).
    pub fn matches(&self, data: Option<&Value>) -> bool {
        let mut cur = data;
        for key in &self.path {
            cur = cur.and_then(|v| v.get(key));
        }
        match cur {
            Some(Value::String(s)) => *s == self.value,
            Some(v) => serde_json::to_string(v).ok().as_deref() == Some(self.value.as_str()),
            None => false,
        }
    }
}

/// What `wait-event` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPattern {
    pub name: String,
    pub filters: Vec<Filter>,
}

impl EventPattern {
    pub fn matches(&self, event: &Map<String, Value>) -> bool {
        event.get("event").and_then(Value::as_str) == Some(self.name.as_str())
            && self.filters.iter().all(|f| f.matches(event.get("data")))
    }
}

#[derive(Default)]
struct Inner {
    events: VecDeque<Map<String, Value>>,
    closed: Option<String>,
}

/// The shared queue: the dispatcher pushes, `wait-event` takes.
#[derive(Default)]
pub struct EventQueue {
    inner: Mutex<Inner>,
    changed: Condvar,
}

impl EventQueue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&self, event: Map<String, Value>) {
        if let Ok(mut i) = self.inner.lock() {
            if i.events.len() >= MAX_QUEUED {
                i.events.pop_front();
            }
            i.events.push_back(event);
        }
        self.changed.notify_all();
    }

    /// Marks the connection as gone: waiters fail instead of waiting for their timeout.
    pub fn close(&self, reason: &str) {
        if let Ok(mut i) = self.inner.lock() {
            i.closed = Some(reason.to_string());
        }
        self.changed.notify_all();
    }

    /// Forgets queued events and the closed state (after a reconnection).
    pub fn reset(&self) {
        if let Ok(mut i) = self.inner.lock() {
            i.events.clear();
            i.closed = None;
        }
    }

    /// Takes the oldest queued event matching `pattern`, waiting up to `timeout` for one.
    pub fn wait(&self, pattern: &EventPattern, timeout: Duration) -> Result<Map<String, Value>> {
        let deadline = Instant::now() + timeout;
        let mut inner =
            self.inner.lock().map_err(|_| Error::Protocol("internal event lock poisoned".into()))?;
        loop {
            if let Some(pos) = inner.events.iter().position(|e| pattern.matches(e))
                && let Some(ev) = inner.events.remove(pos)
            {
                return Ok(ev);
            }
            if let Some(reason) = &inner.closed {
                return Err(Error::Closed {
                    context: format!(" while waiting for event {} ({reason})", pattern.name),
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::timeout(timeout, format!("event {}", describe(pattern))));
            }
            inner = self
                .changed
                .wait_timeout(inner, deadline - now)
                .map_err(|_| Error::Protocol("internal event lock poisoned".into()))?
                .0;
        }
    }
}

fn describe(p: &EventPattern) -> String {
    let mut s = p.name.clone();
    for f in &p.filters {
        s.push_str(&format!(" {}={}", f.path.join("."), f.value));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::Arc;
    use std::thread;

    fn ev(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn pattern(name: &str, filters: &[&str]) -> EventPattern {
        EventPattern {
            name: name.into(),
            filters: filters.iter().map(|f| Filter::parse(f).unwrap()).collect(),
        }
    }

    #[test]
    fn takes_the_oldest_match_and_keeps_others() {
        let q = EventQueue::new();
        q.push(ev(json!({"event": "JOB_STATUS_CHANGE", "data": {"id": "j", "status": "created"}})));
        q.push(ev(json!({"event": "JOB_STATUS_CHANGE", "data": {"id": "j", "status": "running"}})));
        q.push(ev(json!({"event": "STOP"})));
        let got = q.wait(&pattern("JOB_STATUS_CHANGE", &["status=running"]), Duration::ZERO).unwrap();
        assert_eq!(got["data"]["status"], "running");
        // The earlier non-matching event is still there.
        let got = q.wait(&pattern("JOB_STATUS_CHANGE", &[]), Duration::ZERO).unwrap();
        assert_eq!(got["data"]["status"], "created");
        assert!(q.wait(&pattern("STOP", &[]), Duration::ZERO).is_ok());
        let e = q.wait(&pattern("STOP", &[]), Duration::from_millis(10)).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("event STOP"), "{e}");
    }

    #[test]
    fn filters_compare_text() {
        let data = json!({"offset": 5, "nested": {"ok": true}, "id": "5"});
        assert!(Filter::parse("offset=5").unwrap().matches(Some(&data)));
        assert!(Filter::parse("id=5").unwrap().matches(Some(&data)));
        assert!(Filter::parse("nested.ok=true").unwrap().matches(Some(&data)));
        assert!(!Filter::parse("nested.ok=false").unwrap().matches(Some(&data)));
        assert!(!Filter::parse("missing=1").unwrap().matches(Some(&data)));
        assert!(!Filter::parse("x=1").unwrap().matches(None));
        assert!(Filter::parse("novalue").is_err());
    }

    #[test]
    fn waiter_wakes_on_push_and_on_close() {
        let q = Arc::new(EventQueue::new());
        let q2 = q.clone();
        let t = thread::spawn(move || q2.wait(&pattern("RESUME", &[]), Duration::from_secs(10)));
        thread::sleep(Duration::from_millis(20));
        q.push(ev(json!({"event": "RESUME"})));
        assert!(t.join().unwrap().is_ok());

        let q2 = q.clone();
        let t = thread::spawn(move || q2.wait(&pattern("RESUME", &[]), Duration::from_secs(10)));
        thread::sleep(Duration::from_millis(20));
        q.close("Connection closed by the server");
        let e = t.join().unwrap().unwrap_err();
        assert!(e.to_string().contains("while waiting for event RESUME"), "{e}");
    }
}
