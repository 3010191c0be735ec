//! Job operations: create, preview, list, inspect, pause, resume, cancel, re-run and keep in
//! sync; the HTTP API and the console call these and map [`JobError`] to answers.

mod create;
mod report;

pub use create::{create, preview};
pub use report::{csv, csv_field, files};

use std::sync::Arc;

use mover_proto::api::{Job, JobState};

use crate::agent_client::AgentError;
use crate::allowed_roots::{self, RootsError};
use crate::connectors::{online_client, ConnectorError};
use crate::engine;
use crate::store::{JobRow, StoreError};
use crate::App;

/// Why a job operation failed; each says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// No job has this id.
    #[error("no job {0}")]
    NotFound(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// The job's state does not allow it.
    #[error("{0}")]
    Conflict(String),
    /// A folder it would write in is outside the allowed destination roots.
    #[error("{0}")]
    Forbidden(String),
    /// The job's connector cannot serve it.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The agent refused or failed.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<RootsError> for JobError {
    fn from(e: RootsError) -> Self {
        match e {
            RootsError::Invalid(m) => JobError::Invalid(m),
            RootsError::Forbidden(m) => JobError::Forbidden(m),
            RootsError::Store(e) => JobError::Store(e),
        }
    }
}

/// Refuses unless the folders job `r` writes in are inside the allowed destination roots: they
/// may have been set, or narrowed, since it was created.
async fn within_roots(app: &App, r: &JobRow) -> Result<(), JobError> {
    let folders = allowed_roots::folders(&r.destination, &r.plan.mappings);
    Ok(allowed_roots::check(&app.store, folders).await?)
}

/// The API view of a job, with live byte progress.
pub async fn view(app: &App, row: JobRow) -> Result<Job, StoreError> {
    let counts = app.store.counts(row.id.clone()).await?;
    let inflight = app.engine.inflight(&row.id);
    Ok(Job {
        files_total: counts.files_total,
        files_done: counts.files_done,
        files_failed: counts.files_failed,
        files_skipped: counts.files_skipped,
        files_deleted: counts.files_deleted,
        bytes_total: counts.bytes_total,
        bytes_done: (counts.bytes_done + inflight).min(counts.bytes_total.max(counts.bytes_done)),
        id: row.id,
        connector: row.connector,
        sources: row.sources,
        destination: row.destination,
        mappings: row.plan.mappings,
        filters: row.plan.filters,
        state: row.state,
        reason: row.reason,
        concurrency: row.concurrency,
        bandwidth_limit: row.plan.bandwidth_limit,
        delete_removed: row.plan.delete_removed,
        compare: row.plan.compare,
        keep_in_sync: row.plan.keep_in_sync,
        rerun_of: row.rerun_of,
        started_by: row.started_by,
        created: row.created,
        updated: row.updated,
    })
}

/// Job `id`'s record.
async fn row(app: &App, id: &str) -> Result<JobRow, JobError> {
    app.store
        .job(id.to_owned())
        .await?
        .ok_or_else(|| JobError::NotFound(id.to_owned()))
}

/// Every job, newest first.
pub async fn all(app: &App) -> Result<Vec<Job>, JobError> {
    let mut out = Vec::new();
    for r in app.store.jobs().await? {
        out.push(view(app, r).await?);
    }
    Ok(out)
}

/// Job `id`.
pub async fn get(app: &App, id: &str) -> Result<Job, JobError> {
    Ok(view(app, row(app, id).await?).await?)
}

/// Starts a re-run of finished job `id`, a new job over the same sources that copies only new
/// or changed files.
pub async fn rerun(app: &Arc<App>, id: &str, started_by: &str) -> Result<Job, JobError> {
    let old = row(app, id).await?;
    if !old.state.is_finished() {
        return Err(JobError::Conflict(format!(
            "job {id} is still {}; re-run it once it has finished",
            old.state.as_str()
        )));
    }
    within_roots(app, &old).await?;
    online_client(app, &old.connector).await?;
    let new = engine::rerun(app, old, Some(started_by.to_owned())).await?;
    get(app, &new).await
}

/// Keeps job `id` in sync (each change at its sources starts the next pass) until cut-over,
/// or stops doing so.
pub async fn set_sync(app: &App, id: &str, keep_in_sync: bool) -> Result<Job, JobError> {
    let mut r = row(app, id).await?;
    // Turning it off (cut-over) is always allowed: it stops writing.
    if keep_in_sync {
        within_roots(app, &r).await?;
    }
    r.plan.keep_in_sync = keep_in_sync;
    app.store.set_plan(id.to_owned(), r.plan.clone()).await?;
    tracing::info!(job = %id, keep_in_sync, "keep in sync changed");
    engine::arm_sync(app, &r.connector).await;
    get(app, id).await
}

/// Pauses queued or running job `id`.
pub async fn pause(app: &App, id: &str, by: &str) -> Result<Job, JobError> {
    let r = row(app, id).await?;
    if !matches!(r.state, JobState::Queued | JobState::Running) {
        return Err(JobError::Conflict(format!(
            "job {id} is {}, not running",
            r.state.as_str()
        )));
    }
    stop_as(app, id, JobState::Paused, &format!("paused by {by}")).await
}

/// Resumes paused job `id`.
pub async fn resume(app: &Arc<App>, id: &str) -> Result<Job, JobError> {
    let r = row(app, id).await?;
    if r.state != JobState::Paused {
        return Err(JobError::Conflict(format!(
            "job {id} is {}, not paused",
            r.state.as_str()
        )));
    }
    within_roots(app, &r).await?;
    app.store
        .set_job_state(id.to_owned(), JobState::Queued, None)
        .await?;
    engine::start(app, id.to_owned());
    get(app, id).await
}

/// Cancels job `id` unless it has finished.
pub async fn cancel(app: &App, id: &str, by: &str) -> Result<Job, JobError> {
    let r = row(app, id).await?;
    if r.state.is_finished() {
        return Err(JobError::Conflict(format!("job {id} has already finished")));
    }
    stop_as(app, id, JobState::Cancelled, &format!("cancelled by {by}")).await
}

/// Stops job `id` and records it as `state`, for `reason`.
async fn stop_as(app: &App, id: &str, state: JobState, reason: &str) -> Result<Job, JobError> {
    engine::stop(app, id).await;
    if state == JobState::Cancelled {
        // A paused job resumes its uploads; a cancelled one's would be kept (and billed).
        if let Some(job) = app.store.job(id.to_owned()).await? {
            engine::objects::abort_left(app, &job).await;
        }
    }
    app.store
        .set_job_state(id.to_owned(), state, Some(reason.to_owned()))
        .await?;
    get(app, id).await
}
