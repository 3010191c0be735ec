//! A new job: its request checked against the rules and the agent's view of its sources, then
//! recorded and started, or only counted (a preview).

use std::collections::HashSet;
use std::sync::Arc;

use mover_proto::api::{CreateJob, Destination, Job, Preview};

use super::{get, JobError};
use crate::agent_client::AgentClient;
use crate::allowed_roots;
use crate::connectors::{count, online_client};
use crate::engine;
use crate::layout::{dest_root, source_name, LayoutError};
use crate::raw_path::RawPath;
use crate::store::Plan;
use crate::walk::{targets, Filter};
use crate::App;

const MAX_SOURCES: usize = 10_000;
/// Slowest bandwidth limit accepted, in bytes per second.
const MIN_BANDWIDTH: u64 = 64 * 1024;

/// The request with its destination and mapping roots normalized and inside the allowed
/// destination roots; a root with `..` is invalid.
async fn normalized(app: &App, req: CreateJob) -> Result<CreateJob, JobError> {
    let req = spelled(req)?;
    let folders = allowed_roots::folders(&req.destination, &req.mappings);
    allowed_roots::check(&app.store, folders).await?;
    Ok(req)
}

/// The request with its destination and mapping roots normalized.
fn spelled(mut req: CreateJob) -> Result<CreateJob, JobError> {
    let bad = |e: LayoutError| JobError::Invalid(e.to_string());
    match &mut req.destination {
        Destination::Folder { path } => *path = dest_root(path, "destination").map_err(bad)?,
        // Checked by `destinations::for_job`.
        Destination::Stored { .. } => {}
    }
    for m in &mut req.mappings {
        m.destination = dest_root(&m.destination, "mapping destination").map_err(bad)?;
    }
    Ok(req)
}

/// A stored destination must exist (and the job names no folders of this machine).
async fn stored(app: &App, mut req: CreateJob) -> Result<CreateJob, JobError> {
    use crate::destinations::DestinationError as D;
    crate::destinations::for_job(app, &mut req)
        .await
        .map_err(|e| match e {
            D::Invalid(m) => JobError::Invalid(m),
            e => JobError::Invalid(e.to_string()),
        })?;
    Ok(req)
}

/// Checks a job request and the agent's view of its sources; returns the agent client.
async fn check(app: &App, req: &CreateJob) -> Result<(AgentClient, u32, Filter), JobError> {
    let invalid = |m: String| Err(JobError::Invalid(m));
    let sources: Vec<&str> = if req.mappings.is_empty() {
        req.sources.iter().map(String::as_str).collect()
    } else {
        if !req.sources.is_empty() {
            return invalid("give either sources or mappings, not both".into());
        }
        req.mappings.iter().map(|m| m.source.as_str()).collect()
    };
    if sources.is_empty() {
        return invalid("a job needs at least one source".into());
    }
    if sources.len() > MAX_SOURCES {
        return invalid(format!("a job takes at most {MAX_SOURCES} sources"));
    }
    let concurrency = req.concurrency.unwrap_or(8);
    if !(1..=64).contains(&concurrency) {
        return invalid("concurrency must be between 1 and 64".into());
    }
    if req.bandwidth_limit.is_some_and(|b| b < MIN_BANDWIDTH) {
        return invalid(format!(
            "bandwidth_limit is in bytes per second and must be at least {MIN_BANDWIDTH} (64 KiB/s)"
        ));
    }
    let filter = Filter::new(&req.filters).map_err(JobError::Invalid)?;
    let mut seen = HashSet::new();
    for m in &req.mappings {
        if !seen.insert(m.destination.as_str()) {
            return invalid(format!(
                "two mappings share the destination {:?}",
                m.destination
            ));
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
            Err(e) => return invalid(e.to_string()),
        };
        if req.mappings.is_empty() && !names.insert(name.clone()) {
            return invalid(format!(
                "two sources are named {:?}; they would land in the same place",
                name.lossy()
            ));
        }
        if !req.mappings.is_empty() && entry.kind != mover_proto::EntryKind::Dir {
            return invalid(format!("mapped source {source:?} is not a folder"));
        }
    }
    Ok((client, concurrency, filter))
}

/// Checks `req`, makes its destination folders, records the job as `started_by`'s and starts it.
pub async fn create(app: &Arc<App>, req: CreateJob, started_by: &str) -> Result<Job, JobError> {
    let req = stored(app, normalized(app, req).await?).await?;
    let (_, concurrency, _) = check(app, &req).await?;
    let folders: Vec<&str> = match &req.destination {
        Destination::Folder { path } => std::iter::once(path.as_str())
            .chain(req.mappings.iter().map(|m| m.destination.as_str()))
            .collect(),
        Destination::Stored { .. } => Vec::new(),
    };
    for folder in folders {
        std::fs::create_dir_all(folder)
            .map_err(|e| JobError::Invalid(format!("cannot create destination {folder:?}: {e}")))?;
    }
    let plan = Plan {
        mappings: req.mappings,
        filters: req.filters,
        bandwidth_limit: req.bandwidth_limit,
        delete_removed: req.delete_removed,
        compare: req.compare,
        keep_in_sync: req.keep_in_sync,
    };
    let id = engine::submit(
        app,
        req.connector,
        req.sources,
        req.destination,
        plan,
        concurrency,
        engine::Origin {
            rerun_of: None,
            started_by: Some(started_by.to_owned()),
        },
    )
    .await?;
    get(app, &id).await
}

/// What a job with this request would copy, counted, without copying.
pub async fn preview(app: &App, req: CreateJob) -> Result<Preview, JobError> {
    let req = stored(app, normalized(app, req).await?).await?;
    let (client, _, filter) = check(app, &req).await?;
    let targets = targets(&req.sources, &req.destination, &req.mappings);
    let counter = count(&client, &targets, &filter).await?;
    Ok(Preview {
        files: counter.files,
        folders: counter.folders.saturating_sub(targets.len() as u64),
        bytes: counter.bytes,
        sample: counter.sample,
    })
}
