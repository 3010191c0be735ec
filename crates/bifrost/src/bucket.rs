//! A token bucket: the pure decision behind the event throttle and the wrong-token limit.

use std::time::Duration;

use tokio::time::Instant;

/// Up to `capacity` takes at once, refilled at `capacity` per `window`.
#[derive(Debug, Clone)]
pub struct Bucket {
    capacity: f64,
    per_sec: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket of `capacity`, refilled at `capacity` per `window`.
    pub fn full(capacity: u32, window: Duration, now: Instant) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self {
            capacity,
            per_sec: capacity / window.as_secs_f64().max(1e-3),
            tokens: capacity,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let earned = now.saturating_duration_since(self.at).as_secs_f64() * self.per_sec;
        self.tokens = (self.tokens + earned).min(self.capacity);
        self.at = now;
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        Err(self.wait(now))
    }

    /// How long until a token is there (zero when one is).
    pub fn wait(&mut self, now: Instant) -> Duration {
        self.refill(now);
        if self.tokens >= 1.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec)
    }

    /// Whether it has refilled completely (nothing to remember about its owner).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.capacity
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::full(10, Duration::from_secs(1), t0);
        for _ in 0..10 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert!(b.take(t0 + Duration::from_millis(100)).is_ok());
        assert!(b.take(t0 + Duration::from_millis(150)).is_err());
        assert!(!b.is_full(t0 + Duration::from_millis(500)));
        assert!(b.is_full(t0 + Duration::from_secs(2)));
    }
}
