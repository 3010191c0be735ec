//! The database's tables, and what brings a database an older Bifrost made up to them.

use rusqlite::Connection;

/// The tables as a new database gets them.
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
    updated TEXT NOT NULL,
    started_by TEXT
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
    kind TEXT,
    PRIMARY KEY (job, dest, dest_b64)
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

/// The failure kind of each file (`failure::CopyError::kind`), added to a database from before
/// it; the rows already there keep none (`failure::UNRECORDED` to readers).
const KINDS: &str = "ALTER TABLE job_files ADD COLUMN kind TEXT;";

/// Who started each job (issue 17), added to a database from before accounts; its old jobs
/// name no one.
const STARTED_BY: &str = "ALTER TABLE jobs ADD COLUMN started_by TEXT;";

/// Triggers that kept the counts before the store did (a trigger program and a statement
/// journal per row written cost more than the row): dropped, since the store now counts.
const OLD_TRIGGERS: &str = "
DROP TRIGGER IF EXISTS job_files_counted;
DROP TRIGGER IF EXISTS job_files_recounted;
DROP TRIGGER IF EXISTS job_files_uncounted;
";

/// Creates the tables, or brings an older database's up to date.
pub(super) fn bring_up(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    conn.execute_batch(super::destinations::SCHEMA)?;
    conn.execute_batch(crate::dest::object::SCHEMA)?;
    conn.execute_batch(super::settings::SCHEMA)?;
    // Checked inside the write transaction: two processes opening an older database at
    // once fill the counts once, and add a column once.
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let counted: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'job_counts')",
        [],
        |r| r.get(0),
    )?;
    if !counted {
        tx.execute_batch(COUNTS)?;
    }
    if !has_column(&tx, "job_files", "kind")? {
        tx.execute_batch(KINDS)?;
    }
    if !has_column(&tx, "jobs", "started_by")? {
        tx.execute_batch(STARTED_BY)?;
    }
    tx.execute_batch(OLD_TRIGGERS)?;
    super::accounts::bring_up(&tx)?;
    super::audit::bring_up(&tx)?;
    super::tokens::bring_up(&tx)?;
    tx.commit()
}

/// Whether `table` has `column` (a column added by an upgrade may be missing).
fn has_column(tx: &rusqlite::Transaction<'_>, table: &str, column: &str) -> rusqlite::Result<bool> {
    tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2)",
        [table, column],
        |r| r.get(0),
    )
}

#[cfg(test)]
mod tests {
    use mover_proto::api::FileStatus;

    use crate::failure::UNRECORDED;
    use crate::store::{FileUpdate, NewFile, Store};

    /// `job_files` as Bifrost made it before it kept failure kinds.
    const BEFORE_KINDS: &str = "
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY, connector TEXT NOT NULL, sources TEXT NOT NULL,
        destination TEXT NOT NULL, plan TEXT NOT NULL DEFAULT '{}', state TEXT NOT NULL,
        reason TEXT, concurrency INTEGER NOT NULL, scanned INTEGER NOT NULL DEFAULT 0,
        rerun_of TEXT, created TEXT NOT NULL, updated TEXT NOT NULL
    );
    CREATE TABLE job_files (
        job TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL, source TEXT NOT NULL, source_b64 TEXT, dest TEXT NOT NULL,
        dest_b64 TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL, modified TEXT,
        status TEXT NOT NULL, reason TEXT, blake3 TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (job, dest, dest_b64)
    );
    INSERT INTO jobs (id, connector, sources, destination, state, concurrency, created, updated)
        VALUES ('j', 'c', '[]', '{}', 'running', 1, '', '');
    INSERT INTO job_files (job, seq, source, dest, size, status, reason) VALUES
        ('j', 1, '/s/a', 'a', 1, 'failed', 'cannot open: Permission denied'),
        ('j', 2, '/s/b', 'b', 2, 'copied', NULL);
    ";

    #[test]
    fn admin_token_sessions_from_before_tokens_become_the_bootstrap_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bifrost.db");
        // `sessions` as accounts made it, before API tokens: no token_id.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, csrf TEXT NOT NULL,
                    user_id TEXT, via TEXT NOT NULL, created INTEGER NOT NULL,
                    last_seen INTEGER NOT NULL, expires INTEGER NOT NULL);
                 INSERT INTO sessions VALUES ('t', 'c', NULL, 'token', 1, 1, 2);
                 INSERT INTO sessions VALUES ('p', 'c', 'u1', 'password', 1, 1, 2);",
            )
            .unwrap();
        for _ in 0..2 {
            drop(Store::open(&path).unwrap());
        }
        let c = rusqlite::Connection::open(&path).unwrap();
        let owner = |h: &str| {
            c.query_row(
                "SELECT token_id FROM sessions WHERE token_hash = ?1",
                [h],
                |r| r.get::<_, Option<String>>(0),
            )
            .unwrap()
        };
        assert_eq!(owner("t").as_deref(), Some(crate::store::BOOTSTRAP_ID));
        assert_eq!(owner("p"), None);
    }

    #[test]
    fn sessions_from_before_accounts_are_dropped_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bifrost.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, csrf TEXT NOT NULL, expires INTEGER NOT NULL);
                 INSERT INTO sessions VALUES ('h', 'c', 9999999999);",
            )
            .unwrap();
        drop(Store::open(&path).unwrap());
        let c = rusqlite::Connection::open(&path).unwrap();
        let count = |sql: &str| c.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM sessions"), 0);
        assert_eq!(
            count("SELECT COUNT(*) FROM pragma_table_info('sessions') WHERE name = 'via'"),
            1
        );
        c.execute(
            "INSERT INTO sessions (token_hash, csrf, user_id, via, created, last_seen, expires)
             VALUES ('h2', 'c', NULL, 'token', 1, 1, 2)",
            [],
        )
        .unwrap();
        drop(c);
        // Opened again, the new table and its rows stay.
        drop(Store::open(&path).unwrap());
        let c = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(
            c.query_row("SELECT COUNT(*) FROM sessions", [], |r| r.get::<_, i64>(0))
                .unwrap(),
            1
        );
    }

    #[tokio::test]
    async fn a_database_from_before_kinds_opens_and_its_failures_are_other() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bifrost.db");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(BEFORE_KINDS)
            .unwrap();
        let store = Store::open(&path).unwrap();
        let files = store.files("j".into(), None).await.unwrap();
        let kinds: Vec<_> = files.iter().map(|f| f.kind.as_deref()).collect();
        assert_eq!(kinds, [Some(UNRECORDED), None]);

        // New rows keep their kind, and the column is added once.
        drop(store);
        let store = Store::open(&path).unwrap();
        let c = NewFile {
            source: crate::raw_path::RawPath::new("/s/c"),
            dest: crate::raw_path::RawPath::new("c"),
            size: 3,
            modified: None,
            status: FileStatus::Pending,
            reason: None,
            kind: None,
        };
        store.add_files("j".into(), vec![c]).await.unwrap();
        let failed = FileUpdate::Finish {
            seq: 3,
            status: FileStatus::Failed,
            size: 3,
            reason: Some("vanished".into()),
            kind: Some("vanished"),
            blake3: None,
        };
        store.update_files("j".into(), vec![failed]).await.unwrap();
        let files = store
            .files("j".into(), Some(FileStatus::Failed))
            .await
            .unwrap();
        let kinds: Vec<_> = files.iter().map(|f| f.kind.as_deref()).collect();
        assert_eq!(kinds, [Some(UNRECORDED), Some("vanished")]);
    }
}
