//! One copy pass: every pending file once, a file or a batch of small ones per task.

use std::sync::Arc;

use tokio::task::JoinSet;

use super::scan::Scanning;
use super::tally::{settle, Flags};
use super::{copy, limit, many};
use crate::dest::folder::Folder;
use crate::dest::Destination as Dest;
use crate::failure::CopyError;
use crate::metrics::Meter;
use crate::store::{JobRow, StoreError};
use crate::App;
use mover_proto::api::Destination;

/// Pending files fetched from the database at a time.
const BATCH: u32 = 512;

/// How a pass ended, and so what the job does next.
pub(super) enum Pass {
    Finished,
    Retry,
    DiskFull,
    /// Bifrost is draining: the files in flight are done, the others wait for the next start.
    Drained,
    /// The destination cannot be used (deleted, or its settings make no client): the job fails.
    Unusable(String),
}

/// Copies every pending file once, `concurrency` files or batches of small files at a time.
/// With `following`, the pass runs beside the job's first scan: having caught up with it, it
/// waits for more files until the scan ends.
pub(super) async fn copy_pass(
    app: &Arc<App>,
    job: &JobRow,
    meter: &Arc<Meter>,
    limiter: Option<&Arc<limit::Limiter>>,
    following: Option<tokio::sync::watch::Receiver<Scanning>>,
) -> Result<Pass, StoreError> {
    match &job.destination {
        Destination::Folder { .. } => {
            let dest = Arc::new(folder_of(job));
            copy_pass_into(app, job, dest, meter, limiter, following).await
        }
        Destination::Stored { id, .. } => match super::objects::objects_of(app, job, id).await {
            Ok(dest) => copy_pass_into(app, job, Arc::new(dest), meter, limiter, following).await,
            Err(reason) => Ok(Pass::Unusable(reason)),
        },
    }
}

/// The folder destination of a job.
pub(super) fn folder_of(job: &JobRow) -> Folder {
    Folder::new(crate::layout::roots(&job.destination, &job.plan.mappings).into())
}

/// [`copy_pass`] into `dest`.
async fn copy_pass_into<D: Dest>(
    app: &Arc<App>,
    job: &JobRow,
    dest: Arc<D>,
    meter: &Arc<Meter>,
    limiter: Option<&Arc<limit::Limiter>>,
    mut following: Option<tokio::sync::watch::Receiver<Scanning>>,
) -> Result<Pass, StoreError> {
    let mut after = 0;
    let mut tasks: JoinSet<many::Outcomes> = JoinSet::new();
    let mut flags = Flags::default();
    let mode = copy::Mode {
        job: job.id.clone(),
        store: app.store.clone(),
        rerun: job.rerun_of.is_some(),
        compare: job.plan.compare,
    };
    let mut batcher = many::Batcher::default();
    'pages: loop {
        // Read before the query: a commit after it wakes the wait below.
        let scanning = following.as_mut().map(|f| *f.borrow_and_update());
        if scanning == Some(Scanning::Stopped) {
            break;
        }
        let page = app
            .store
            .pending_files(job.id.clone(), after, BATCH)
            .await?;
        if let (true, Some(f)) = (page.is_empty(), following.as_mut()) {
            if scanning == Some(Scanning::Going) {
                // Caught up with the scan: results are recorded while it finds more.
                let open = loop {
                    tokio::select! {
                        changed = f.changed() => break changed.is_ok(),
                        Some(r) = tasks.join_next() => settle(app, job, r, &mut flags, dest.kind()).await?,
                        _ = app.engine.drain.begun() => break true,
                    }
                };
                if !open {
                    // The scan always says how it ended before it goes; a plain pass if not.
                    following = None;
                }
                if flags.retry || flags.disk_full || app.engine.drain.is_draining() {
                    flags.drained = app.engine.drain.is_draining();
                    break;
                }
                continue;
            }
        }
        let last_page = page.is_empty();
        let mut work = Vec::new();
        for file in page {
            after = file.seq;
            if many::batchable(&file, &mode, limiter.is_some()) {
                work.extend(batcher.push(file).map(Work::Many));
            } else {
                work.push(Work::One(file));
            }
        }
        if last_page {
            work.extend(batcher.take().map(Work::Many));
        }
        for w in work {
            while tasks.len() >= job.concurrency as usize {
                if let Some(r) = tasks.join_next().await {
                    settle(app, job, r, &mut flags, dest.kind()).await?;
                }
            }
            if flags.disk_full {
                break 'pages;
            }
            // Checked here, after the wait for a free slot: no file starts once a drain began.
            if app.engine.drain.is_draining() {
                flags.drained = true;
                break 'pages;
            }
            let Some(client) = app.registry.by_connector(&job.connector).map(|l| l.client) else {
                flags.retry = true;
                break 'pages;
            };
            let (meter, limiter, mode) = (meter.clone(), limiter.cloned(), mode.clone());
            let dest = dest.clone();
            let files = match &w {
                Work::Many(files) => files.clone(),
                Work::One(file) => vec![file.clone()],
            };
            tasks.spawn(guarded(files, async move {
                match w {
                    Work::Many(files) => {
                        many::copy_many(&client, &*dest, files, &meter, &mode).await
                    }
                    Work::One(file) => {
                        let limiter = limiter.as_deref();
                        let result =
                            copy::copy_file(&client, &*dest, &file, &meter, limiter, &mode).await;
                        vec![(file, result)]
                    }
                }
            }));
        }
        if last_page || flags.retry || flags.disk_full {
            break;
        }
    }
    while let Some(r) = tasks.join_next().await {
        settle(app, job, r, &mut flags, dest.kind()).await?;
    }
    Ok(if flags.disk_full {
        Pass::DiskFull
    } else if flags.drained {
        Pass::Drained
    } else if flags.retry {
        Pass::Retry
    } else {
        Pass::Finished
    })
}

/// Runs one task of a pass. A panic inside it (a bug) becomes a retryable failure of each of
/// its files: they count attempts and end failed with the panic's message, where a lost task
/// would leave them pending and tried again forever.
async fn guarded(
    files: Vec<crate::store::PendingFile>,
    work: impl std::future::Future<Output = many::Outcomes>,
) -> many::Outcomes {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(outcomes) => outcomes,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            tracing::error!(files = files.len(), panic = %what, "a copy task panicked");
            let reason = format!("internal error while copying: {what}");
            files
                .into_iter()
                .map(|f| (f, Err(CopyError::Internal(reason.clone()))))
                .collect()
        }
    }
}

/// One task of a pass: a file on its own, or a batch of small ones.
enum Work {
    One(crate::store::PendingFile),
    Many(Vec<crate::store::PendingFile>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PendingFile;

    fn pending(seq: i64) -> PendingFile {
        PendingFile::example(seq, 1)
    }

    #[tokio::test]
    async fn a_panicking_task_fails_each_of_its_files_for_a_retry() {
        let files = vec![pending(1), pending(2)];
        let out = guarded(files, async {
            if true {
                panic!("index out of bounds");
            }
            Vec::new()
        })
        .await;
        let seqs: Vec<i64> = out.iter().map(|(f, _)| f.seq).collect();
        assert_eq!(seqs, [1, 2]);
        for (_, result) in out {
            let Err(CopyError::Internal(r)) = result else {
                panic!("expected a retry");
            };
            assert_eq!(r, "internal error while copying: index out of bounds");
        }
    }

    #[tokio::test]
    async fn a_task_that_finishes_keeps_its_outcomes() {
        let out = guarded(vec![pending(1)], async {
            vec![(pending(1), Err(CopyError::Vanished))]
        })
        .await;
        assert!(matches!(&out[..], [(_, Err(CopyError::Vanished))]));
    }
}
