//! QEMU's rate limiter (`util/throttle`'s `ratelimit_calculate_delay`): time is cut into 100 ms
//! slices, each allowing `speed / 10` bytes; a request that exceeds the quota delays the next
//! one until as many slices as it used have passed.

use std::time::{Duration, Instant};

/// QEMU's `BLOCK_JOB_SLICE_TIME`.
pub const SLICE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Bytes per second; 0 = unlimited.
    speed: u64,
    slice_start: Instant,
    slice_end: Instant,
    dispatched: u64,
}

impl RateLimit {
    pub fn new(speed: u64) -> Self {
        let now = Instant::now();
        RateLimit { speed, slice_start: now, slice_end: now, dispatched: 0 }
    }

    pub fn speed(&self) -> u64 {
        self.speed
    }

    pub fn set_speed(&mut self, speed: u64) {
        self.speed = speed;
    }

    /// Bytes one slice allows (at least 1).
    pub fn slice_quota(&self) -> u64 {
        (self.speed / 10).max(1)
    }

    /// Accounts `n` bytes sent at `now`; returns how long to wait before the next request.
    pub fn delay(&mut self, n: u64, now: Instant) -> Duration {
        if self.speed == 0 {
            return Duration::ZERO;
        }
        if self.slice_end < now {
            self.slice_start = now;
            self.slice_end = now + SLICE;
            self.dispatched = 0;
        }
        self.dispatched = self.dispatched.saturating_add(n);
        let quota = self.slice_quota();
        if self.dispatched < quota {
            return Duration::ZERO;
        }
        let slices = self.dispatched as f64 / quota as f64;
        self.slice_end = self.slice_start + SLICE.mul_f64(slices);
        self.slice_end.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_to_the_speed() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(1 << 20);
        assert_eq!(r.delay(1000, t0), Duration::ZERO);
        // 1 MiB at 1 MiB/s: ten slices, about a second from the slice start
        let d = r.delay(1 << 20, t0);
        assert!(d >= Duration::from_millis(990) && d <= Duration::from_millis(1010), "{d:?}");
        let mut r = RateLimit::new(0);
        assert_eq!(r.delay(1 << 30, t0), Duration::ZERO);
    }
}
