//! The job tables: jobs, their plans, and each file's result.

use mover_proto::api::{Destination, FileReport, FileStatus, Filters, JobState, Mapping};
use rusqlite::{params, OptionalExtension};

use super::{now, Store, StoreError};
use crate::dest::folder::full::{OLD_REASON as OLD_DISK_FULL, PREFIX as DISK_FULL};
use crate::raw_path::RawPath;

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
    /// Bytes per second over all the job's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<u64>,
    /// Re-runs remove files deleted at the source from the destination.
    #[serde(default)]
    pub delete_removed: bool,
    /// How a file already at the destination is found unchanged.
    #[serde(default)]
    pub compare: mover_proto::api::Compare,
    /// Changes at the source start the next incremental pass.
    #[serde(default)]
    pub keep_in_sync: bool,
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
    /// Gone from the source since the job this re-runs (not in `files_total`).
    pub files_deleted: u64,
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
    /// Set once the copy was verified and is being renamed into place (the journal entry that
    /// lets a restarted Bifrost count a file renamed just before it died as copied).
    pub verified: Option<String>,
}

#[cfg(test)]
impl PendingFile {
    /// A pending file of `size` bytes at `/src/{seq}` that goes to `{seq}`.
    pub(crate) fn example(seq: i64, size: u64) -> Self {
        Self {
            seq,
            source: RawPath::new(&format!("/src/{seq}")),
            dest: RawPath::new(&format!("{seq}")),
            size,
            attempts: 0,
            modified: None,
            verified: None,
        }
    }
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

/// What becomes of one pending file after an attempt at it.
#[derive(Debug, Clone)]
pub enum FileUpdate {
    /// Its result: copied, skipped or failed.
    Finish {
        /// Its number within the job.
        seq: i64,
        /// The result.
        status: FileStatus,
        /// Bytes copied, or its size at the scan.
        size: u64,
        /// Why skipped or failed, or what was new about it.
        reason: Option<String>,
        /// BLAKE3 of what was copied.
        blake3: Option<String>,
    },
    /// One more failed attempt; it stays pending.
    Attempted {
        /// Its number within the job.
        seq: i64,
    },
}

/// Changes to one job's kept counts (`job_counts`), written in the transaction that changed
/// its files.
#[derive(Default)]
struct CountChanges(std::collections::HashMap<&'static str, (i64, i64)>);

impl CountChanges {
    fn add(&mut self, status: FileStatus, files: i64, bytes: i64) {
        let c = self.0.entry(status_str(status)).or_default();
        c.0 += files;
        c.1 += bytes;
    }

    fn apply(self, tx: &rusqlite::Transaction<'_>, job: &str) -> rusqlite::Result<()> {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO job_counts VALUES (?1, ?2, ?3, ?4) ON CONFLICT (job, status)
             DO UPDATE SET files = files + excluded.files, bytes = bytes + excluded.bytes",
        )?;
        for (status, (files, bytes)) in self.0 {
            stmt.execute(params![job, status, files, bytes])?;
        }
        Ok(())
    }
}

fn status_str(s: FileStatus) -> &'static str {
    match s {
        FileStatus::Pending => "pending",
        FileStatus::Copied => "copied",
        FileStatus::Failed => "failed",
        FileStatus::Skipped => "skipped",
        FileStatus::Deleted => "deleted",
    }
}

fn parse_status(s: &str) -> FileStatus {
    match s {
        "copied" => FileStatus::Copied,
        "failed" => FileStatus::Failed,
        "skipped" => FileStatus::Skipped,
        "deleted" => FileStatus::Deleted,
        _ => FileStatus::Pending,
    }
}

impl Store {
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

    /// Puts the job's files that failed on a full destination back to pending, so that a job
    /// resumed once space is freed copies them (each resumes from its temporary file). How
    /// many there were.
    pub async fn retry_disk_full(&self, job: String) -> Result<u64, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            // `reason` starts with the classifier's prefix; the old fixed text is matched too.
            let (files, bytes): (i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM job_files
                 WHERE job = ?1 AND status = 'failed' AND (substr(reason, 1, ?2) = ?3 OR reason = ?4)",
                params![job, DISK_FULL.len(), DISK_FULL, OLD_DISK_FULL],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if files > 0 {
                tx.execute(
                    "UPDATE job_files SET status = 'pending', reason = NULL
                     WHERE job = ?1 AND status = 'failed' AND (substr(reason, 1, ?2) = ?3 OR reason = ?4)",
                    params![job, DISK_FULL.len(), DISK_FULL, OLD_DISK_FULL],
                )?;
                let mut counts = CountChanges::default();
                counts.add(FileStatus::Failed, -files, -bytes);
                counts.add(FileStatus::Pending, files, bytes);
                counts.apply(&tx, &job)?;
            }
            tx.commit()?;
            Ok(files as u64)
        })
        .await
    }

    /// Marks every job still `running` as `queued` with `reason`: Bifrost is stopping, and
    /// its next start resumes them (`unfinished_jobs`). How many there were.
    pub async fn requeue_running(&self, reason: String) -> Result<u64, StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET state = 'queued', reason = ?1, updated = ?2 WHERE state = 'running'",
                params![reason, now()],
            )
            .map(|n| n as u64)
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

    /// Replaces a job's plan.
    pub async fn set_plan(&self, id: String, plan: Plan) -> Result<(), StoreError> {
        let plan = serde_json::to_string(&plan).unwrap_or_default();
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET plan = ?2, updated = ?3 WHERE id = ?1",
                params![id, plan, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Adds files found while scanning; already known ones are left as they are.
    pub async fn add_files(&self, job: String, files: Vec<NewFile>) -> Result<(), StoreError> {
        let tally = self.tally.clone();
        self.call(move |c| {
            let mut settled = Vec::new();
            let mut counts = CountChanges::default();
            let tx = c.transaction()?;
            {
                let next: i64 = tx.query_row("SELECT COALESCE(MAX(seq), 0) + 1 FROM job_files WHERE job = ?1", [&job], |r| r.get(0))?;
                let mut stmt = tx.prepare(
                    "INSERT OR IGNORE INTO job_files (job, seq, source, source_b64, dest, dest_b64, size, modified, status, reason)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )?;
                for (i, f) in files.into_iter().enumerate() {
                    let inserted = stmt.execute(params![
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
                    if inserted > 0 {
                        counts.add(f.status, 1, f.size as i64);
                        if f.status != FileStatus::Pending {
                            settled.push((f.status, f.size, f.reason));
                        }
                    }
                }
            }
            counts.apply(&tx, &job)?;
            tx.commit()?;
            // Counted once committed, so a rolled-back batch is not counted.
            for (status, size, reason) in settled {
                tally.record(status, size, reason.as_deref());
            }
            Ok(())
        })
        .await
    }

    /// Files the job `old` copied or found in place that job `new` did not find at the source.
    pub async fn gone_since(&self, old: String, new: String) -> Result<Vec<NewFile>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT o.source, o.source_b64, o.dest, o.dest_b64, o.size, o.modified FROM job_files o
                 WHERE o.job = ?1 AND o.status IN ('copied', 'skipped')
                 AND NOT EXISTS (SELECT 1 FROM job_files n WHERE n.job = ?2 AND n.dest = o.dest AND n.dest_b64 = o.dest_b64)
                 ORDER BY o.seq",
            )?;
            let rows = stmt
                .query_map(params![old, new], |r| {
                    Ok(NewFile {
                        source: RawPath::from_stored(r.get(0)?, r.get::<_, Option<String>>(1)?.as_deref()),
                        dest: RawPath::from_stored(r.get(2)?, Some(r.get::<_, String>(3)?.as_str())),
                        size: r.get::<_, i64>(4)? as u64,
                        modified: r.get(5)?,
                        status: FileStatus::Deleted,
                        reason: None,
                    })
                })?
                .collect();
            rows
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
                "SELECT seq, source, source_b64, dest, dest_b64, size, attempts, modified, blake3 FROM job_files
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
                        verified: r.get(8)?,
                    })
                })?
                .collect();
            rows
        })
        .await
    }

    /// Records what became of some pending files, in one transaction.
    pub async fn update_files(
        &self,
        job: String,
        updates: Vec<FileUpdate>,
    ) -> Result<(), StoreError> {
        let tally = self.tally.clone();
        self.call(move |c| {
            let mut settled = Vec::new();
            let mut counts = CountChanges::default();
            let tx = c.transaction()?;
            {
                // Cached: these run once per file, and parsing them again showed in profiles.
                let mut listed = tx.prepare_cached(
                    "SELECT size FROM job_files WHERE job = ?1 AND seq = ?2 AND status = 'pending'",
                )?;
                let mut finish = tx.prepare_cached(
                    "UPDATE job_files SET status = ?3, size = ?4, reason = ?5, blake3 = ?6 WHERE job = ?1 AND seq = ?2 AND status = 'pending'",
                )?;
                let mut attempted = tx.prepare_cached(
                    "UPDATE job_files SET attempts = attempts + 1 WHERE job = ?1 AND seq = ?2",
                )?;
                for u in updates {
                    match u {
                        FileUpdate::Finish {
                            seq,
                            status,
                            size,
                            reason,
                            blake3,
                        } => {
                            let Some(was) = listed
                                .query_row(params![job, seq], |r| r.get::<_, i64>(0))
                                .optional()?
                            else {
                                // Not pending any more: its result is recorded already.
                                continue;
                            };
                            finish.execute(params![
                                job,
                                seq,
                                status_str(status),
                                size as i64,
                                reason,
                                blake3
                            ])?;
                            counts.add(FileStatus::Pending, -1, -was);
                            counts.add(status, 1, size as i64);
                            settled.push((status, size, reason));
                        }
                        FileUpdate::Attempted { seq } => {
                            attempted.execute(params![job, seq])?;
                        }
                    }
                }
            }
            counts.apply(&tx, &job)?;
            tx.commit()?;
            for (status, size, reason) in settled {
                tally.record(status, size, reason.as_deref());
            }
            Ok(())
        })
        .await
    }

    /// Journals that pending files' copies are verified (their BLAKE3) and about to be renamed.
    pub async fn mark_verified(
        &self,
        job: String,
        verified: Vec<(i64, String)>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE job_files SET blake3 = ?3 WHERE job = ?1 AND seq = ?2 AND status = 'pending'",
                )?;
                for (seq, blake3) in verified {
                    stmt.execute(params![job, seq, blake3])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Per-status counts of a job's files.
    pub async fn counts(&self, job: String) -> Result<Counts, StoreError> {
        self.call(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT status, files, bytes FROM job_counts WHERE job = ?1")?;
            let mut counts = Counts::default();
            let mut rows = stmt.query([job])?;
            while let Some(r) = rows.next()? {
                let status: String = r.get(0)?;
                // Never below zero, even in a database edited by hand.
                let n = r.get::<_, i64>(1)?.max(0) as u64;
                let bytes = r.get::<_, i64>(2)?.max(0) as u64;
                if parse_status(&status) == FileStatus::Deleted {
                    counts.files_deleted += n;
                    continue;
                }
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
                    FileStatus::Pending | FileStatus::Deleted => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64, status: FileStatus) -> NewFile {
        NewFile {
            source: RawPath::new(&format!("/src/{name}")),
            dest: RawPath::new(name),
            size,
            modified: None,
            status,
            reason: None,
        }
    }

    /// `(status, files, bytes)` rows of `sql` for `job`.
    async fn rows(store: &Store, sql: &'static str, job: &str) -> Vec<(String, i64, i64)> {
        let job = job.to_owned();
        store
            .call(move |c| {
                let mut stmt = c.prepare(sql)?;
                let rows = stmt
                    .query_map([job], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                    .collect();
                rows
            })
            .await
            .unwrap()
    }

    /// The counts as a full scan of the job's files gives them.
    async fn recount(store: &Store, job: &str) -> Vec<(String, i64, i64)> {
        rows(store, "SELECT status, COUNT(*), SUM(size) FROM job_files WHERE job = ?1 GROUP BY status ORDER BY status", job).await
    }

    /// The counts the store keeps.
    async fn kept(store: &Store, job: &str) -> Vec<(String, i64, i64)> {
        rows(store, "SELECT status, files, bytes FROM job_counts WHERE job = ?1 AND files > 0 ORDER BY status", job).await
    }

    #[tokio::test]
    async fn kept_counts_follow_every_change_and_fill_in_for_an_older_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bifrost.db");
        let store = Store::open(&path).unwrap();
        store
            .call(|c| {
                c.execute_batch(
                    "INSERT INTO jobs (id, connector, sources, destination, state, concurrency, created, updated)
                     VALUES ('j', 'c', '[]', '{}', 'running', 1, '', ''), ('other', 'c', '[]', '{}', 'running', 1, '', '')",
                )
            })
            .await
            .unwrap();
        let files = vec![
            file("a", 10, FileStatus::Pending),
            file("b", 20, FileStatus::Pending),
            file("c", 30, FileStatus::Pending),
            file("d", 5, FileStatus::Skipped),
        ];
        store.add_files("j".into(), files.clone()).await.unwrap();
        // Already known: ignored, and not counted twice.
        store.add_files("j".into(), files).await.unwrap();
        store
            .add_files("other".into(), vec![file("a", 7, FileStatus::Pending)])
            .await
            .unwrap();
        let finish = |seq, status, size| FileUpdate::Finish {
            seq,
            status,
            size,
            reason: None,
            blake3: None,
        };
        store
            .update_files(
                "j".into(),
                vec![
                    finish(1, FileStatus::Copied, 12),
                    finish(2, FileStatus::Failed, 20),
                    FileUpdate::Attempted { seq: 3 },
                    // Not pending any more: a second result changes nothing.
                    finish(1, FileStatus::Failed, 99),
                ],
            )
            .await
            .unwrap();
        assert_eq!(kept(&store, "j").await, recount(&store, "j").await);
        let c = store.counts("j".into()).await.unwrap();
        assert_eq!(
            (c.files_total, c.files_done, c.files_failed, c.files_skipped),
            (4, 1, 1, 1)
        );
        assert_eq!((c.bytes_total, c.bytes_done), (12 + 20 + 30 + 5, 12 + 5));
        assert_eq!(store.counts("other".into()).await.unwrap().files_total, 1);

        // A database from before the kept counts: they are filled from the files at open.
        store
            .call(|c| {
                c.execute_batch(
                    "DROP TABLE job_counts;
                     UPDATE job_files SET status = 'copied' WHERE seq = 3 AND job = 'j';",
                )
            })
            .await
            .unwrap();
        drop(store);
        // Two processes opening it at once fill the counts once.
        let opens: Vec<_> = (0..2)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || Store::open(&path).map(drop))
            })
            .collect();
        for open in opens {
            open.join().unwrap().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(kept(&store, "j").await, recount(&store, "j").await);
        assert_eq!(store.counts("j".into()).await.unwrap().files_done, 2);

        // A database whose counts an older Bifrost kept by trigger: the trigger is dropped, so
        // a file is not counted twice.
        store
            .call(|c| {
                c.execute_batch(
                    "CREATE TRIGGER job_files_counted AFTER INSERT ON job_files BEGIN
                        INSERT INTO job_counts VALUES (NEW.job, NEW.status, 1, NEW.size)
                        ON CONFLICT (job, status) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
                     END;",
                )
            })
            .await
            .unwrap();
        drop(store);
        let store = Store::open(&path).unwrap();
        store
            .add_files("j".into(), vec![file("e", 1, FileStatus::Pending)])
            .await
            .unwrap();
        assert_eq!(kept(&store, "j").await, recount(&store, "j").await);
        assert_eq!(store.counts("j".into()).await.unwrap().files_total, 5);
    }

    #[tokio::test]
    async fn files_failed_on_a_full_disk_are_pending_again_and_counted_so() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bifrost.db")).unwrap();
        store
            .call(|c| {
                c.execute_batch(
                    r#"INSERT INTO jobs (id, connector, sources, destination, state, concurrency, created, updated)
                     VALUES ('j', 'c', '[]', '{"kind":"folder","path":"/d"}', 'running', 1, '', ''),
                            ('k', 'c', '[]', '{"kind":"folder","path":"/d"}', 'running', 1, '', '')"#,
                )
            })
            .await
            .unwrap();
        let names = [("a", 10), ("b", 20), ("c", 30), ("d", 40)];
        let files = names.map(|(n, size)| file(n, size, FileStatus::Pending));
        store.add_files("j".into(), files.to_vec()).await.unwrap();
        let failed = |seq, size, reason: String| FileUpdate::Finish {
            seq,
            status: FileStatus::Failed,
            size,
            reason: Some(reason),
            blake3: None,
        };
        let full = crate::dest::folder::full::reason(&std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        ));
        let updates = vec![
            failed(1, 10, full),
            failed(2, 20, OLD_DISK_FULL.into()),
            failed(3, 30, "permission denied: no disk full: here".into()),
        ];
        store.update_files("j".into(), updates).await.unwrap();
        assert_eq!(store.retry_disk_full("k".into()).await.unwrap(), 0);
        assert_eq!(store.retry_disk_full("j".into()).await.unwrap(), 2);
        assert_eq!(kept(&store, "j").await, recount(&store, "j").await);
        let pending = store.pending_files("j".into(), 0, 10).await.unwrap();
        let seqs: Vec<i64> = pending.iter().map(|f| f.seq).collect();
        assert_eq!(seqs, [1, 2, 4]);
        assert_eq!(store.counts("j".into()).await.unwrap().files_failed, 1);
        // Nothing left to put back: a second resume changes nothing.
        assert_eq!(store.retry_disk_full("j".into()).await.unwrap(), 0);

        assert_eq!(store.requeue_running("stopping".into()).await.unwrap(), 2);
        let j = store.job("j".into()).await.unwrap().unwrap();
        assert_eq!(
            (j.state, j.reason.as_deref()),
            (JobState::Queued, Some("stopping"))
        );
        assert_eq!(store.unfinished_jobs().await.unwrap().len(), 2);
    }
}
