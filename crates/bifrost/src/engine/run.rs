//! A job's life: mark it running, scan beside the first pass, repeat passes until every file is settled, then finish or pause it.

use std::sync::Arc;
use std::time::Duration;

use mover_proto::api::JobState;

use super::pass::{copy_pass, Pass};
use super::scan::{scan_all, Scanning};
use super::sync::{arm_sync, schedule_pass};
use super::{limit, locked};
use crate::dest::folder::full;
use crate::metrics::Meter;
use crate::store::StoreError;
use crate::App;

/// Runs job `id` until it finishes, pauses, fails or Bifrost drains.
pub(super) async fn run(app: &Arc<App>, id: &str, meter: &Arc<Meter>) -> Result<(), StoreError> {
    let Some(mut job) = app.store.job(id.to_owned()).await? else {
        return Ok(());
    };
    if job.state.is_finished() || job.state == JobState::Paused {
        return Ok(());
    }
    app.store
        .set_job_state(id.to_owned(), JobState::Running, None)
        .await?;
    // Paused on a full destination and resumed: the files that hit it are tried again, each
    // from its temporary file.
    let retried = app.store.retry_disk_full(id.to_owned()).await?;
    if retried > 0 {
        tracing::info!(job = %id, files = retried, "files that met a full destination are tried again");
    }
    let limiter = job
        .plan
        .bandwidth_limit
        .map(|b| Arc::new(limit::Limiter::new(b)));
    let mut outcome = None;
    if !job.scanned {
        // The first pass copies what the scan has found so far and waits for more: copying
        // starts with the first few thousand files, not after the whole listing (a fifth of a
        // 20,000-file job's time on loopback; longer where each folder is a WAN round trip).
        let (found, following) = tokio::sync::watch::channel(Scanning::Going);
        // A drain stops the scan where it is: the next start scans again (a scan is safe to
        // repeat), and the pass beside it stops once its files in flight are done.
        let scanning = async {
            tokio::select! {
                scanned = scan_all(app, &job, found) => scanned.map(Some),
                _ = app.engine.drain.begun() => Ok(None),
            }
        };
        let (scanned, first) = tokio::join!(
            scanning,
            copy_pass(app, &job, meter, limiter.as_ref(), Some(following))
        );
        let Some(scanned) = scanned? else {
            first?;
            return Ok(());
        };
        if let Some(message) = scanned {
            first?;
            app.store
                .set_job_state(id.to_owned(), JobState::Failed, Some(message))
                .await?;
            return Ok(());
        }
        job.scanned = true;
        outcome = Some(first?);
    }
    loop {
        let pass = match outcome.take() {
            Some(pass) => pass,
            None => copy_pass(app, &job, meter, limiter.as_ref(), None).await?,
        };
        match pass {
            Pass::Finished => break,
            Pass::DiskFull => {
                app.store
                    .set_job_state(
                        id.to_owned(),
                        JobState::Paused,
                        Some(full::JOB_REASON.into()),
                    )
                    .await?;
                return Ok(());
            }
            // Left running: the drain marks it queued for the next start.
            Pass::Drained => return Ok(()),
            Pass::Retry => {
                // A moment first: the agent may still be online but stopping or busy.
                let wait = async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    app.registry.wait_online(&job.connector).await;
                };
                tokio::select! {
                    _ = wait => {}
                    _ = app.engine.drain.begun() => return Ok(()),
                }
            }
        }
    }
    let counts = app.store.counts(id.to_owned()).await?;
    let state = if counts.files_failed > 0 {
        JobState::CompletedWithErrors
    } else {
        JobState::Completed
    };
    tracing::info!(job = %id, files = counts.files_done, failed = counts.files_failed, skipped = counts.files_skipped, bytes = counts.bytes_done, state = state.as_str(), "job finished");
    app.store.set_job_state(id.to_owned(), state, None).await?;
    if job.plan.keep_in_sync {
        let changed = locked(&app.engine.resync).remove(id);
        if changed {
            schedule_pass(app, id.to_owned());
        }
        arm_sync(app, &job.connector).await;
    }
    Ok(())
}
