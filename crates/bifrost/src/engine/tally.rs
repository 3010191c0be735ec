//! What each file's result means for the job's record of it, and the pass's next step.

use mover_proto::api::FileStatus;

use super::{copy, many};
use crate::failure::{CopyError, Then};
use crate::store::{FileUpdate, JobRow, StoreError};
use crate::App;

/// Attempts per file before it is reported failed.
const MAX_ATTEMPTS: u32 = 5;
/// Times a file that changed while it was read is read again before it is reported.
const CHANGED_RETRIES: u32 = 3;

/// What a pass learnt from its results.
#[derive(Default)]
pub(super) struct Flags {
    /// Some file is to be tried again: another pass follows.
    pub(super) retry: bool,
    /// The destination is full: the job pauses.
    pub(super) disk_full: bool,
    /// Bifrost is draining and files were left unstarted.
    pub(super) drained: bool,
}

/// Records a task's results, in one transaction.
pub(super) async fn settle(
    app: &App,
    job: &JobRow,
    joined: Result<many::Outcomes, tokio::task::JoinError>,
    flags: &mut Flags,
    kind: &'static str,
) -> Result<(), StoreError> {
    let Ok(outcomes) = joined else {
        flags.retry = true;
        return Ok(());
    };
    let updates: Vec<FileUpdate> = outcomes
        .into_iter()
        .filter_map(|(file, result)| update(&job.id, file, result, flags))
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    let (files, bytes) = updates
        .iter()
        .filter_map(|u| match u {
            FileUpdate::Finish {
                status: FileStatus::Copied,
                size,
                ..
            } => Some(*size),
            _ => None,
        })
        .fold((0, 0), |(f, b), size| (f + 1, b + size));
    app.store.update_files(job.id.clone(), updates).await?;
    if files > 0 {
        app.store.tally.landed(kind, files, bytes);
    }
    Ok(())
}

/// What one file's result means for job `job`'s record of it.
fn update(
    job: &str,
    file: crate::store::PendingFile,
    result: Result<copy::Copied, CopyError>,
    flags: &mut Flags,
) -> Option<FileUpdate> {
    let seq = file.seq;
    let e = match result {
        Ok(copy::Copied::Done { size, blake3, note }) => {
            return Some(FileUpdate::Finish {
                seq,
                status: FileStatus::Copied,
                size,
                reason: note,
                kind: None,
                blake3: Some(blake3),
            });
        }
        Ok(copy::Copied::Skipped { reason }) => {
            return Some(FileUpdate::Finish {
                seq,
                status: FileStatus::Skipped,
                size: file.size,
                reason: Some(reason),
                kind: None,
                blake3: None,
            });
        }
        Err(e) => e,
    };
    let (source, reason, kind) = (file.source.lossy(), e.to_string(), e.kind());
    let failed = |reason: String| {
        Some(FileUpdate::Finish {
            seq,
            status: FileStatus::Failed,
            size: file.size,
            reason: Some(reason),
            kind: Some(kind),
            blake3: None,
        })
    };
    match e.then() {
        Then::Fail => {
            tracing::warn!(job = %job, %source, %reason, kind, "file failed");
            failed(reason)
        }
        Then::Pause => {
            flags.disk_full = true;
            failed(reason)
        }
        Then::ReadAgain if file.attempts + 1 > CHANGED_RETRIES => {
            tracing::warn!(job = %job, %source, %reason, "file kept changing while it was read");
            failed(reason)
        }
        Then::ReadAgain => {
            tracing::info!(job = %job, %source, %reason, "file changed while it was read; it will be read again");
            flags.retry = true;
            Some(FileUpdate::Attempted { seq })
        }
        Then::Resume => {
            tracing::info!(job = %job, %source, %reason, "file interrupted; it resumes where it stopped");
            flags.retry = true;
            None
        }
        Then::Retry if file.attempts + 1 >= MAX_ATTEMPTS => {
            tracing::warn!(job = %job, %source, %reason, kind, "file failed after retries");
            failed(reason)
        }
        Then::Retry => {
            tracing::info!(job = %job, %source, %reason, kind, "file will be retried");
            flags.retry = true;
            Some(FileUpdate::Attempted { seq })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewFile, PendingFile, Store};

    #[tokio::test]
    async fn a_failure_is_recorded_counted_and_reported_by_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("bifrost.db")).unwrap();
        store
            .call(|c| {
                c.execute_batch(
                    "INSERT INTO jobs (id, connector, sources, destination, state, concurrency, created, updated)
                     VALUES ('j', 'c', '[]', '{}', 'running', 1, '', '')",
                )
            })
            .await
            .unwrap();
        let f = PendingFile::example(1, 10);
        let found = NewFile {
            source: f.source.clone(),
            dest: f.dest.clone(),
            size: f.size,
            modified: None,
            status: FileStatus::Pending,
            reason: None,
            kind: None,
        };
        store.add_files("j".into(), vec![found]).await.unwrap();
        // Words no text search would take for a service's refusal.
        let e = CopyError::Service {
            status: Some(403),
            message: "put object: AccessDenied".into(),
            transient: false,
        };
        let mut flags = Flags::default();
        let u = update("j", f, Err(e), &mut flags).expect("a result");
        assert!(
            matches!(
                u,
                FileUpdate::Finish {
                    status: FileStatus::Failed,
                    kind: Some("service"),
                    ..
                }
            ),
            "{u:?}"
        );
        store.update_files("j".into(), vec![u]).await.unwrap();
        assert_eq!(store.tally.failed("service"), 1);
        let report = store.files("j".into(), None).await.unwrap();
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json[0]["kind"], "service", "{json}");
        assert_eq!(json[0]["reason"], "put object: AccessDenied", "{json}");
    }
}
