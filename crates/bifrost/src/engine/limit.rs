//! A job's bandwidth limit: one token bucket shared by all of the job's file streams.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Bytes a stream may take at once before the limit applies (smooths small frames).
const BURST: Duration = Duration::from_millis(250);

/// Paces a job's reads to at most `rate` bytes per second across all its streams.
///
/// Virtual scheduling: each take reserves the time its bytes need at the rate, after the
/// reservations before it; the caller sleeps until its reservation is due. Pacing the reader
/// paces the agent too, because HTTP/2 flow control only lets it send what was read.
pub struct Limiter {
    rate: u64,
    next: Mutex<Instant>,
}

impl Limiter {
    /// A limiter for `rate` bytes per second.
    pub fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            next: Mutex::new(Instant::now()),
        }
    }

    /// The limit, in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// When `n` more bytes may go, given the reservations so far; reserves them.
    fn reserve(&self, n: u64, now: Instant) -> Instant {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        // Idle time earns at most BURST of credit.
        let start = (*next).max(now.checked_sub(BURST).unwrap_or(now));
        let cost = Duration::from_secs_f64(n as f64 / self.rate as f64);
        *next = start + cost;
        (start + cost).checked_sub(BURST).unwrap_or(now)
    }

    /// Waits until `n` bytes fit under the limit.
    pub async fn take(&self, n: u64) {
        let due = self.reserve(n, Instant::now());
        tokio::time::sleep_until(due).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_follow_the_rate() {
        let l = Limiter::new(1_000_000);
        let t0 = Instant::now();
        // The first BURST worth is free.
        assert!(l.reserve(250_000, t0) <= t0);
        // The next second's worth is due one second later.
        let due = l.reserve(1_000_000, t0);
        let lag = due.duration_since(t0);
        assert!(
            lag >= Duration::from_millis(990) && lag <= Duration::from_millis(1010),
            "{lag:?}"
        );
        // Idle time does not bank more than BURST.
        let later = t0 + Duration::from_secs(60);
        assert!(l.reserve(250_000, later) <= later);
        // …so the next half second's worth waits for its time, less the burst.
        let due = l.reserve(500_000, later).duration_since(later);
        assert!(
            due >= Duration::from_millis(240) && due <= Duration::from_millis(260),
            "{due:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn takes_are_paced_across_streams() {
        let l = std::sync::Arc::new(Limiter::new(4 << 20));
        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let l = l.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..16 {
                    l.take(256 << 10).await;
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        // 16 MiB at 4 MiB/s: four seconds, less the burst.
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(3700) && took <= Duration::from_millis(4100),
            "{took:?}"
        );
    }
}
