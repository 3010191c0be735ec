//! Live tunnels: which agents are connected, authorized or waiting, and how to reach them.
//! The places of waiting tunnels are reserved here before the `101`, so concurrent upgrades
//! cannot race past the caps, and a revoked key cannot register again.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use mover_proto::limits::{MAX_LANES, MAX_WAITING, MAX_WAITING_PER_ADDR};
use mover_proto::AgentInfo;
use tokio::sync::watch;

use crate::agent_client::AgentClient;
use crate::gate::addr_key;

/// One live tunnel.
#[derive(Clone)]
pub struct Live {
    /// Distinguishes this tunnel from an older one with the same key.
    pub conn_id: u64,
    /// Sends requests to the agent.
    pub client: AgentClient,
    /// What the agent said about itself.
    pub info: AgentInfo,
    /// The agent's address.
    pub peer: IpAddr,
    /// The connector id once authorized.
    pub connector: Option<String>,
    /// A temporary id while waiting.
    pub waiting_id: String,
    /// Closes the tunnel.
    pub close: watch::Sender<bool>,
    /// When it came up (RFC 3339).
    pub since: String,
    /// Extra lanes taken, counted before their `101` (see [`Live::reserve_lane`]).
    pub lane_slots: Arc<AtomicUsize>,
}

/// A lane's place under [`MAX_LANES`]; given back when dropped.
pub struct LaneSlot(Arc<AtomicUsize>);

impl Drop for LaneSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Live {
    /// Takes a place for one more lane, atomically, or `None` when all are taken.
    pub fn reserve_lane(&self) -> Option<LaneSlot> {
        lane_slot(&self.lane_slots)
    }
}

fn lane_slot(slots: &Arc<AtomicUsize>) -> Option<LaneSlot> {
    slots
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < MAX_LANES).then_some(n + 1)
        })
        .ok()
        .map(|_| LaneSlot(slots.clone()))
}

/// Why a waiting place was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitingFull {
    /// This address has [`MAX_WAITING_PER_ADDR`] waiting.
    Address,
    /// [`MAX_WAITING`] are waiting in all.
    Total,
}

/// A registered tunnel was refused: its key was revoked meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked;

#[derive(Default)]
struct Inner {
    tunnels: HashMap<String, Live>,
    /// Waiting places taken before a `101` whose tunnel is not registered yet, per address.
    reserved: HashMap<IpAddr, usize>,
    /// Key hashes revoked while Bifrost runs: no tunnel registers under them again (the
    /// database refuses them at the next upgrade; this closes the window of one in flight).
    revoked: HashSet<String>,
}

impl Inner {
    fn waiting(&self, addr: Option<IpAddr>) -> usize {
        let live = self
            .tunnels
            .values()
            .filter(|l| l.connector.is_none() && addr.is_none_or(|a| addr_key(l.peer) == a))
            .count();
        let reserved = match addr {
            Some(a) => self.reserved.get(&a).copied().unwrap_or(0),
            None => self.reserved.values().sum(),
        };
        live + reserved
    }
}

/// A waiting place taken before the `101`; registering the tunnel spends it, dropping it
/// (the upgrade failed) gives it back.
pub struct Reservation {
    inner: Arc<Mutex<Inner>>,
    addr: Option<IpAddr>,
}

fn unreserve(inner: &mut Inner, addr: IpAddr) {
    if let Some(n) = inner.reserved.get_mut(&addr) {
        *n -= 1;
        if *n == 0 {
            inner.reserved.remove(&addr);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(addr) = self.addr.take() {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            unreserve(&mut inner, addr);
        }
    }
}

/// All live tunnels, by key hash.
#[derive(Default)]
pub struct Registry {
    inner: Arc<Mutex<Inner>>,
    /// Bumped on every change, so waiters can re-check.
    changes: watch::Sender<u64>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Takes a waiting place for an unauthorized tunnel from `peer` with key `key_hash`,
    /// checked and counted under one lock. A key already waiting replaces its own tunnel and
    /// needs no new place (`Ok(None)`).
    pub fn reserve_waiting(
        &self,
        peer: IpAddr,
        key_hash: &str,
    ) -> Result<Option<Reservation>, WaitingFull> {
        let addr = addr_key(peer);
        let mut inner = self.lock();
        if inner
            .tunnels
            .get(key_hash)
            .is_some_and(|l| l.connector.is_none() && addr_key(l.peer) == addr)
        {
            return Ok(None);
        }
        if inner.waiting(Some(addr)) >= MAX_WAITING_PER_ADDR {
            return Err(WaitingFull::Address);
        }
        if inner.waiting(None) >= MAX_WAITING {
            return Err(WaitingFull::Total);
        }
        *inner.reserved.entry(addr).or_default() += 1;
        Ok(Some(Reservation {
            inner: self.inner.clone(),
            addr: Some(addr),
        }))
    }

    /// Number of waiting tunnels from `peer`, reserved places included.
    pub fn waiting_from(&self, peer: IpAddr) -> usize {
        self.lock().waiting(Some(addr_key(peer)))
    }

    /// Adds a tunnel, spending its reservation under the same lock, and returns an older one
    /// with the same key for the caller to close (the newest wins). A key revoked meanwhile
    /// is refused.
    pub fn insert(
        &self,
        key_hash: String,
        live: Live,
        reservation: Option<Reservation>,
    ) -> Result<Option<Live>, Revoked> {
        let mut inner = self.lock();
        if inner.revoked.contains(&key_hash) {
            return Err(Revoked);
        }
        let old = inner.tunnels.insert(key_hash, live);
        if let Some(addr) = reservation.and_then(|mut r| r.addr.take()) {
            unreserve(&mut inner, addr);
        }
        drop(inner);
        self.bump();
        Ok(old)
    }

    /// Removes the tunnel if it is still `conn_id`; returns its connector.
    pub fn remove(&self, key_hash: &str, conn_id: u64) -> Option<Option<String>> {
        let mut inner = self.lock();
        let removed = match inner.tunnels.get(key_hash) {
            Some(l) if l.conn_id == conn_id => inner.tunnels.remove(key_hash).map(|l| l.connector),
            _ => None,
        };
        drop(inner);
        self.bump();
        removed
    }

    /// Updates the agent's info.
    pub fn set_info(&self, key_hash: &str, conn_id: u64, info: AgentInfo) {
        if let Some(l) = self
            .lock()
            .tunnels
            .get_mut(key_hash)
            .filter(|l| l.conn_id == conn_id)
        {
            l.info = info;
        }
        self.bump();
    }

    /// Marks the tunnel with this key authorized as `connector`.
    pub fn authorize(&self, key_hash: &str, connector: &str) -> Option<Live> {
        let live = self.lock().tunnels.get_mut(key_hash).map(|l| {
            l.connector = Some(connector.to_owned());
            l.clone()
        });
        self.bump();
        live
    }

    /// The tunnel with this key.
    pub fn by_key(&self, key_hash: &str) -> Option<Live> {
        self.lock().tunnels.get(key_hash).cloned()
    }

    /// The tunnel of an authorized connector.
    pub fn by_connector(&self, id: &str) -> Option<Live> {
        self.lock()
            .tunnels
            .values()
            .find(|l| l.connector.as_deref() == Some(id))
            .cloned()
    }

    /// Closes and forgets the tunnel with this key.
    pub fn close(&self, key_hash: &str) -> Option<Live> {
        let live = self.lock().tunnels.remove(key_hash);
        if let Some(l) = &live {
            l.close.send_replace(true);
        }
        self.bump();
        live
    }

    /// Bars `key_hash` from registering again and forgets its tunnel, which it returns for the
    /// caller to tell and close: one lock, so a tunnel that was accepted before the revocation
    /// and registers after it is refused.
    pub fn revoke(&self, key_hash: &str) -> Option<Live> {
        let mut inner = self.lock();
        inner.revoked.insert(key_hash.to_owned());
        let live = inner.tunnels.remove(key_hash);
        drop(inner);
        self.bump();
        live
    }

    /// Every live tunnel.
    pub fn all(&self) -> Vec<Live> {
        self.lock().tunnels.values().cloned().collect()
    }

    /// Waits until connector `id` has a live tunnel, and returns a client for it.
    pub async fn wait_online(&self, id: &str) -> AgentClient {
        let mut changes = self.changes.subscribe();
        loop {
            if let Some(l) = self.by_connector(id) {
                return l.client;
            }
            if changes.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn waiting_places_are_taken_before_the_upgrade_and_given_back_on_drop() {
        let r = Registry::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let held: Vec<_> = (0..MAX_WAITING_PER_ADDR)
            .map(|i| r.reserve_waiting(a, &format!("k{i}")).unwrap().unwrap())
            .collect();
        assert_eq!(r.reserve_waiting(a, "x").err(), Some(WaitingFull::Address));
        assert_eq!(r.waiting_from(a), MAX_WAITING_PER_ADDR);
        drop(held);
        assert_eq!(r.waiting_from(a), 0);
        // The total holds across addresses.
        let mut all = Vec::new();
        for i in 0..MAX_WAITING {
            let ip = IpAddr::from([10, 1, (i / 256) as u8, (i % 256) as u8]);
            all.push(r.reserve_waiting(ip, "k").unwrap().unwrap());
        }
        let other: IpAddr = "10.2.0.1".parse().unwrap();
        assert_eq!(
            r.reserve_waiting(other, "k").err(),
            Some(WaitingFull::Total)
        );
        all.pop();
        assert!(r.reserve_waiting(other, "k").unwrap().is_some());
    }

    #[test]
    fn lane_places_stop_at_the_limit() {
        let slots = Arc::new(AtomicUsize::new(0));
        let taken: Vec<_> = std::iter::from_fn(|| lane_slot(&slots)).take(100).collect();
        assert_eq!(taken.len(), MAX_LANES);
        drop(taken);
        assert_eq!(slots.load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_revoked_key_is_barred() {
        let r = Registry::default();
        assert!(r.revoke("h").is_none());
        assert!(r.lock().revoked.contains("h"));
    }
}
