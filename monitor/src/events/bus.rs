//! Asynchronous events: one broadcast bus for the whole process.
//!
//! Producers (the control loop, block jobs, devices) call [`EventBus::emit`] from any thread. The
//! bus stamps the event with the wall clock, serialises it once to its wire line, and broadcasts
//! the shared bytes; every QMP session in command mode writes them between whole messages.
//! Guest-triggerable kinds are rate-limited as QEMU does (one per second per kind, the last one
//! of a burst delivered when the second is over).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::broadcast;

use crate::qapi::Qapi;

/// How many events a session may fall behind before it is disconnected (see `qmp::session`).
pub const EVENT_BACKLOG: usize = 4096;

/// Events QEMU throttles to one per second per kind (monitor.c `monitor_qapi_event_conf`).
const RATE_LIMITED: &[&str] = &[
    "RTC_CHANGE",
    "WATCHDOG",
    "BALLOON_CHANGE",
    "QUORUM_REPORT_BAD",
    "QUORUM_FAILURE",
    "VSERPORT_CHANGE",
    "MEMORY_DEVICE_SIZE_CHANGE",
];
const RATE_PERIOD: Duration = Duration::from_secs(1);

/// A typed event: its name and its `data` members.
pub trait QmpEvent: Serialize + Qapi {
    const NAME: &'static str;
}

/// One emitted event, ready to be written.
#[derive(Debug)]
pub struct EventMessage {
    pub name: &'static str,
    /// The event as a JSON object (`{"timestamp":..,"event":..,"data":..}`).
    pub value: Value,
    /// The same, encoded as one wire line ending in `\r\n`.
    pub line: Vec<u8>,
}

/// Where the timestamp comes from (a fixed clock in golden tests).
pub trait Clock: Send + Sync {
    /// Seconds and microseconds since the Unix epoch.
    fn now(&self) -> (i64, i64);
}

/// The wall clock; `(-1, -1)` if the host clock is before the epoch, as QEMU reports it.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> (i64, i64) {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, i64::from(d.subsec_micros())),
            Err(_) => (-1, -1),
        }
    }
}

#[derive(Default)]
struct Throttle {
    last: Option<Instant>,
    /// The newest event held back, and whether a timer is already waiting to send it.
    pending: Option<Arc<EventMessage>>,
    timer_armed: bool,
}

struct Inner {
    tx: broadcast::Sender<Arc<EventMessage>>,
    clock: Box<dyn Clock>,
    throttles: Mutex<HashMap<&'static str, Throttle>>,
    /// Runtime used to deliver throttled events later (events may be emitted from plain threads).
    runtime: Mutex<Option<tokio::runtime::Handle>>,
}

/// The process-wide event bus. Cheap to clone.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl EventBus {
    pub fn new(clock: Box<dyn Clock>) -> Self {
        let (tx, _) = broadcast::channel(EVENT_BACKLOG);
        EventBus {
            inner: Arc::new(Inner {
                tx,
                clock,
                throttles: Mutex::new(HashMap::new()),
                runtime: Mutex::new(tokio::runtime::Handle::try_current().ok()),
            }),
        }
    }

    /// Sets the runtime used for delayed (rate-limited) deliveries.
    pub fn set_runtime(&self, handle: tokio::runtime::Handle) {
        if let Ok(mut rt) = self.inner.runtime.lock() {
            *rt = Some(handle);
        }
    }

    /// A new subscriber; it sees events emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<EventMessage>> {
        self.inner.tx.subscribe()
    }

    /// Emits a typed event.
    pub fn emit<E: QmpEvent>(&self, event: &E) {
        let data = match serde_json::to_value(event) {
            Ok(Value::Object(m)) if m.is_empty() => None,
            Ok(Value::Object(m)) => Some(m),
            // Unit structs / no members: no `data` key, as QEMU omits it.
            Ok(_) => None,
            Err(e) => {
                tracing::error!("event {} could not be serialised: {e}", E::NAME);
                return;
            }
        };
        self.emit_raw(E::NAME, data);
    }

    /// Emits an event by name with optional `data` members.
    pub fn emit_raw(&self, name: &'static str, data: Option<Map<String, Value>>) {
        let (seconds, microseconds) = self.inner.clock.now();
        let mut obj = Map::new();
        let mut ts = Map::new();
        ts.insert("seconds".into(), seconds.into());
        ts.insert("microseconds".into(), microseconds.into());
        obj.insert("timestamp".into(), Value::Object(ts));
        obj.insert("event".into(), name.into());
        if let Some(d) = data {
            obj.insert("data".into(), Value::Object(d));
        }
        let value = Value::Object(obj);
        let mut line = Vec::with_capacity(128);
        crate::qmp::json_out::to_qmp_line(&value, &mut line);
        let msg = Arc::new(EventMessage { name, value, line });
        if RATE_LIMITED.contains(&name) {
            self.throttled(msg);
        } else {
            self.send(msg);
        }
    }

    fn send(&self, msg: Arc<EventMessage>) {
        // An error only means nobody is listening.
        let _ = self.inner.tx.send(msg);
    }

    fn throttled(&self, msg: Arc<EventMessage>) {
        let now = Instant::now();
        let Ok(mut throttles) = self.inner.throttles.lock() else { return };
        let t = throttles.entry(msg.name).or_default();
        let within = t.last.is_some_and(|last| now.duration_since(last) < RATE_PERIOD);
        if !within && !t.timer_armed {
            t.last = Some(now);
            drop(throttles);
            self.send(msg);
            return;
        }
        t.pending = Some(msg.clone());
        if t.timer_armed {
            return;
        }
        t.timer_armed = true;
        let delay =
            t.last.map_or(Duration::ZERO, |last| RATE_PERIOD.saturating_sub(now.duration_since(last)));
        let name = msg.name;
        drop(throttles);
        let bus = self.clone();
        let rt = self.inner.runtime.lock().ok().and_then(|r| r.clone());
        match rt {
            Some(rt) => {
                rt.spawn(async move {
                    tokio::time::sleep(delay).await;
                    bus.flush_throttled(name);
                });
            }
            // No runtime to wait on: deliver at once rather than lose the event.
            None => self.flush_throttled(name),
        }
    }

    fn flush_throttled(&self, name: &'static str) {
        let msg = {
            let Ok(mut throttles) = self.inner.throttles.lock() else { return };
            let t = throttles.entry(name).or_default();
            t.timer_armed = false;
            t.last = Some(Instant::now());
            t.pending.take()
        };
        if let Some(m) = msg {
            self.send(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct FixedClock;
    impl Clock for FixedClock {
        fn now(&self) -> (i64, i64) {
            (1796015680, 86034)
        }
    }

    #[derive(Serialize, Qapi)]
    struct Reset {
        guest: bool,
        reason: String,
    }
    impl QmpEvent for Reset {
        const NAME: &'static str = "RESET";
    }
    #[derive(Serialize, Qapi)]
    struct Stop {}
    impl QmpEvent for Stop {
        const NAME: &'static str = "STOP";
    }

    #[test]
    fn wire_shape() {
        let bus = EventBus::new(Box::new(FixedClock));
        let mut rx = bus.subscribe();
        bus.emit(&Stop {});
        bus.emit(&Reset { guest: false, reason: "host-qmp-system-reset".into() });
        let stop = rx.try_recv().unwrap();
        assert_eq!(
            String::from_utf8(stop.line.clone()).unwrap(),
            "{\"timestamp\":{\"seconds\":1796015680,\"microseconds\":86034},\"event\":\"STOP\"}\r\n"
        );
        let reset = rx.try_recv().unwrap();
        assert_eq!(
            reset.value["data"],
            serde_json::json!({"guest": false, "reason": "host-qmp-system-reset"})
        );
    }

    #[tokio::test]
    async fn rate_limit_keeps_last_of_burst() {
        tokio::time::pause();
        let bus = EventBus::new(Box::new(FixedClock));
        let mut rx = bus.subscribe();
        for i in 0..5 {
            let mut d = Map::new();
            d.insert("offset".into(), i.into());
            bus.emit_raw("RTC_CHANGE", Some(d));
        }
        assert_eq!(rx.try_recv().unwrap().value["data"]["offset"], 0);
        assert!(rx.try_recv().is_err(), "the rest of the burst is held back");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(rx.recv().await.unwrap().value["data"]["offset"], 4);
        assert!(rx.try_recv().is_err());
    }
}
