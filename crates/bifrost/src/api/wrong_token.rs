//! Wrong credentials: each waits a moment before its `401`. One address may send only
//! [`WRONG_TOKENS_PER_MIN`] wrong tokens or passwords a minute, and one account may have only
//! [`FAILED_SIGN_INS_PER_ACCOUNT`] failed sign-ins per [`FAILED_SIGN_IN_WINDOW_SECS`]. Past
//! either limit every attempt, right or wrong, gets `429` with `Retry-After` (answering a right
//! one would tell a guesser it guessed right).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use mover_proto::limits::{
    FAILED_SIGN_INS_PER_ACCOUNT, FAILED_SIGN_IN_WINDOW_SECS, WRONG_TOKENS_PER_MIN,
    WRONG_TOKEN_DELAY_MS,
};
use tokio::time::Instant;

use crate::bucket::Bucket;
use crate::gate::addr_key;

/// Keys remembered at most; full buckets are forgotten first.
const REMEMBERED: usize = 10_000;

/// Per key, the failures it may still have: `capacity` at once, refilled over `window`.
pub struct Strikes<K> {
    buckets: Mutex<HashMap<K, Bucket>>,
    capacity: u32,
    window: Duration,
}

impl<K: Hash + Eq + Clone> Strikes<K> {
    /// `capacity` failures at once, earned back at `capacity` per `window`.
    pub fn new(capacity: u32, window: Duration) -> Self {
        Self {
            buckets: Mutex::default(),
            capacity,
            window,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(retry_after)` when `key` has used up its failures: nothing it sends is checked
    /// until then.
    pub fn blocked(&self, key: &K, now: Instant) -> Result<(), Duration> {
        match self.lock().get_mut(key) {
            Some(b) => match b.wait(now) {
                d if d.is_zero() => Ok(()),
                d => Err(d),
            },
            None => Ok(()),
        }
    }

    /// Counts a failure of `key`; `Err(retry_after)` when it was one too many.
    pub fn charge(&self, key: K, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.lock();
        if buckets.len() >= REMEMBERED {
            buckets.retain(|_, b| !b.is_full(now));
        }
        if buckets.len() >= REMEMBERED {
            // Every remembered key is still guessing: make room rather than grow.
            if let Some(k) = buckets.keys().next().cloned() {
                buckets.remove(&k);
            }
        }
        let (capacity, window) = (self.capacity, self.window);
        buckets
            .entry(key)
            .or_insert_with(|| Bucket::full(capacity, window, now))
            .take(now)
    }
}

/// Wrong admin tokens and passwords per address, and failed sign-ins per account.
pub struct WrongTokens {
    by_addr: Strikes<IpAddr>,
    by_account: Strikes<String>,
}

impl Default for WrongTokens {
    fn default() -> Self {
        Self {
            by_addr: Strikes::new(WRONG_TOKENS_PER_MIN, Duration::from_secs(60)),
            by_account: Strikes::new(
                FAILED_SIGN_INS_PER_ACCOUNT,
                Duration::from_secs(FAILED_SIGN_IN_WINDOW_SECS),
            ),
        }
    }
}

/// Accounts are counted by their name as typed, folded to lower case (names are unique
/// regardless of case), whether or not the account exists: a limit only known names reach
/// would tell which names exist.
fn account_key(name: &str) -> String {
    name.trim().to_lowercase()
}

impl WrongTokens {
    /// `Err(retry_after)` when `peer` has used up its wrong credentials.
    pub fn blocked(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        self.by_addr.blocked(&addr_key(peer), now)
    }

    /// Counts a wrong credential from `peer`; `Err(retry_after)` when it was one too many.
    pub fn charge(&self, peer: IpAddr, now: Instant) -> Result<(), Duration> {
        self.by_addr.charge(addr_key(peer), now)
    }

    /// `Err(retry_after)` when the account `name` has used up its failed sign-ins.
    pub fn account_blocked(&self, name: &str, now: Instant) -> Result<(), Duration> {
        self.by_account.blocked(&account_key(name), now)
    }

    /// Counts a failed sign-in to `name`; `Err(retry_after)` when it was one too many.
    pub fn charge_account(&self, name: &str, now: Instant) -> Result<(), Duration> {
        self.by_account.charge(account_key(name), now)
    }

    /// The answer to a wrong credential that was not one too many comes after this.
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
        assert_eq!(wait, Duration::from_secs(60) / WRONG_TOKENS_PER_MIN);
        assert!(t.charge(a, t0).is_err());
        // Another address is not held up.
        assert!(t.blocked(b, t0).is_ok());
        assert!(t.blocked(a, t0 + wait).is_ok());
        assert_eq!(retry_after(Duration::from_millis(5_500)), 6);
        assert_eq!(retry_after(Duration::from_secs(6)), 6);
        assert_eq!(retry_after(Duration::ZERO), 1);
    }

    #[test]
    fn an_account_past_its_failed_sign_ins_is_blocked_whatever_its_case() {
        let t = WrongTokens::default();
        let t0 = Instant::now();
        for i in 0..FAILED_SIGN_INS_PER_ACCOUNT {
            let name = if i % 2 == 0 { "Alice" } else { " alice " };
            assert!(t.account_blocked(name, t0).is_ok());
            assert!(t.charge_account(name, t0).is_ok());
        }
        let wait = t.account_blocked("ALICE", t0).unwrap_err();
        let per = Duration::from_secs(FAILED_SIGN_IN_WINDOW_SECS) / FAILED_SIGN_INS_PER_ACCOUNT;
        assert_eq!(wait, per);
        // Another account, and the address limit, are separate.
        assert!(t.account_blocked("bob", t0).is_ok());
        assert!(t.blocked("10.0.0.1".parse().unwrap(), t0).is_ok());
        assert!(t.account_blocked("alice", t0 + per).is_ok());
    }
}
