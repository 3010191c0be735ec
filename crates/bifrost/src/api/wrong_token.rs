//! Wrong admin tokens: each waits a moment before its `401`, and one address may send only
//! [`WRONG_TOKENS_PER_MIN`] a minute; past that every token it sends, right or wrong, gets
//! `429` with `Retry-After` (answering a right one would tell a guesser it guessed right).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use mover_proto::limits::{WRONG_TOKENS_PER_MIN, WRONG_TOKEN_DELAY_MS};
use tokio::time::Instant;

use crate::bucket::Bucket;
use crate::gate::addr_key;

/// Addresses remembered at most; full buckets are forgotten first.
const REMEMBERED: usize = 10_000;

/// Per address, the wrong tokens it may still send.
#[derive(Default)]
pub struct WrongTokens {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

fn window() -> Duration {
    Duration::from_secs(60)
}

impl WrongTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry_after)` when `peer` has used up its wrong tokens: nothing it sends is
    /// checked until then.
    pub fn blocked(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.lock().get_mut(&addr_key(peer)) {
            Some(b) => match b.wait(now) {
                d if d.is_zero() => Ok(()),
                d => Err(d),
            },
            None => Ok(()),
        }
    }

    /// Counts a wrong token from `peer`; `Err(retry_after)` when it was one too many.
    pub fn charge(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.lock();
        if buckets.len() >= REMEMBERED {
            buckets.retain(|_, b| !b.is_full(now));
        }
        if buckets.len() >= REMEMBERED {
            // Every remembered address is still guessing: make room rather than grow.
            if let Some(k) = buckets.keys().next().copied() {
                buckets.remove(&k);
            }
        }
        buckets
            .entry(addr_key(peer))
            .or_insert_with(|| Bucket::full(WRONG_TOKENS_PER_MIN, window(), now))
            .take(now)
    }

    /// The answer to a wrong token that was not one too many comes after this.
    pub fn delay() -> Duration {
        Duration::from_millis(WRONG_TOKEN_DELAY_MS)
    }
}

/// `Retry-After` seconds for a wait: rounded up, at least one.
pub fn retry_after(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn an_address_past_its_wrong_tokens_is_blocked_until_it_earns_one() {
        let t = WrongTokens::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..WRONG_TOKENS_PER_MIN {
            assert!(t.blocked(a, t0).is_ok());
            assert!(t.charge(a, t0).is_ok());
        }
        let wait = t.blocked(a, t0).unwrap_err();
        assert_eq!(wait, window() / WRONG_TOKENS_PER_MIN);
        assert!(t.charge(a, t0).is_err());
        // Another address is not held up.
        assert!(t.blocked(b, t0).is_ok());
        assert!(t.blocked(a, t0 + wait).is_ok());
        assert_eq!(retry_after(Duration::from_millis(5_500)), 6);
        assert_eq!(retry_after(Duration::from_secs(6)), 6);
        assert_eq!(retry_after(Duration::ZERO), 1);
    }
}
