//! Bifrost's embedded SQLite database: connectors, jobs, per-file results, destinations,
//! accounts, API tokens, sessions and settings.

mod accounts;
mod audit;
mod counts;
mod destinations;
mod files;
mod jobs;
mod schema;
mod settings;
mod tokens;

pub use accounts::{Liveness, SessionRow, UserRow, Via};
pub use audit::{second, AuditEvent, AuditFilter};
pub use counts::Counts;
pub use destinations::DestinationRow;
pub use files::{FileUpdate, NewFile, PendingFile};
pub use jobs::{JobRow, Plan};
pub use tokens::{NewTokenRow, TokenRow, BOOTSTRAP_ID, LAST_USED_EVERY};

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

/// Errors from the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The blocking task failed.
    #[error("database task: {0}")]
    Task(String),
}

/// A handle to the database; clones share one connection.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// File results recorded since start, for `/metrics`.
    pub tally: Arc<crate::metrics::Tally>,
}

/// A connector row.
#[derive(Debug, Clone)]
pub struct ConnectorRow {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Revoked by an admin.
    pub revoked: bool,
    /// Last known agent version.
    pub version: Option<String>,
    /// Last known OS.
    pub os: Option<String>,
    /// Last known host.
    pub host: Option<String>,
    /// Last announced roots.
    pub roots: Vec<String>,
    /// Last time seen online.
    pub last_seen: Option<String>,
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Current time, RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Store {
    /// Opens (and creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::bring_up(&mut conn)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            tally: Arc::default(),
        })
    }

    /// Runs `f` with the connection on a blocking thread.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut guard).map_err(StoreError::from)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// The connector with this key hash, revoked or not.
    pub async fn connector_by_key(
        &self,
        key_hash: String,
    ) -> Result<Option<ConnectorRow>, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {CONNECTOR_COLS} FROM connectors WHERE key_hash = ?1"),
                [key_hash],
                connector_row,
            )
            .optional()
        })
        .await
    }

    /// The connector with this id, if not revoked.
    pub async fn connector(&self, id: String) -> Result<Option<ConnectorRow>, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {CONNECTOR_COLS} FROM connectors WHERE id = ?1 AND revoked = 0"),
                [id],
                connector_row,
            )
            .optional()
        })
        .await
    }

    /// The key hash of connector `id`.
    pub async fn connector_key_hash(&self, id: String) -> Result<Option<String>, StoreError> {
        self.call(move |c| {
            c.query_row("SELECT key_hash FROM connectors WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    /// Every connector not revoked.
    pub async fn connectors(&self) -> Result<Vec<ConnectorRow>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {CONNECTOR_COLS} FROM connectors WHERE revoked = 0 ORDER BY created"
            ))?;
            let rows = stmt.query_map([], connector_row)?.collect();
            rows
        })
        .await
    }

    /// Adds an authorized connector.
    pub async fn insert_connector(
        &self,
        id: String,
        key_hash: String,
        name: String,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO connectors (id, key_hash, name, created) VALUES (?1, ?2, ?3, ?4)",
                params![id, key_hash, name, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Records what a live agent said about itself.
    pub async fn touch_connector(
        &self,
        id: String,
        version: String,
        os: String,
        host: String,
        roots: Vec<String>,
    ) -> Result<(), StoreError> {
        let roots = serde_json::to_string(&roots).unwrap_or_default();
        self.call(move |c| {
            c.execute(
                "UPDATE connectors SET version = ?2, os = ?3, host = ?4, roots = ?5, last_seen = ?6 WHERE id = ?1",
                params![id, version, os, host, roots, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Marks a connector seen now.
    pub async fn seen(&self, id: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE connectors SET last_seen = ?2 WHERE id = ?1",
                params![id, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Renames a connector; false when there is none.
    pub async fn rename_connector(&self, id: String, name: String) -> Result<bool, StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE connectors SET name = ?2 WHERE id = ?1 AND revoked = 0",
                params![id, name],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// Revokes by id; false when there is none.
    pub async fn revoke_connector(&self, id: String) -> Result<bool, StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE connectors SET revoked = 1 WHERE id = ?1 AND revoked = 0",
                [id],
            )
            .map(|n| n > 0)
        })
        .await
    }

    /// Revokes the connector holding this key hash, if one does and is not revoked yet;
    /// returns its id. A hash no connector holds changes nothing: no row is stored for a key
    /// that was never authorized (any client may claim to have held any key).
    pub async fn retire_key(&self, key_hash: String) -> Result<Option<String>, StoreError> {
        self.call(move |c| {
            c.query_row(
                "UPDATE connectors SET revoked = 1 WHERE key_hash = ?1 AND revoked = 0 RETURNING id",
                [&key_hash],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }
}

const CONNECTOR_COLS: &str = "id, name, revoked, version, os, host, roots, last_seen";

fn connector_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ConnectorRow> {
    let roots: Option<String> = r.get(6)?;
    Ok(ConnectorRow {
        id: r.get(0)?,
        name: r.get(1)?,
        revoked: r.get::<_, i64>(2)? != 0,
        version: r.get(3)?,
        os: r.get(4)?,
        host: r.get(5)?,
        roots: roots
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default(),
        last_seen: r.get(7)?,
    })
}

/// A new random id: 16 lowercase hex characters.
pub fn new_id() -> String {
    let mut b = [0u8; 8];
    // Ids need to be unique, not secret; the clock is a fine fallback.
    if getrandom::fill(&mut b).is_err() {
        b = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() as u64).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}
