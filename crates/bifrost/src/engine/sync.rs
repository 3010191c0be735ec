//! Keep-in-sync jobs: which folders the agent watches, and the next pass when they change.

use std::sync::Arc;
use std::time::Duration;

use mover_proto::api::JobState;

use super::locked;
use crate::store::{JobRow, StoreError};
use crate::App;

/// Changes are gathered this long (after the agent's own settling) before a pass starts.
const SYNC_DELAY: Duration = Duration::from_secs(2);

/// The last job of each kept-in-sync chain of `connector` (no re-run of it exists yet).
async fn sync_heads(app: &App, connector: &str) -> Result<Vec<JobRow>, StoreError> {
    let jobs = app.store.jobs().await?;
    let rerun: std::collections::HashSet<&str> =
        jobs.iter().filter_map(|j| j.rerun_of.as_deref()).collect();
    Ok(jobs
        .iter()
        .filter(|j| {
            j.connector == connector && j.plan.keep_in_sync && !rerun.contains(j.id.as_str())
        })
        .filter(|j| !matches!(j.state, JobState::Failed | JobState::Cancelled))
        .cloned()
        .collect())
}

/// Tells `connector`'s agent which folders to watch: the sources of its kept-in-sync jobs.
pub async fn arm_sync(app: &App, connector: &str) {
    let Some(client) = app.registry.by_connector(connector).map(|l| l.client) else {
        return;
    };
    let Ok(heads) = sync_heads(app, connector).await else {
        return;
    };
    let mut roots: Vec<String> = heads.into_iter().flat_map(|j| j.sources).collect();
    roots.sort();
    roots.dedup();
    let count = roots.len();
    match client
        .post_json(mover_proto::route::WATCH, &mover_proto::Watch { roots })
        .await
    {
        Ok(()) => tracing::info!(connector, roots = count, "live delta armed"),
        Err(e) => tracing::warn!(connector, error = %e, "cannot arm live delta"),
    }
}

/// The agent saw changes under `roots`: each kept-in-sync job over them gets its next pass.
pub async fn on_changed(app: &Arc<App>, connector: &str, roots: Vec<String>) {
    let Ok(heads) = sync_heads(app, connector).await else {
        return;
    };
    for head in heads {
        if !head.sources.iter().any(|s| roots.contains(s)) {
            continue;
        }
        if head.state.is_finished() {
            schedule_pass(app, head.id);
        } else {
            // Running or queued: once it ends, another pass.
            locked(&app.engine.resync).insert(head.id);
        }
    }
}

/// Starts a re-run of `id` after [`SYNC_DELAY`], once, however many changes arrive meanwhile.
pub(super) fn schedule_pass(app: &Arc<App>, id: String) {
    if !locked(&app.engine.scheduled).insert(id.clone()) {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SYNC_DELAY).await;
        locked(&app.engine.scheduled).remove(&id);
        // Turned off (cut-over) in the meantime: nothing to do.
        let head = match app.store.job(id.clone()).await {
            Ok(Some(j)) if j.plan.keep_in_sync => j,
            _ => return,
        };
        // The head has finished (a finished job stays so); like an admin's re-run, the next
        // pass starts only while the connector is online, and only inside the allowed
        // destination roots (which may have been set or narrowed since the job was made).
        let folders = crate::allowed_roots::folders(&head.destination, &head.plan.mappings);
        let started = match (
            crate::allowed_roots::check(&app.store, folders).await,
            app.registry.by_connector(&head.connector),
        ) {
            (Err(e), _) => Err(e.to_string()),
            // A pass is started on behalf of whoever started the head.
            (Ok(()), Some(_)) => {
                let by = head.started_by.clone();
                super::rerun(&app, head, by)
                    .await
                    .map_err(|e| e.to_string())
            }
            (Ok(()), None) => Err("the connector is offline".to_owned()),
        };
        match started {
            Ok(new) => {
                tracing::info!(job = %id, next = %new, "source changed; next incremental pass started")
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "source changed but the next pass cannot start")
            }
        }
    });
}
