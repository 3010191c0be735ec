//! The job_files table: each file a scan found, and what became of it.

use mover_proto::api::{FileReport, FileStatus};
use rusqlite::{params, OptionalExtension};

use super::counts::CountChanges;
use super::{Store, StoreError};
use crate::dest::folder::full::{OLD_REASON as OLD_DISK_FULL, PREFIX as DISK_FULL};
use crate::failure::UNRECORDED;
use crate::metrics::Tally;
use crate::raw_path::RawPath;

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
    /// The failure's kind ([`CopyError::kind`](crate::failure::CopyError::kind)), for a file
    /// failed from the start or one whose removal from the destination failed.
    pub kind: Option<&'static str>,
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
        /// The failure's kind ([`CopyError::kind`](crate::failure::CopyError::kind)): set when
        /// it failed, so metrics and reports need not read the reason.
        kind: Option<&'static str>,
        /// BLAKE3 of what was copied.
        blake3: Option<String>,
    },
    /// One more failed attempt; it stays pending.
    Attempted {
        /// Its number within the job.
        seq: i64,
    },
}

pub(super) fn status_str(s: FileStatus) -> &'static str {
    match s {
        FileStatus::Pending => "pending",
        FileStatus::Copied => "copied",
        FileStatus::Failed => "failed",
        FileStatus::Skipped => "skipped",
        FileStatus::Deleted => "deleted",
    }
}

pub(super) fn parse_status(s: &str) -> FileStatus {
    match s {
        "copied" => FileStatus::Copied,
        "failed" => FileStatus::Failed,
        "skipped" => FileStatus::Skipped,
        "deleted" => FileStatus::Deleted,
        _ => FileStatus::Pending,
    }
}

impl Store {
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
                    "INSERT OR IGNORE INTO job_files (job, seq, source, source_b64, dest, dest_b64, size, modified, status, reason, kind)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
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
                        f.reason,
                        f.kind
                    ])?;
                    if inserted > 0 {
                        counts.add(f.status, 1, f.size as i64);
                        if f.status != FileStatus::Pending {
                            settled.push((f.status, f.size, f.kind));
                        }
                    }
                }
            }
            commit_counted(tx, &job, counts, settled, &tally)
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
                        kind: None,
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
                    "UPDATE job_files SET status = ?3, size = ?4, reason = ?5, blake3 = ?6, kind = ?7 WHERE job = ?1 AND seq = ?2 AND status = 'pending'",
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
                            kind,
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
                                blake3,
                                kind
                            ])?;
                            counts.add(FileStatus::Pending, -1, -was);
                            counts.add(status, 1, size as i64);
                            settled.push((status, size, kind));
                        }
                        FileUpdate::Attempted { seq } => {
                            attempted.execute(params![job, seq])?;
                        }
                    }
                }
            }
            commit_counted(tx, &job, counts, settled, &tally)
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

    /// Puts the job's files that failed on a full destination back to pending, so that a job
    /// resumed once space is freed copies them (each resumes from its temporary file). How
    /// many there were.
    pub async fn retry_disk_full(&self, job: String) -> Result<u64, StoreError> {
        self.call(move |c| {
            let tx = c.transaction()?;
            let (files, bytes): (i64, i64) = tx.query_row(
                &format!("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM job_files WHERE {FAILED_DISK_FULL}"),
                params![job, DISK_FULL.len(), DISK_FULL, OLD_DISK_FULL],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            if files > 0 {
                tx.execute(
                    &format!("UPDATE job_files SET status = 'pending', reason = NULL, kind = NULL WHERE {FAILED_DISK_FULL}"),
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

    /// A job's per-file report, optionally only one status.
    pub async fn files(
        &self,
        job: String,
        status: Option<FileStatus>,
    ) -> Result<Vec<FileReport>, StoreError> {
        let files = self.files_exact(job, status).await?;
        Ok(files.into_iter().map(|(f, _)| f).collect())
    }

    /// [`Store::files`], each with its destination's exact bytes (a lossy `destination` loses
    /// what a name that is not UTF-8 holds).
    pub async fn files_exact(
        &self,
        job: String,
        status: Option<FileStatus>,
    ) -> Result<Vec<(FileReport, RawPath)>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT source, dest, size, status, reason, blake3, dest_b64, kind FROM job_files WHERE job = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY seq",
            )?;
            let rows = stmt
                .query_map(params![job, status.map(status_str)], |r| {
                    let destination: String = r.get(1)?;
                    let b64: String = r.get(6)?;
                    let exact = RawPath::from_stored(destination.clone(), Some(&b64));
                    let status = parse_status(&r.get::<_, String>(3)?);
                    let kind = r.get::<_, Option<String>>(7)?.or_else(|| {
                        (status == FileStatus::Failed).then(|| UNRECORDED.to_owned())
                    });
                    let report = FileReport {
                        source: r.get(0)?,
                        destination,
                        size: r.get::<_, i64>(2)? as u64,
                        status,
                        reason: r.get(4)?,
                        kind,
                        blake3: r.get(5)?,
                    };
                    Ok((report, exact))
                })?
                .collect();
            rows
        })
        .await
    }
}

/// The job's files (`?1`) that failed on a full destination: by their kind, or, in rows from
/// before kinds were kept, by their reason (`?3`, `?2` bytes long, starts it; or it is `?4`).
const FAILED_DISK_FULL: &str = "job = ?1 AND status = 'failed' AND (kind = 'disk_full'
    OR (kind IS NULL AND (substr(reason, 1, ?2) = ?3 OR reason = ?4)))";

/// Files that reached a final status in a transaction: status, size and failure kind.
type Settled = Vec<(FileStatus, u64, Option<&'static str>)>;

/// Commits `tx` with its count changes, then tallies the files it settled for `/metrics`: once
/// committed, so a rolled-back batch is not counted.
fn commit_counted(
    tx: rusqlite::Transaction<'_>,
    job: &str,
    counts: CountChanges,
    settled: Settled,
    tally: &Tally,
) -> rusqlite::Result<()> {
    counts.apply(&tx, job)?;
    tx.commit()?;
    for (status, size, kind) in settled {
        tally.record(status, size, kind);
    }
    Ok(())
}
