//! The transfer engine: runs each job as a task that lists its sources and copies the files.

mod copy;
pub mod drain;
pub(crate) mod fetch;
mod gone;
mod limit;
mod many;
pub mod objects;
mod parts;
mod pass;
mod run;
mod scan;
mod sync;
mod tally;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mover_proto::api::{Destination, JobState};

use crate::metrics::Meter;
use crate::store::{new_id, now, JobRow, Plan, StoreError};
use crate::App;

use run::run;
pub use sync::{arm_sync, on_changed};

struct Running {
    task: tokio::task::AbortHandle,
    done: tokio::sync::watch::Receiver<bool>,
    meter: Arc<Meter>,
}

/// The jobs running now.
#[derive(Default)]
pub struct Engine {
    running: Mutex<HashMap<String, Running>>,
    /// Kept-in-sync jobs whose sources changed while they ran: they get another pass.
    resync: Mutex<std::collections::HashSet<String>>,
    /// Kept-in-sync jobs with a re-run about to start.
    scheduled: Mutex<std::collections::HashSet<String>>,
    /// Set when Bifrost drains before it stops: no job or file starts after it.
    pub drain: drain::Gate,
}

impl Engine {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes of files being copied right now (not yet counted as done).
    pub fn inflight(&self, job: &str) -> u64 {
        self.lock()
            .get(job)
            .map(|r| r.meter.inflight.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// The running jobs' meters.
    pub fn meters(&self) -> Vec<(String, Arc<Meter>)> {
        self.lock()
            .iter()
            .map(|(id, r)| (id.clone(), r.meter.clone()))
            .collect()
    }
}

/// Starts job `id` unless it already runs. While Bifrost drains, the job stays as recorded
/// (queued) and the next start runs it.
pub fn start(app: &Arc<App>, id: String) {
    if app.engine.drain.is_draining() {
        tracing::info!(job = %id, "Bifrost is stopping: the job starts at the next start");
        return;
    }
    let mut running = app.engine.lock();
    if running.contains_key(&id) {
        return;
    }
    let meter = Arc::new(Meter::default());
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let task = tokio::spawn({
        let (app, id, meter) = (app.clone(), id.clone(), meter.clone());
        async move {
            if let Err(e) = run(&app, &id, &meter).await {
                tracing::error!(job = %id, error = %e, "job stopped on a database error");
            }
            app.engine.lock().remove(&id);
            let _ = done_tx.send(true);
        }
    });
    tokio::spawn(log_progress(app.clone(), id.clone(), meter.clone()));
    running.insert(
        id,
        Running {
            task: task.abort_handle(),
            done,
            meter,
        },
    );
}

/// Where a new job comes from: the job it re-runs, and who started it.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    /// The finished job it re-runs.
    pub rerun_of: Option<String>,
    /// The account or token name that started it.
    pub started_by: Option<String>,
}

/// Records a new queued job and starts it; its id.
pub async fn submit(
    app: &Arc<App>,
    connector: String,
    sources: Vec<String>,
    destination: Destination,
    plan: Plan,
    concurrency: u32,
    origin: Origin,
) -> Result<String, StoreError> {
    let Origin {
        rerun_of,
        started_by,
    } = origin;
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
            started_by,
            updated: created.clone(),
            created,
        })
        .await?;
    tracing::info!(job = %id, "job created");
    start(app, id.clone());
    Ok(id)
}

/// Records and starts a re-run of finished job `old`: a new job over the same sources that
/// copies only new or changed files, started by `started_by`. Its id.
pub async fn rerun(
    app: &Arc<App>,
    old: JobRow,
    started_by: Option<String>,
) -> Result<String, StoreError> {
    let origin = Origin {
        rerun_of: Some(old.id),
        started_by,
    };
    submit(
        app,
        old.connector,
        old.sources,
        old.destination,
        old.plan,
        old.concurrency,
        origin,
    )
    .await
}

/// How often a running job's progress goes to the log.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Logs a running job's progress every [`PROGRESS_EVERY`] until it stops running.
async fn log_progress(app: Arc<App>, id: String, meter: Arc<Meter>) {
    let mut last = (std::time::Instant::now(), 0u64);
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        let still = app
            .engine
            .lock()
            .get(&id)
            .is_some_and(|r| Arc::ptr_eq(&r.meter, &meter));
        if !still {
            return;
        }
        let Ok(c) = app.store.counts(id.clone()).await else {
            continue;
        };
        let received = meter.received.load(Ordering::Relaxed);
        let rate = (received - last.1) as f64 / last.0.elapsed().as_secs_f64().max(0.001);
        last = (std::time::Instant::now(), received);
        let bytes = c.bytes_done + meter.inflight.load(Ordering::Relaxed);
        tracing::info!(
            job = %id,
            files = format_args!("{}/{}", c.files_done + c.files_skipped, c.files_total),
            failed = c.files_failed,
            bytes = format_args!("{bytes}/{}", c.bytes_total),
            rate = format_args!("{:.1} MB/s", rate / 1e6),
            active = meter.active.load(Ordering::Relaxed),
            "job progress"
        );
    }
}

/// Stops job `id` if it runs, and waits until it has.
pub async fn stop(app: &App, id: &str) {
    let entry = app.engine.lock().remove(id);
    if let Some(r) = entry {
        r.task.abort();
        let mut done = r.done;
        // An aborted task never sends `done`; its sender dropping ends the wait too.
        let _ = tokio::time::timeout(Duration::from_secs(5), done.wait_for(|d| *d)).await;
    }
}

/// Fails the running jobs of a revoked connector.
pub async fn stop_connector_jobs(app: &App, connector: &str) {
    let Ok(jobs) = app.store.jobs().await else {
        return;
    };
    for job in jobs
        .into_iter()
        .filter(|j| j.connector == connector && !j.state.is_finished())
    {
        stop(app, &job.id).await;
        let _ = app
            .store
            .set_job_state(
                job.id,
                JobState::Failed,
                Some("the connector was revoked".into()),
            )
            .await;
    }
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
