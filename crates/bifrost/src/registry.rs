//! Live tunnels: which agents are connected, authorized or waiting, and how to reach them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use mover_proto::AgentInfo;
use tokio::sync::watch;

use crate::agent_client::AgentClient;

/// How many unauthorized tunnels one address may hold.
pub const MAX_WAITING_PER_ADDR: usize = mover_proto::limits::MAX_WAITING_PER_ADDR;

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
}

/// All live tunnels, by key hash.
#[derive(Default)]
pub struct Registry {
    tunnels: Mutex<HashMap<String, Live>>,
    /// Bumped on every change, so waiters can re-check.
    changes: watch::Sender<u64>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.tunnels.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Number of waiting tunnels from `peer`.
    pub fn waiting_from(&self, peer: IpAddr) -> usize {
        self.lock()
            .values()
            .filter(|l| l.connector.is_none() && l.peer == peer)
            .count()
    }

    /// Adds a tunnel, returning an older one with the same key for the caller to close
    /// (the newest wins).
    pub fn insert(&self, key_hash: String, live: Live) -> Option<Live> {
        let old = self.lock().insert(key_hash, live);
        self.bump();
        old
    }

    /// Removes the tunnel if it is still `conn_id`; returns its connector.
    pub fn remove(&self, key_hash: &str, conn_id: u64) -> Option<Option<String>> {
        let mut map = self.lock();
        let removed = match map.get(key_hash) {
            Some(l) if l.conn_id == conn_id => map.remove(key_hash).map(|l| l.connector),
            _ => None,
        };
        drop(map);
        self.bump();
        removed
    }

    /// Updates the agent's info.
    pub fn set_info(&self, key_hash: &str, conn_id: u64, info: AgentInfo) {
        if let Some(l) = self
            .lock()
            .get_mut(key_hash)
            .filter(|l| l.conn_id == conn_id)
        {
            l.info = info;
        }
        self.bump();
    }

    /// Marks the tunnel with this key authorized as `connector`.
    pub fn authorize(&self, key_hash: &str, connector: &str) -> Option<Live> {
        let live = self.lock().get_mut(key_hash).map(|l| {
            l.connector = Some(connector.to_owned());
            l.clone()
        });
        self.bump();
        live
    }

    /// The tunnel with this key.
    pub fn by_key(&self, key_hash: &str) -> Option<Live> {
        self.lock().get(key_hash).cloned()
    }

    /// The tunnel of an authorized connector.
    pub fn by_connector(&self, id: &str) -> Option<Live> {
        self.lock()
            .values()
            .find(|l| l.connector.as_deref() == Some(id))
            .cloned()
    }

    /// Closes and forgets the tunnel with this key.
    pub fn close(&self, key_hash: &str) -> Option<Live> {
        let live = self.lock().remove(key_hash);
        if let Some(l) = &live {
            l.close.send_replace(true);
        }
        self.bump();
        live
    }

    /// Every live tunnel.
    pub fn all(&self) -> Vec<Live> {
        self.lock().values().cloned().collect()
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
