//! Bifrost's embedded SQLite database: connectors, jobs and per-file results.

use std::path::Path;
use std::sync::{Arc, Mutex};

use mover_proto::api::{Destination, FileReport, FileStatus, Filters, JobState, Mapping};
use rusqlite::{params, Connection, OptionalExtension};

use crate::raw_path::RawPath;

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
}

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
PRAGMA foreign_keys = ON;
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

/// A job row.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Connector id.
    pub connector: String,
    /// Source paths.
    pub sources: Vec<String>,
    /// Destination.
    pub destination: Destination,
    /// Home-drives mappings and filters.
    pub plan: Plan,
    /// State.
    pub state: JobState,
    /// Why failed or paused.
    pub reason: Option<String>,
    /// Files at once.
    pub concurrency: u32,
    /// Whether the sources have been fully listed.
    pub scanned: bool,
    /// Job this re-runs.
    pub rerun_of: Option<String>,
    /// Created.
    pub created: String,
    /// Updated.
    pub updated: String,
}

/// What a job copies beyond its sources and destination.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Home-drives mappings (empty: the sources land in the destination).
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Which files to take.
    #[serde(default)]
    pub filters: Filters,
}

/// Per-status counts of a job's files.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Files in all.
    pub files_total: u64,
    /// Copied.
    pub files_done: u64,
    /// Failed.
    pub files_failed: u64,
    /// Skipped.
    pub files_skipped: u64,
    /// Bytes in all.
    pub bytes_total: u64,
    /// Bytes copied or skipped.
    pub bytes_done: u64,
}

/// A file still to copy.
#[derive(Debug, Clone)]
pub struct PendingFile {
    /// Its number within the job.
    pub seq: i64,
    /// Path on the agent.
    pub source: RawPath,
    /// Path relative to the destination, `/`-separated.
    pub dest: RawPath,
    /// Size seen at scan time.
    pub size: u64,
    /// Failed attempts so far.
    pub attempts: u32,
    /// Modification time seen at scan time.
    pub modified: Option<String>,
}

/// A file found while scanning.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Path on the agent.
    pub source: RawPath,
    /// Path relative to the destination, `/`-separated.
    pub dest: RawPath,
    /// Size.
    pub size: u64,
    /// Modification time.
    pub modified: Option<String>,
    /// Pending, or skipped/failed from the start.
    pub status: FileStatus,
    /// Why skipped or failed.
    pub reason: Option<String>,
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

fn status_str(s: FileStatus) -> &'static str {
    match s {
        FileStatus::Pending => "pending",
        FileStatus::Copied => "copied",
        FileStatus::Failed => "failed",
        FileStatus::Skipped => "skipped",
    }
}

fn parse_status(s: &str) -> FileStatus {
    match s {
        "copied" => FileStatus::Copied,
        "failed" => FileStatus::Failed,
        "skipped" => FileStatus::Skipped,
        _ => FileStatus::Pending,
    }
}

impl Store {
    /// Opens (and creates) the database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
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

    /// Revokes by key hash, or records the hash as revoked when it was never authorized.
    pub async fn retire_key(&self, key_hash: String) -> Result<Option<String>, StoreError> {
        self.call(move |c| {
            let id: Option<String> =
                c.query_row("SELECT id FROM connectors WHERE key_hash = ?1", [&key_hash], |r| r.get(0)).optional()?;
            match id {
                Some(id) => {
                    c.execute("UPDATE connectors SET revoked = 1 WHERE id = ?1", [&id])?;
                    Ok(Some(id))
                }
                None => {
                    c.execute(
                        "INSERT INTO connectors (id, key_hash, name, revoked, created) VALUES (?1, ?2, '', 1, ?3)",
                        params![new_id(), key_hash, now()],
                    )?;
                    Ok(None)
                }
            }
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

    /// Creates a job.
    pub async fn insert_job(&self, job: JobRow) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO jobs (id, connector, sources, destination, plan, state, reason, concurrency, scanned, rerun_of, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?10, ?5, ?6, ?7, 0, ?8, ?9, ?9)",
                params![
                    job.id,
                    job.connector,
                    serde_json::to_string(&job.sources).unwrap_or_default(),
                    serde_json::to_string(&job.destination).unwrap_or_default(),
                    job.state.as_str(),
                    job.reason,
                    job.concurrency,
                    job.rerun_of,
                    job.created,
                    serde_json::to_string(&job.plan).unwrap_or_default(),
                ],
            )
            .map(drop)
        })
        .await
    }

    /// One job.
    pub async fn job(&self, id: String) -> Result<Option<JobRow>, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()
        })
        .await
    }

    /// Every job, newest first.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {JOB_COLS} FROM jobs ORDER BY created DESC, rowid DESC"
            ))?;
            let rows = stmt.query_map([], job_row)?.collect();
            rows
        })
        .await
    }

    /// Jobs that were queued or running when Bifrost stopped.
    pub async fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY created",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?.collect();
            rows
        })
        .await
    }

    /// Sets a job's state and reason.
    pub async fn set_job_state(
        &self,
        id: String,
        state: JobState,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET state = ?2, reason = ?3, updated = ?4 WHERE id = ?1",
                params![id, state.as_str(), reason, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Marks a job's sources as fully listed.
    pub async fn set_scanned(&self, id: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET scanned = 1, updated = ?2 WHERE id = ?1",
                params![id, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Adds files found while scanning; already known ones are left as they are.
    pub async fn add_files(&self, job: String, files: Vec<NewFile>) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            {
                let next: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_files WHERE job = ?1", [&job], |r| r.get(0))?;
                let mut stmt = tx.prepare(
                    "INSERT OR IGNORE INTO job_files (job, seq, source, source_b64, dest, dest_b64, size, modified, status, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for (i, f) in files.into_iter().enumerate() {
                    stmt.execute(params![
                        job,
                        next + i as i64,
                        f.source.lossy(),
                        f.source.b64(),
                        f.dest.lossy(),
                        f.dest.b64().unwrap_or_default(),
                        f.size as i64,
                        f.modified,
                        status_str(f.status),
                        f.reason
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Up to `limit` pending files after sequence number `after`, in order.
    pub async fn pending_files(
        &self,
        job: String,
        after: i64,
        limit: u32,
    ) -> Result<Vec<PendingFile>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT seq, source, source_b64, dest, dest_b64, size, attempts, modified FROM job_files
                 WHERE job = ?1 AND status = 'pending' AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![job, after, limit], |r| {
                    Ok(PendingFile {
                        seq: r.get(0)?,
                        source: RawPath::from_stored(r.get(1)?, r.get::<_, Option<String>>(2)?.as_deref()),
                        dest: RawPath::from_stored(r.get(3)?, Some(r.get::<_, String>(4)?.as_str())),
                        size: r.get::<_, i64>(5)? as u64,
                        attempts: r.get(6)?,
                        modified: r.get(7)?,
                    })
                })?
                .collect();
            rows
        })
        .await
    }

    /// Records a file's result.
    pub async fn finish_file(
        &self,
        job: String,
        seq: i64,
        status: FileStatus,
        size: u64,
        reason: Option<String>,
        blake3: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE job_files SET status = ?3, size = ?4, reason = ?5, blake3 = ?6 WHERE job = ?1 AND seq = ?2",
                params![job, seq, status_str(status), size as i64, reason, blake3],
            )
            .map(drop)
        })
        .await
    }

    /// Counts one more failed attempt at a file.
    pub async fn bump_attempts(&self, job: String, seq: i64) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE job_files SET attempts = attempts + 1 WHERE job = ?1 AND seq = ?2",
                params![job, seq],
            )
            .map(drop)
        })
        .await
    }

    /// Per-status counts of a job's files.
    pub async fn counts(&self, job: String) -> Result<Counts, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare("SELECT status, COUNT(*), COALESCE(SUM(size), 0) FROM job_files WHERE job = ?1 GROUP BY status")?;
            let mut counts = Counts::default();
            let mut rows = stmt.query([job])?;
            while let Some(r) = rows.next()? {
                let status: String = r.get(0)?;
                let n = r.get::<_, i64>(1)? as u64;
                let bytes = r.get::<_, i64>(2)? as u64;
                counts.files_total += n;
                counts.bytes_total += bytes;
                match parse_status(&status) {
                    FileStatus::Copied => {
                        counts.files_done += n;
                        counts.bytes_done += bytes;
                    }
                    FileStatus::Skipped => {
                        counts.files_skipped += n;
                        counts.bytes_done += bytes;
                    }
                    FileStatus::Failed => counts.files_failed += n,
                    FileStatus::Pending => {}
                }
            }
            Ok(counts)
        })
        .await
    }

    /// A job's per-file report, optionally only one status.
    pub async fn files(
        &self,
        job: String,
        status: Option<FileStatus>,
    ) -> Result<Vec<FileReport>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT source, dest, size, status, reason, blake3 FROM job_files WHERE job = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY seq",
            )?;
            let rows = stmt
                .query_map(params![job, status.map(status_str)], |r| {
                    Ok(FileReport {
                        source: r.get(0)?,
                        destination: r.get(1)?,
                        size: r.get::<_, i64>(2)? as u64,
                        status: parse_status(&r.get::<_, String>(3)?),
                        reason: r.get(4)?,
                        blake3: r.get(5)?,
                    })
                })?
                .collect();
            rows
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

const JOB_COLS: &str =
    "id, connector, sources, destination, state, reason, concurrency, scanned, rerun_of, created, updated, plan";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            what.to_owned().into(),
        )
    };
    let sources: String = r.get(2)?;
    let destination: String = r.get(3)?;
    let state: String = r.get(4)?;
    Ok(JobRow {
        id: r.get(0)?,
        connector: r.get(1)?,
        sources: serde_json::from_str(&sources).map_err(|_| bad(2, "sources"))?,
        destination: serde_json::from_str(&destination).map_err(|_| bad(3, "destination"))?,
        state: JobState::parse(&state).ok_or_else(|| bad(4, "state"))?,
        reason: r.get(5)?,
        concurrency: r.get(6)?,
        scanned: r.get::<_, i64>(7)? != 0,
        rerun_of: r.get(8)?,
        created: r.get(9)?,
        updated: r.get(10)?,
        plan: serde_json::from_str(&r.get::<_, String>(11)?).map_err(|_| bad(11, "plan"))?,
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
