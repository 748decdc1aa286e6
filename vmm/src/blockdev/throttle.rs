//! I/O limits of a drive (`block_set_io_throttle`): QEMU's leaky buckets.
//!
//! Six buckets (bytes and operations; total, read, write), each with an average rate, an
//! optional burst rate and burst length. A request waits until every bucket it fills is below
//! its size (QEMU's `throttle_compute_wait`), then adds its bytes (and one operation, or
//! `size / iops_size` of them) to the levels, which leak at the average (and burst) rate.
//! Devices call [`Throttle::admit`] on their I/O threads before a read or write; it sleeps
//! there. While the VM pauses, the device drains: waiting requests go through at once
//! ([`Throttle::bypass_begin`]), as QEMU's drained sections do, so `stop` never waits on a
//! limit.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// QEMU's THROTTLE_VALUE_MAX.
pub const VALUE_MAX: u64 = 1_000_000_000_000_000;

/// Bucket indexes, in QEMU's order.
pub const BPS_TOTAL: usize = 0;
pub const BPS_READ: usize = 1;
pub const BPS_WRITE: usize = 2;
pub const OPS_TOTAL: usize = 3;
pub const OPS_READ: usize = 4;
pub const OPS_WRITE: usize = 5;

/// One limit: `avg` units per second, bursts up to `max` per second for `burst_length` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub avg: u64,
    pub max: u64,
    pub burst_length: u64,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket { avg: 0, max: 0, burst_length: 1 }
    }
}

/// A drive's limits (QEMU's ThrottleConfig).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleConfig {
    pub buckets: [Bucket; 6],
    /// `iops_size`: an operation of more bytes counts as `bytes / iops_size` operations.
    pub op_size: u64,
}

impl ThrottleConfig {
    /// Whether any limit is set (all zero disables throttling).
    pub fn enabled(&self) -> bool {
        self.buckets.iter().any(|b| b.avg > 0)
    }

    /// QEMU's `throttle_is_valid`, with its texts.
    pub fn validate(&self) -> Result<(), String> {
        let b = &self.buckets;
        let both = |t: usize, r: usize, w: usize, f: fn(&Bucket) -> u64| {
            f(&b[t]) > 0 && (f(&b[r]) > 0 || f(&b[w]) > 0)
        };
        if both(BPS_TOTAL, BPS_READ, BPS_WRITE, |x| x.avg)
            || both(OPS_TOTAL, OPS_READ, OPS_WRITE, |x| x.avg)
            || both(BPS_TOTAL, BPS_READ, BPS_WRITE, |x| x.max)
            || both(OPS_TOTAL, OPS_READ, OPS_WRITE, |x| x.max)
        {
            return Err(
                "bps/iops/max total values and read/write values cannot be used at the same time".into()
            );
        }
        if self.op_size > 0 && b[OPS_TOTAL].avg == 0 && b[OPS_READ].avg == 0 && b[OPS_WRITE].avg == 0 {
            return Err("iops size requires an iops value to be set".into());
        }
        for k in b {
            if k.avg > VALUE_MAX || k.max > VALUE_MAX {
                return Err(format!("bps/iops/max values must be within [0, {VALUE_MAX}]"));
            }
            if k.burst_length == 0 {
                return Err("the burst length cannot be 0".into());
            }
            if k.burst_length > 1 && k.max == 0 {
                return Err("burst length set without burst rate".into());
            }
            if k.max > 0 && k.burst_length > VALUE_MAX / k.max {
                return Err("burst length too high for this burst rate".into());
            }
            if k.max > 0 && k.avg == 0 {
                return Err("bps_max/iops_max require corresponding bps/iops values".into());
            }
            if k.max > 0 && k.max < k.avg {
                return Err("bps_max/iops_max cannot be lower than bps/iops".into());
            }
        }
        Ok(())
    }
}

struct Limits {
    cfg: ThrottleConfig,
    group: String,
    level: [f64; 6],
    burst_level: [f64; 6],
    last: Instant,
}

impl Limits {
    fn leak(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        for (i, b) in self.cfg.buckets.iter().enumerate() {
            self.level[i] = (self.level[i] - b.avg as f64 * secs).max(0.0);
            self.burst_level[i] = (self.burst_level[i] - b.max as f64 * secs).max(0.0);
        }
    }

    /// QEMU's `throttle_compute_wait` for bucket `i`, in seconds.
    fn wait(&self, i: usize) -> f64 {
        let b = &self.cfg.buckets[i];
        if b.avg == 0 {
            return 0.0;
        }
        let (size, burst_size) = if b.max == 0 {
            (b.avg as f64 / 10.0, 0.0)
        } else {
            ((b.max * b.burst_length) as f64, b.max as f64 / 10.0)
        };
        let extra = self.level[i] - size;
        if extra > 0.0 {
            return extra / b.avg as f64;
        }
        if b.burst_length > 1 {
            let extra = self.burst_level[i] - burst_size;
            if extra > 0.0 {
                return extra / b.max as f64;
            }
        }
        0.0
    }
}

/// A drive's throttle: no limits until [`Throttle::set`].
#[derive(Default)]
pub struct Throttle {
    limits: Mutex<Option<Limits>>,
    /// Whether `limits` holds any: unthrottled drives (the usual case) skip the lock.
    active: AtomicBool,
    bypass: AtomicUsize,
}

impl Throttle {
    /// Sets the limits and the group name, or removes them (`None`, or a config with no limit).
    pub fn set(&self, cfg: Option<(ThrottleConfig, String)>) {
        let mut l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        *l = match cfg {
            Some((cfg, group)) if cfg.enabled() => {
                let keep = l.as_ref().map(|old| (old.level, old.burst_level));
                let (level, burst_level) = keep.unwrap_or(([0.0; 6], [0.0; 6]));
                Some(Limits { cfg, group, level, burst_level, last: Instant::now() })
            }
            _ => None,
        };
        self.active.store(l.is_some(), Ordering::SeqCst);
    }

    /// The limits in force and their group, if any.
    pub fn config(&self) -> Option<(ThrottleConfig, String)> {
        let l = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        l.as_ref().map(|l| (l.cfg, l.group.clone()))
    }

    /// Waits until a read or write of `bytes` may go, then counts it.
    pub fn admit(&self, is_write: bool, bytes: u64) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let (bps, ops) = if is_write { (BPS_WRITE, OPS_WRITE) } else { (BPS_READ, OPS_READ) };
        loop {
            let wait = {
                let mut guard = self.limits.lock().unwrap_or_else(|p| p.into_inner());
                let Some(l) = guard.as_mut() else { return };
                l.leak(Instant::now());
                let wait = [BPS_TOTAL, bps, OPS_TOTAL, ops].iter().map(|&i| l.wait(i)).fold(0.0, f64::max);
                if wait <= 0.0 || self.bypass.load(Ordering::SeqCst) > 0 {
                    let op_size = l.cfg.op_size;
                    let units =
                        if op_size > 0 && bytes > op_size { bytes as f64 / op_size as f64 } else { 1.0 };
                    for (i, add) in
                        [(BPS_TOTAL, bytes as f64), (bps, bytes as f64), (OPS_TOTAL, units), (ops, units)]
                    {
                        l.level[i] += add;
                        l.burst_level[i] += add;
                    }
                    return;
                }
                wait
            };
            // Short naps, so that a drain (VM pause) lets the request through promptly.
            std::thread::sleep(Duration::from_secs_f64(wait.min(0.02)));
        }
    }

    /// While draining (the VM pausing), requests are not held back.
    pub fn bypass_begin(&self) {
        self.bypass.fetch_add(1, Ordering::SeqCst);
    }

    pub fn bypass_end(&self) {
        let _ = self.bypass.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(set: &[(usize, u64)]) -> ThrottleConfig {
        let mut c = ThrottleConfig::default();
        for &(i, v) in set {
            c.buckets[i].avg = v;
        }
        c
    }

    #[test]
    fn qemus_validation_texts() {
        assert!(cfg(&[(BPS_TOTAL, 1000)]).validate().is_ok());
        assert_eq!(
            cfg(&[(BPS_TOTAL, 1), (BPS_READ, 1)]).validate().unwrap_err(),
            "bps/iops/max total values and read/write values cannot be used at the same time"
        );
        assert_eq!(
            cfg(&[(OPS_TOTAL, VALUE_MAX + 1)]).validate().unwrap_err(),
            "bps/iops/max values must be within [0, 1000000000000000]"
        );
        let mut c = cfg(&[(BPS_TOTAL, 100)]);
        c.buckets[BPS_TOTAL].max = 50;
        assert_eq!(c.validate().unwrap_err(), "bps_max/iops_max cannot be lower than bps/iops");
        let mut c = cfg(&[]);
        c.op_size = 4096;
        assert_eq!(c.validate().unwrap_err(), "iops size requires an iops value to be set");
    }

    #[test]
    fn limits_the_rate_and_bypasses_while_draining() {
        let t = Throttle::default();
        t.set(Some((cfg(&[(BPS_TOTAL, 1 << 20)]), "g".into())));
        let start = Instant::now();
        // 1 MiB/s with a 102.4 KiB bucket: the fifth request of 100 KiB may start once about
        // 300 KiB have leaked, 0.29 s after the first.
        for _ in 0..5 {
            t.admit(true, 100 << 10);
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(250), "{took:?}");
        t.bypass_begin();
        let start = Instant::now();
        t.admit(false, 10 << 20);
        assert!(start.elapsed() < Duration::from_secs(1));
        t.bypass_end();
        t.set(None);
        assert!(t.config().is_none());
    }
}
