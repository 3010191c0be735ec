//! The job_counts table: per-status file and byte counts, kept in the transaction that changes the files.

use mover_proto::api::FileStatus;
use rusqlite::params;

use super::files::{parse_status, status_str};
use super::{Store, StoreError};

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

/// Changes to one job's kept counts (`job_counts`), written in the transaction that changed
/// its files.
#[derive(Default)]
pub(super) struct CountChanges(std::collections::HashMap<&'static str, (i64, i64)>);

impl CountChanges {
    pub(super) fn add(&mut self, status: FileStatus, files: i64, bytes: i64) {
        let c = self.0.entry(status_str(status)).or_default();
        c.0 += files;
        c.1 += bytes;
    }

    pub(super) fn apply(self, tx: &rusqlite::Transaction<'_>, job: &str) -> rusqlite::Result<()> {
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

impl Store {
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
}

#[cfg(test)]
mod tests {
    use mover_proto::api::JobState;

    use super::*;
    use crate::dest::folder::full::OLD_REASON as OLD_DISK_FULL;
    use crate::failure::CopyError;
    use crate::raw_path::RawPath;
    use crate::store::{FileUpdate, NewFile};

    fn file(name: &str, size: u64, status: FileStatus) -> NewFile {
        NewFile {
            source: RawPath::new(&format!("/src/{name}")),
            dest: RawPath::new(name),
            size,
            modified: None,
            status,
            reason: None,
            kind: None,
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
            kind: None,
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
        let failed = |seq, size, e: CopyError| FileUpdate::Finish {
            seq,
            status: FileStatus::Failed,
            size,
            reason: Some(e.to_string()),
            kind: Some(e.kind()),
            blake3: None,
        };
        let full = crate::dest::folder::full::reason(&std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        ));
        let updates = vec![
            failed(1, 10, CopyError::DiskFull(full)),
            failed(2, 20, CopyError::DiskFull("the disk filled up".into())),
            failed(
                3,
                30,
                CopyError::Refused {
                    kind: "permission",
                    message: "permission denied: no disk full: here".into(),
                },
            ),
        ];
        store.update_files("j".into(), updates).await.unwrap();
        assert_eq!(store.tally.failed("disk_full"), 2);
        // A row an older Bifrost recorded, without a kind: found by its reason.
        store
            .call(|c| {
                c.execute(
                    "UPDATE job_files SET kind = NULL, reason = ?1 WHERE job = 'j' AND seq = 2",
                    [OLD_DISK_FULL],
                )
            })
            .await
            .unwrap();
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
