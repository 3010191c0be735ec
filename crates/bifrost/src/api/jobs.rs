//! `/api/v1/jobs`: create, preview, list, inspect, pause, resume, cancel and re-run transfer
//! jobs, over [`crate::jobs`].

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json as Reply;
use http::StatusCode;
use mover_proto::api::{CreateJob, FileReportPage, FileStatus, Job, Preview, SyncRequest};
use serde::Deserialize;

use super::{ApiError, Json, Query};
use crate::jobs::{self, JobError};
use crate::App;

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
pub async fn create(
    State(app): State<Arc<App>>,
    Json(req): Json<CreateJob>,
) -> Result<(StatusCode, Reply<Job>), ApiError> {
    Ok((StatusCode::CREATED, Reply(jobs::create(&app, req).await?)))
}

/// `POST /jobs/preview`: what a job with this body would copy, counted, without copying.
pub async fn preview(
    State(app): State<Arc<App>>,
    Json(req): Json<CreateJob>,
) -> Result<Reply<Preview>, ApiError> {
    Ok(Reply(jobs::preview(&app, req).await?))
}

/// `GET /jobs`.
pub async fn list(State(app): State<Arc<App>>) -> Result<Reply<Vec<Job>>, ApiError> {
    Ok(Reply(jobs::all(&app).await?))
}

/// `GET /jobs/{id}`.
pub async fn get(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::get(&app, &id).await?))
}

/// Query of the per-file report.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    #[serde(default)]
    status: Option<FileStatus>,
}

/// `GET /jobs/{id}/files[?status=copied|failed|skipped|pending|deleted]`.
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
pub async fn rerun(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Reply<Job>), ApiError> {
    Ok((StatusCode::CREATED, Reply(jobs::rerun(&app, &id).await?)))
}

/// `POST /jobs/{id}/sync {"keep_in_sync"}`: keep a job in sync until cut-over, or stop.
pub async fn sync(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<SyncRequest>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::set_sync(&app, &id, req.keep_in_sync).await?))
}

/// `POST /jobs/{id}/pause`.
pub async fn pause(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::pause(&app, &id).await?))
}

/// `POST /jobs/{id}/resume`.
pub async fn resume(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::resume(&app, &id).await?))
}

/// `POST /jobs/{id}/cancel`.
pub async fn cancel(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Reply<Job>, ApiError> {
    Ok(Reply(jobs::cancel(&app, &id).await?))
}
