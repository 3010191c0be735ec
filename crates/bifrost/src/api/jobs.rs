//! `/api/v1/jobs`: create, list, inspect, pause, resume, cancel and re-run transfer jobs.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json as Reply;
use http::StatusCode;
use mover_proto::api::{CreateJob, Destination, FileReportPage, FileStatus, Job, JobState};
use mover_proto::{route, Entry};
use serde::Deserialize;

use super::connectors::online_client;
use super::{ApiError, Json, Query};
use crate::engine;
use crate::store::{new_id, now, JobRow};
use crate::App;

const MAX_SOURCES: usize = 10_000;

/// The API view of a job, with live byte progress.
pub async fn view(app: &App, row: JobRow) -> Result<Job, ApiError> {
    let counts = app.store.counts(row.id.clone()).await?;
    let inflight = app.engine.inflight(&row.id);
    Ok(Job {
        files_total: counts.files_total,
        files_done: counts.files_done,
        files_failed: counts.files_failed,
        files_skipped: counts.files_skipped,
        bytes_total: counts.bytes_total,
        bytes_done: (counts.bytes_done + inflight).min(counts.bytes_total.max(counts.bytes_done)),
        id: row.id,
        connector: row.connector,
        sources: row.sources,
        destination: row.destination,
        state: row.state,
        reason: row.reason,
        concurrency: row.concurrency,
        rerun_of: row.rerun_of,
        created: row.created,
        updated: row.updated,
    })
}

async fn row(app: &App, id: &str) -> Result<JobRow, ApiError> {
    app.store
        .job(id.to_owned())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// `POST /jobs`.
pub async fn create(
    State(app): State<Arc<App>>,
    Json(req): Json<CreateJob>,
) -> Result<(StatusCode, Reply<Job>), ApiError> {
    if req.sources.is_empty() {
        return Err(ApiError::bad_request("a job needs at least one source"));
    }
    if req.sources.len() > MAX_SOURCES {
        return Err(ApiError::bad_request(format!(
            "a job takes at most {MAX_SOURCES} sources"
        )));
    }
    let concurrency = req.concurrency.unwrap_or(8);
    if !(1..=64).contains(&concurrency) {
        return Err(ApiError::bad_request(
            "concurrency must be between 1 and 64",
        ));
    }
    let Destination::Folder { path } = &req.destination;
    let dest = std::path::Path::new(path);
    if !dest.is_absolute() {
        return Err(ApiError::bad_request(format!(
            "destination {path:?} is not an absolute path"
        )));
    }
    std::fs::create_dir_all(dest)
        .map_err(|e| ApiError::bad_request(format!("cannot create destination {path:?}: {e}")))?;
    let client = online_client(&app, &req.connector).await?;
    let mut names = HashSet::new();
    for source in &req.sources {
        let entry: Entry = client.get_json(route::STAT, &[("path", source)]).await?;
        let name = crate::raw_path::RawPath::new(source).base_name();
        if name.0.is_empty() {
            return Err(ApiError::bad_request(format!(
                "source {source:?} has no name to copy it under; choose a folder inside it"
            )));
        }
        if !names.insert(name.clone()) {
            return Err(ApiError::bad_request(format!(
                "two sources are named {:?}; they would land in the same place",
                name.lossy()
            )));
        }
        tracing::debug!(%source, kind = ?entry.kind, "job source");
    }
    let id = insert(
        &app,
        req.connector,
        req.sources,
        req.destination,
        concurrency,
        None,
    )
    .await?;
    let job = view(&app, row(&app, &id).await?).await?;
    Ok((StatusCode::CREATED, Reply(job)))
}

async fn insert(
    app: &Arc<App>,
    connector: String,
    sources: Vec<String>,
    destination: Destination,
    concurrency: u32,
    rerun_of: Option<String>,
) -> Result<String, ApiError> {
    let id = new_id();
    let created = now();
    app.store
        .insert_job(JobRow {
            id: id.clone(),
            connector,
            sources,
            destination,
            state: JobState::Queued,
            reason: None,
            concurrency,
            scanned: false,
            rerun_of,
            updated: created.clone(),
            created,
        })
        .await?;
    tracing::info!(job = %id, "job created");
    engine::start(app, id.clone());
    Ok(id)
}

/// `GET /jobs`.
pub async fn list(State(app): State<Arc<App>>) -> Result<Reply<Vec<Job>>, ApiError> {
    let mut out = Vec::new();
    for r in app.store.jobs().await? {
        out.push(view(&app, r).await?);
    }
    Ok(Reply(out))
}

/// `GET /jobs/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(view(&app, row(&app, &id).await?).await?))
}

/// Query of the per-file report.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    #[serde(default)]
    status: Option<FileStatus>,
}

/// `GET /jobs/{id}/files[?status=copied|failed|skipped|pending]`.
pub async fn files(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<FilesQuery>,
) -> Result<Reply<FileReportPage>, ApiError> {
    row(&app, &id).await?;
    Ok(Reply(FileReportPage {
        files: app.store.files(id, q.status).await?,
    }))
}

/// `POST /jobs/{id}/rerun`: a new job over the same sources that copies only new or changed files.
pub async fn rerun(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Reply<Job>), ApiError> {
    let old = row(&app, &id).await?;
    if !old.state.is_finished() {
        return Err(ApiError::conflict(format!(
            "job {id} is still {}; re-run it once it has finished",
            old.state.as_str()
        )));
    }
    online_client(&app, &old.connector).await?;
    let new = insert(
        &app,
        old.connector,
        old.sources,
        old.destination,
        old.concurrency,
        Some(id),
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Reply(view(&app, row(&app, &new).await?).await?),
    ))
}

/// `POST /jobs/{id}/pause`.
pub async fn pause(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    let r = row(&app, &id).await?;
    if !matches!(r.state, JobState::Queued | JobState::Running) {
        return Err(ApiError::conflict(format!(
            "job {id} is {}, not running",
            r.state.as_str()
        )));
    }
    engine::stop(&app, &id).await;
    app.store
        .set_job_state(
            id.clone(),
            JobState::Paused,
            Some("paused by an admin".into()),
        )
        .await?;
    Ok(Reply(view(&app, row(&app, &id).await?).await?))
}

/// `POST /jobs/{id}/resume`.
pub async fn resume(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    let r = row(&app, &id).await?;
    if r.state != JobState::Paused {
        return Err(ApiError::conflict(format!(
            "job {id} is {}, not paused",
            r.state.as_str()
        )));
    }
    app.store
        .set_job_state(id.clone(), JobState::Queued, None)
        .await?;
    engine::start(&app, id.clone());
    Ok(Reply(view(&app, row(&app, &id).await?).await?))
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    let r = row(&app, &id).await?;
    if r.state.is_finished() {
        return Err(ApiError::conflict(format!("job {id} has already finished")));
    }
    engine::stop(&app, &id).await;
    app.store
        .set_job_state(
            id.clone(),
            JobState::Cancelled,
            Some("cancelled by an admin".into()),
        )
        .await?;
    Ok(Reply(view(&app, row(&app, &id).await?).await?))
}
