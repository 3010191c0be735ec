//! Bifrost's embedded SQLite database: connectors, jobs and per-file results.

mod counts;
mod files;
mod jobs;

pub use counts::Counts;
pub use files::{FileUpdate, NewFile, PendingFile};
pub use jobs::{JobRow, Plan};

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

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
-- 32 MiB of pages (the default 2 MiB made a big job's updates read pages back from the file).
PRAGMA cache_size = -32768;
CREATE TABLE IF NOT EXISTS connectors (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0,
    version TEXT, os TEXT, host TEXT, roots TEXT,
    last_seen TEXT,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    connector TEXT NOT NULL,
    sources TEXT NOT NULL,
    destination TEXT NOT NULL,
    plan TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL,
    reason TEXT,
    concurrency INTEGER NOT NULL,
    scanned INTEGER NOT NULL DEFAULT 0,
    rerun_of TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS job_files (
    job TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    source TEXT NOT NULL,
    source_b64 TEXT,
    dest TEXT NOT NULL,
    dest_b64 TEXT NOT NULL DEFAULT '',
    size INTEGER NOT NULL,
    modified TEXT,
    status TEXT NOT NULL,
    reason TEXT,
    blake3 TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job, dest, dest_b64)
);
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    csrf TEXT NOT NULL,
    expires INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS job_files_status ON job_files (job, status, seq);
CREATE UNIQUE INDEX IF NOT EXISTS job_files_seq ON job_files (job, seq);
";

/// Per job and status, how many files and bytes `job_files` holds, changed by the store in the
/// same transaction as the files (`counts::CountChanges`): counting 20,000 rows took 12 ms, and a
/// console polling a running job held the database that long at every refresh. Filled from
/// `job_files` when a database from before it is opened.
const COUNTS: &str = "
CREATE TABLE job_counts (
    job TEXT NOT NULL,
    status TEXT NOT NULL,
    files INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    PRIMARY KEY (job, status)
);
INSERT INTO job_counts SELECT job, status, COUNT(*), COALESCE(SUM(size), 0) FROM job_files GROUP BY job, status;
";

/// Triggers that kept the counts before the store did (a trigger program and a statement
/// journal per row written cost more than the row): dropped, since the store now counts.
const OLD_TRIGGERS: &str = "
DROP TRIGGER IF EXISTS job_files_counted;
DROP TRIGGER IF EXISTS job_files_recounted;
DROP TRIGGER IF EXISTS job_files_uncounted;
";

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
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(crate::dest::object::SCHEMA)?;
        // Checked inside the write transaction: two processes opening an older database at
        // once fill the counts once.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let counted: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job_counts')",
            [],
            |r| r.get(0),
        )?;
        if !counted {
            tx.execute_batch(COUNTS)?;
        }
        tx.execute_batch(OLD_TRIGGERS)?;
        tx.commit()?;
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

    /// Stores a console session (by the hash of its cookie), dropping expired ones.
    pub async fn create_session(
        &self,
        token_hash: String,
        csrf: String,
        expires: i64,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE expires < ?1", [unix_now()])?;
            c.execute(
                "INSERT INTO sessions (token_hash, csrf, expires) VALUES (?1, ?2, ?3)",
                params![token_hash, csrf, expires],
            )
            .map(drop)
        })
        .await
    }

    /// The CSRF token of a live console session.
    pub async fn session(&self, token_hash: String) -> Result<Option<String>, StoreError> {
        self.call(move |c| {
            c.query_row(
                "SELECT csrf FROM sessions WHERE token_hash = ?1 AND expires >= ?2",
                params![token_hash, unix_now()],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    /// Ends a console session.
    pub async fn delete_session(&self, token_hash: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])
                .map(drop)
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
