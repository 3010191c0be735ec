//! `/api/v1/jobs`: create, preview, list, inspect, pause, resume, cancel and re-run transfer jobs.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::Json as Reply;
use http::StatusCode;
use mover_proto::api::{
    CreateJob, Destination, FileReportPage, FileStatus, Job, JobState, Preview,
};
use serde::Deserialize;

use super::connectors::online_client;
use super::{ApiError, Json, Query};
use crate::agent_client::AgentClient;
use crate::engine;
use crate::layout::{dest_root, source_name, LayoutError};
use crate::raw_path::RawPath;
use crate::store::{new_id, now, JobRow, Plan};
use crate::walk::{targets, Filter};
use crate::App;

const MAX_SOURCES: usize = 10_000;
/// Slowest bandwidth limit accepted, in bytes per second.
const MIN_BANDWIDTH: u64 = 64 * 1024;

/// The API view of a job, with live byte progress.
pub async fn view(app: &App, row: JobRow) -> Result<Job, ApiError> {
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

/// The request with its destination and mapping roots normalized; a root with `..` is a 400.
fn normalized(mut req: CreateJob) -> Result<CreateJob, ApiError> {
    let bad = |e: LayoutError| ApiError::bad_request(e.to_string());
    if let Destination::Folder { path } = &mut req.destination {
        *path = dest_root(path, "destination").map_err(bad)?;
    }
    for m in &mut req.mappings {
        m.destination = dest_root(&m.destination, "mapping destination").map_err(bad)?;
    }
    Ok(req)
}

/// Checks a job request and the agent's view of its sources; returns the agent client.
async fn check(app: &App, req: &CreateJob) -> Result<(AgentClient, u32, Filter), ApiError> {
    let sources: Vec<&str> = if req.mappings.is_empty() {
        req.sources.iter().map(String::as_str).collect()
    } else {
        if !req.sources.is_empty() {
            return Err(ApiError::bad_request(
                "give either sources or mappings, not both",
            ));
        }
        req.mappings.iter().map(|m| m.source.as_str()).collect()
    };
    if sources.is_empty() {
        return Err(ApiError::bad_request("a job needs at least one source"));
    }
    if sources.len() > MAX_SOURCES {
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
    if req.bandwidth_limit.is_some_and(|b| b < MIN_BANDWIDTH) {
        return Err(ApiError::bad_request(format!(
            "bandwidth_limit is in bytes per second and must be at least {MIN_BANDWIDTH} (64 KiB/s)"
        )));
    }
    let filter = Filter::new(&req.filters).map_err(ApiError::bad_request)?;
    let mut seen = HashSet::new();
    for m in &req.mappings {
        if !seen.insert(m.destination.as_str()) {
            return Err(ApiError::bad_request(format!(
                "two mappings share the destination {:?}",
                m.destination
            )));
        }
    }
    let client = online_client(app, &req.connector).await?;
    let mut names = HashSet::new();
    for source in sources {
        let entry = client.stat(&RawPath::new(source)).await?;
        // A mapped folder's contents land in the mapping's own root: its name is not used.
        let name = match source_name(source) {
            Ok(name) => name,
            Err(_) if !req.mappings.is_empty() => RawPath::new(source),
            Err(e) => return Err(ApiError::bad_request(e.to_string())),
        };
        if req.mappings.is_empty() && !names.insert(name.clone()) {
            return Err(ApiError::bad_request(format!(
                "two sources are named {:?}; they would land in the same place",
                name.lossy()
            )));
        }
        if !req.mappings.is_empty() && entry.kind != mover_proto::EntryKind::Dir {
            return Err(ApiError::bad_request(format!(
                "mapped source {source:?} is not a folder"
            )));
        }
    }
    Ok((client, concurrency, filter))
}

/// `POST /jobs`.
pub async fn create(
    State(app): State<Arc<App>>,
    Json(req): Json<CreateJob>,
) -> Result<(StatusCode, Reply<Job>), ApiError> {
    let mut req = normalized(req)?;
    crate::destinations::for_job(&app, &mut req).await?;
    let (_, concurrency, _) = check(&app, &req).await?;
    let folder = match &req.destination {
        Destination::Folder { path } => Some(path.as_str()),
        Destination::Stored { .. } => None,
    };
    let folders = folder
        .into_iter()
        .chain(req.mappings.iter().map(|m| m.destination.as_str()));
    for folder in folders {
        std::fs::create_dir_all(folder).map_err(|e| {
            ApiError::bad_request(format!("cannot create destination {folder:?}: {e}"))
        })?;
    }
    let plan = Plan {
        mappings: req.mappings,
        filters: req.filters,
        bandwidth_limit: req.bandwidth_limit,
        delete_removed: req.delete_removed,
        compare: req.compare,
        keep_in_sync: req.keep_in_sync,
    };
    let id = insert(
        &app,
        req.connector,
        req.sources,
        req.destination,
        plan,
        concurrency,
        None,
    )
    .await?;
    let job = view(&app, row(&app, &id).await?).await?;
    Ok((StatusCode::CREATED, Reply(job)))
}

/// `POST /jobs/preview`: what a job with this body would copy, counted, without copying.
pub async fn preview(
    State(app): State<Arc<App>>,
    Json(req): Json<CreateJob>,
) -> Result<Reply<Preview>, ApiError> {
    let mut req = normalized(req)?;
    crate::destinations::for_job(&app, &mut req).await?;
    let (client, _, filter) = check(&app, &req).await?;
    let targets = targets(&req.sources, &req.destination, &req.mappings);
    let counter = super::count(&client, &targets, &filter).await?;
    Ok(Reply(Preview {
        files: counter.files,
        folders: counter.folders.saturating_sub(targets.len() as u64),
        bytes: counter.bytes,
        sample: counter.sample,
    }))
}

async fn insert(
    app: &Arc<App>,
    connector: String,
    sources: Vec<String>,
    destination: Destination,
    plan: Plan,
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
            plan,
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
    Ok(Reply(all(&app).await?))
}

/// Every job, newest first.
pub async fn all(app: &App) -> Result<Vec<Job>, ApiError> {
    let mut out = Vec::new();
    for r in app.store.jobs().await? {
        out.push(view(app, r).await?);
    }
    Ok(out)
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

/// `GET /jobs/{id}/files[?status=copied|failed|skipped|pending|deleted]`.
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

fn csv_field(s: &str) -> String {
    // Quote everything; a leading formula character is defused for spreadsheet apps.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `GET /jobs/{id}/files.csv[?status=...]`: the report as CSV.
pub async fn files_csv(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<FilesQuery>,
) -> Result<impl IntoResponse, ApiError> {
    row(&app, &id).await?;
    let files = app.store.files(id.clone(), q.status).await?;
    let mut out = String::from("source,destination,size,status,reason,blake3\r\n");
    for f in files {
        let status = serde_json::to_value(f.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let fields = [
            csv_field(&f.source),
            csv_field(&f.destination),
            f.size.to_string(),
            status,
            csv_field(f.reason.as_deref().unwrap_or_default()),
            f.blake3.unwrap_or_default(),
        ];
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
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
    let new = start_rerun(&app, &id).await?;
    Ok((
        StatusCode::CREATED,
        Reply(view(&app, row(&app, &new).await?).await?),
    ))
}

/// Starts a re-run of finished job `id`; returns the new job's id.
pub(crate) async fn start_rerun(app: &Arc<App>, id: &str) -> Result<String, ApiError> {
    let old = row(app, id).await?;
    if !old.state.is_finished() {
        return Err(ApiError::conflict(format!(
            "job {id} is still {}; re-run it once it has finished",
            old.state.as_str()
        )));
    }
    online_client(app, &old.connector).await?;
    insert(
        app,
        old.connector,
        old.sources,
        old.destination,
        old.plan,
        old.concurrency,
        Some(id.to_owned()),
    )
    .await
}

/// `POST /jobs/{id}/sync {"keep_in_sync"}`: keep a job in sync until cut-over, or stop.
pub async fn sync(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Json(req): Json<mover_proto::api::SyncRequest>,
) -> Result<Reply<Job>, ApiError> {
    let mut r = row(&app, &id).await?;
    r.plan.keep_in_sync = req.keep_in_sync;
    app.store.set_plan(id.clone(), r.plan.clone()).await?;
    tracing::info!(job = %id, keep_in_sync = req.keep_in_sync, "keep in sync changed");
    engine::arm_sync(&app, &r.connector).await;
    Ok(Reply(view(&app, row(&app, &id).await?).await?))
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

#[cfg(test)]
mod tests {
    use super::csv_field;

    #[test]
    fn csv_fields_are_quoted_and_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=cmd()"), "\"'=cmd()\"");
    }
}
