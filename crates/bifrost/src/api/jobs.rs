//! `/api/v1/jobs`: create, preview, list, inspect, pause, resume, cancel and re-run transfer
//! jobs, over [`crate::jobs`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::{Extension, Json as Reply};
use http::StatusCode;
use mover_proto::api::{CreateJob, FileReportPage, FileStatus, Job, Preview, SyncRequest};
use mover_proto::ErrorBody;
use serde::Deserialize;

use super::audit::Audited;
use super::auth::Actor;
use super::table::{Access, Entry};
use super::{ApiError, Json, Query};
use crate::jobs::{self, JobError};
use crate::App;

/// The jobs routes and who may call them.
pub fn routes() -> Vec<Entry> {
    use utoipa_axum::routes;
    use Access::{Operator, Viewer};
    vec![
        Entry::new(Viewer, None, routes!(list)),
        Entry::new(Operator, Some("job.create"), routes!(create)),
        Entry::new(Operator, None, routes!(preview)),
        Entry::new(Viewer, None, routes!(get)),
        Entry::new(Viewer, None, routes!(files)),
        Entry::new(Viewer, None, routes!(files_csv)),
        Entry::new(Operator, Some("job.rerun"), routes!(rerun)),
        Entry::new(Operator, Some("job.sync"), routes!(sync)),
        Entry::new(Operator, Some("job.pause"), routes!(pause)),
        Entry::new(Operator, Some("job.resume"), routes!(resume)),
        Entry::new(Operator, Some("job.cancel"), routes!(cancel)),
    ]
}

impl From<JobError> for ApiError {
    fn from(e: JobError) -> Self {
        let status = match e {
            JobError::NotFound(_) => StatusCode::NOT_FOUND,
            JobError::Invalid(_) => StatusCode::BAD_REQUEST,
            JobError::Conflict(_) => StatusCode::CONFLICT,
            JobError::Forbidden(_) => StatusCode::FORBIDDEN,
            JobError::Connector(e) => return e.into(),
            JobError::Agent(e) => return e.into(),
            JobError::Store(e) => return e.into(),
        };
        ApiError::new(status, e.to_string())
    }
}

/// `POST /jobs`.
#[utoipa::path(post, path = "/api/v1/jobs", tag = "jobs", request_body = CreateJob,
    responses((status = 201, body = Job), (status = 409, body = ErrorBody, description = "the connector is offline or waiting"),
        (status = 502, body = ErrorBody, description = "the agent failed")))]
pub async fn create(
    State(app): State<Arc<App>>,
    Extension(actor): Extension<Actor>,
    Json(req): Json<CreateJob>,
) -> Result<impl IntoResponse, ApiError> {
    let job = jobs::create(&app, req, &actor.name).await?;
    Ok((
        StatusCode::CREATED,
        Extension(Audited::target(&job.id)),
        Reply(job),
    ))
}

/// `POST /jobs/preview`: what a job with this body would copy, counted, without copying.
#[utoipa::path(post, path = "/api/v1/jobs/preview", tag = "jobs", request_body = CreateJob,
    responses((status = 200, body = Preview), (status = 409, body = ErrorBody, description = "the connector is offline or waiting"),
        (status = 502, body = ErrorBody, description = "the agent failed")))]
pub async fn preview(
    State(app): State<Arc<App>>,
    Json(req): Json<CreateJob>,
) -> Result<Reply<Preview>, ApiError> {
    Ok(Reply(jobs::preview(&app, req).await?))
}

/// `GET /jobs`.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "jobs", responses((status = 200, body = Vec<Job>)))]
pub async fn list(State(app): State<Arc<App>>) -> Result<Reply<Vec<Job>>, ApiError> {
    Ok(Reply(jobs::all(&app).await?))
}

/// `GET /jobs/{id}`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}", tag = "jobs", params(("id" = String, Path, description = "The job's id")), responses((status = 200, body = Job)))]
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::get(&app, &id).await?))
}

/// Query of the per-file report.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    /// Only the files in this state.
    #[serde(default)]
    status: Option<FileStatus>,
}

/// `GET /jobs/{id}/files[?status=copied|failed|skipped|pending|deleted]`.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/files", tag = "jobs", params(("id" = String, Path, description = "The job's id"), FilesQuery),
    responses((status = 200, body = FileReportPage)))]
pub async fn files(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<FilesQuery>,
) -> Result<Reply<FileReportPage>, ApiError> {
    Ok(Reply(FileReportPage {
        files: jobs::files(&app, &id, q.status).await?,
    }))
}

/// `GET /jobs/{id}/files.csv[?status=...]`: the report as CSV.
#[utoipa::path(get, path = "/api/v1/jobs/{id}/files.csv", tag = "jobs", params(("id" = String, Path, description = "The job's id"), FilesQuery),
    responses((status = 200, description = "The report as CSV", content_type = "text/csv", body = String)))]
pub async fn files_csv(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<FilesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let out = jobs::csv(jobs::files(&app, &id, q.status).await?);
    let disposition = format!("attachment; filename=\"job-{id}-report.csv\"");
    Ok((
        [
            (
                http::header::CONTENT_TYPE,
                "text/csv; charset=utf-8".to_owned(),
            ),
            (http::header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    ))
}

/// `POST /jobs/{id}/rerun`: a new job over the same sources that copies only new or changed files.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/rerun", tag = "jobs", params(("id" = String, Path, description = "The job's id")),
    responses((status = 201, body = Job), (status = 409, body = ErrorBody, description = "the job is not finished, or its connector is offline"),
        (status = 502, body = ErrorBody, description = "the agent failed")))]
pub async fn rerun(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Extension(actor): Extension<Actor>,
) -> Result<impl IntoResponse, ApiError> {
    let job = jobs::rerun(&app, &id, &actor.name).await?;
    let note = Audited::target(&job.id).detail(format!("re-run of {id}"));
    Ok((StatusCode::CREATED, Extension(note), Reply(job)))
}

/// `POST /jobs/{id}/sync {"keep_in_sync"}`: keep a job in sync until cut-over, or stop.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/sync", tag = "jobs", params(("id" = String, Path, description = "The job's id")), request_body = SyncRequest,
    responses((status = 200, body = Job), (status = 409, body = ErrorBody, description = "the job cannot be kept in sync now")))]
pub async fn sync(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<SyncRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let job = jobs::set_sync(&app, &id, req.keep_in_sync).await?;
    let on = if req.keep_in_sync { "on" } else { "off" };
    let note = Audited::default().detail(format!("keep in sync {on}"));
    Ok((Extension(note), Reply(job)))
}

/// `POST /jobs/{id}/pause`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/pause", tag = "jobs", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = Job), (status = 409, body = ErrorBody, description = "the job is not running")))]
pub async fn pause(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Extension(actor): Extension<Actor>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::pause(&app, &id, &actor.name).await?))
}

/// `POST /jobs/{id}/resume`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/resume", tag = "jobs", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = Job), (status = 409, body = ErrorBody, description = "the job is not paused")))]
pub async fn resume(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::resume(&app, &id).await?))
}

/// `POST /jobs/{id}/cancel`.
#[utoipa::path(post, path = "/api/v1/jobs/{id}/cancel", tag = "jobs", params(("id" = String, Path, description = "The job's id")),
    responses((status = 200, body = Job), (status = 409, body = ErrorBody, description = "the job is finished")))]
pub async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Extension(actor): Extension<Actor>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::cancel(&app, &id, &actor.name).await?))
}
