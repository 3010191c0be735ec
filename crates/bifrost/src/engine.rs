//! The transfer engine: runs each job as a task that lists its sources and copies the files.

mod copy;
pub mod drain;
pub(crate) mod fetch;
mod limit;
mod many;
mod parts;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mover_proto::api::{FileStatus, JobState};
use tokio::task::JoinSet;

use crate::agent_client::{AgentClient, AgentError};
use crate::dest::folder::{full, Folder};
use crate::dest::{Destination, Removed};
use crate::failure::{CopyError, Then};
use crate::metrics::Meter;
use crate::store::{FileUpdate, JobRow, StoreError};
use crate::walk::{targets, walk, Filter, Sink, WalkError};
use crate::App;

/// Attempts per file before it is reported failed.
const MAX_ATTEMPTS: u32 = 5;
/// Times a file that changed while it was read is read again before it is reported.
const CHANGED_RETRIES: u32 = 3;
/// Pending files fetched from the database at a time.
const BATCH: u32 = 512;

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

async fn run(app: &Arc<App>, id: &str, meter: &Arc<Meter>) -> Result<(), StoreError> {
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

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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
fn schedule_pass(app: &Arc<App>, id: String) {
    if !locked(&app.engine.scheduled).insert(id.clone()) {
        return;
    }
    let app = app.clone();
    tokio::spawn(async move {
        tokio::time::sleep(SYNC_DELAY).await;
        locked(&app.engine.scheduled).remove(&id);
        // Turned off (cut-over) in the meantime: nothing to do.
        match app.store.job(id.clone()).await {
            Ok(Some(j)) if j.plan.keep_in_sync => {}
            _ => return,
        }
        match crate::api::jobs::start_rerun(&app, &id).await {
            Ok(new) => {
                tracing::info!(job = %id, next = %new, "source changed; next incremental pass started")
            }
            Err(e) => {
                tracing::warn!(job = %id, error = %e.message(), "source changed but the next pass cannot start")
            }
        }
    });
}

enum Pass {
    Finished,
    Retry,
    DiskFull,
    /// Bifrost is draining: the files in flight are done, the others wait for the next start.
    Drained,
}

/// Copies every pending file once, `concurrency` files or batches of small files at a time.
/// With `following`, the pass runs beside the job's first scan: having caught up with it, it
/// waits for more files until the scan ends.
async fn copy_pass(
    app: &Arc<App>,
    job: &JobRow,
    meter: &Arc<Meter>,
    limiter: Option<&Arc<limit::Limiter>>,
    following: Option<tokio::sync::watch::Receiver<Scanning>>,
) -> Result<Pass, StoreError> {
    let dest = Arc::new(folder_of(job));
    copy_pass_into(app, job, dest, meter, limiter, following).await
}

/// The folder destination of a job.
fn folder_of(job: &JobRow) -> Folder {
    Folder::new(crate::layout::roots(&job.destination, &job.plan.mappings).into())
}

/// [`copy_pass`] into `dest`.
async fn copy_pass_into<D: Destination>(
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
                        Some(r) = tasks.join_next() => settle(app, job, r, &mut flags).await?,
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
                    settle(app, job, r, &mut flags).await?;
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
        settle(app, job, r, &mut flags).await?;
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

/// What a pass learnt from its results.
#[derive(Default)]
struct Flags {
    /// Some file is to be tried again: another pass follows.
    retry: bool,
    /// The destination is full: the job pauses.
    disk_full: bool,
    /// Bifrost is draining and files were left unstarted.
    drained: bool,
}

/// Records a task's results, in one transaction.
async fn settle(
    app: &App,
    job: &JobRow,
    joined: Result<many::Outcomes, tokio::task::JoinError>,
    flags: &mut Flags,
) -> Result<(), StoreError> {
    let Ok(outcomes) = joined else {
        flags.retry = true;
        return Ok(());
    };
    let updates: Vec<FileUpdate> = outcomes
        .into_iter()
        .filter_map(|(file, result)| update(job, file, result, flags))
        .collect();
    if updates.is_empty() {
        return Ok(());
    }
    app.store.update_files(job.id.clone(), updates).await
}

/// What one file's result means for the job's record of it.
fn update(
    job: &JobRow,
    file: crate::store::PendingFile,
    result: Result<copy::Copied, CopyError>,
    flags: &mut Flags,
) -> Option<FileUpdate> {
    let seq = file.seq;
    let finish = |status, size, reason, blake3| {
        Some(FileUpdate::Finish {
            seq,
            status,
            size,
            reason,
            blake3,
        })
    };
    let e = match result {
        Ok(copy::Copied::Done { size, blake3, note }) => {
            return finish(FileStatus::Copied, size, note, Some(blake3))
        }
        Ok(copy::Copied::Skipped { reason }) => {
            return finish(FileStatus::Skipped, file.size, Some(reason), None)
        }
        Err(e) => e,
    };
    let (source, reason, kind) = (file.source.lossy(), e.to_string(), e.kind());
    let failed = |reason: String| finish(FileStatus::Failed, file.size, Some(reason), None);
    match e.then() {
        Then::Fail => {
            tracing::warn!(job = %job.id, %source, %reason, kind, "file failed");
            failed(reason)
        }
        Then::Pause => {
            flags.disk_full = true;
            failed(reason)
        }
        Then::ReadAgain if file.attempts + 1 > CHANGED_RETRIES => {
            tracing::warn!(job = %job.id, %source, %reason, "file kept changing while it was read");
            failed(reason)
        }
        Then::ReadAgain => {
            tracing::info!(job = %job.id, %source, %reason, "file changed while it was read; it will be read again");
            flags.retry = true;
            Some(FileUpdate::Attempted { seq })
        }
        Then::Resume => {
            tracing::info!(job = %job.id, %source, %reason, "file interrupted; it resumes where it stopped");
            flags.retry = true;
            None
        }
        Then::Retry if file.attempts + 1 >= MAX_ATTEMPTS => {
            tracing::warn!(job = %job.id, %source, %reason, kind, "file failed after retries");
            failed(reason)
        }
        Then::Retry => {
            tracing::info!(job = %job.id, %source, %reason, kind, "file will be retried");
            flags.retry = true;
            Some(FileUpdate::Attempted { seq })
        }
    }
}

/// Lists in a re-run's report the files the job it re-runs had that are gone from the source,
/// and removes them from the destination when the job asks for it.
async fn record_gone(app: &App, job: &JobRow, old: &str) -> Result<(), StoreError> {
    let mut gone = app.store.gone_since(old.to_owned(), job.id.clone()).await?;
    // Children come after their folder: going backwards empties a folder before removing it.
    let dest = folder_of(job);
    for f in gone.iter_mut().rev() {
        f.reason = Some(if job.plan.delete_removed {
            remove_from_destination(&dest, &f.dest).await
        } else {
            "deleted at the source since the last run; kept at the destination".into()
        });
    }
    if !gone.is_empty() {
        tracing::info!(job = %job.id, files = gone.len(), "files deleted at the source since the last run");
    }
    app.store.add_files(job.id.clone(), gone).await
}

async fn remove_from_destination<D: Destination>(
    dest: &D,
    path: &crate::raw_path::RawPath,
) -> String {
    match dest.remove(path).await {
        Ok(Removed::Removed) => {
            "deleted at the source since the last run; removed from the destination".into()
        }
        Ok(Removed::Gone) => {
            "deleted at the source since the last run; already gone from the destination".into()
        }
        Ok(Removed::NotEmpty) => {
            "deleted at the source since the last run; kept at the destination: the folder holds other files".into()
        }
        Err(e) => format!(
            "deleted at the source since the last run; cannot remove it from the destination: {e}"
        ),
    }
}

/// Files a scan gathers before it writes them to the database.
const SCAN_BATCH: usize = 2000;

/// Records what a walk finds in the job's file table, a few thousand files per transaction
/// (folders of a few dozen files each made a transaction per folder cost more than the walk).
struct StoreSink<'a> {
    store: &'a crate::store::Store,
    job: &'a str,
    found: Vec<crate::store::NewFile>,
    /// Told after each commit, for the pass copying while the scan runs.
    notify: &'a tokio::sync::watch::Sender<Scanning>,
}

impl StoreSink<'_> {
    async fn flush(&mut self) -> Result<(), WalkError> {
        if self.found.is_empty() {
            return Ok(());
        }
        let files = std::mem::take(&mut self.found);
        self.store.add_files(self.job.to_owned(), files).await?;
        self.notify.send_replace(Scanning::Going);
        Ok(())
    }
}

impl Sink for StoreSink<'_> {
    async fn files(&mut self, files: Vec<crate::store::NewFile>) -> Result<(), WalkError> {
        self.found.extend(files);
        if self.found.len() >= SCAN_BATCH {
            self.flush().await?;
        }
        Ok(())
    }
}

/// Where a job's first scan is, for the pass that copies while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scanning {
    /// Still listing; each commit of found files is announced again.
    Going,
    /// Every file is listed.
    Done,
    /// The job failed while listing: no more files start.
    Stopped,
}

/// Scans the job's sources until the listing is complete (waiting for the agent when it is
/// away), telling `found` as files are recorded. The reason the job failed when the agent
/// refused the listing.
async fn scan_all(
    app: &App,
    job: &JobRow,
    found: tokio::sync::watch::Sender<Scanning>,
) -> Result<Option<String>, StoreError> {
    // However this ends, the pass that follows the scan must not wait for more files.
    struct Ended(tokio::sync::watch::Sender<Scanning>, Scanning);
    impl Drop for Ended {
        fn drop(&mut self) {
            self.0.send_replace(self.1);
        }
    }
    let mut ended = Ended(found.clone(), Scanning::Stopped);
    loop {
        let client = app.registry.wait_online(&job.connector).await;
        match scan(app, job, &client, &found).await {
            Ok(()) => {
                if let Some(old) = &job.rerun_of {
                    record_gone(app, job, old).await?;
                }
                app.store.set_scanned(job.id.clone()).await?;
                ended.1 = Scanning::Done;
                return Ok(None);
            }
            Err(WalkError::Agent(AgentError::Status { status, message }))
                if status.is_client_error() =>
            {
                return Ok(Some(message));
            }
            Err(WalkError::Agent(AgentError::Limit(e))) => return Ok(Some(e.to_string())),
            Err(WalkError::Agent(e)) => {
                tracing::warn!(job = %job.id, error = %e, "scan interrupted; retrying when the agent is back");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(WalkError::Store(e)) => return Err(e),
        }
    }
}

/// Lists every source into the job's file table; safe to repeat after an interruption.
async fn scan(
    app: &App,
    job: &JobRow,
    client: &AgentClient,
    notify: &tokio::sync::watch::Sender<Scanning>,
) -> Result<(), WalkError> {
    // The filters were checked when the job was created.
    let filter = Filter::new(&job.plan.filters).unwrap_or_default();
    let targets = targets(&job.sources, &job.destination, &job.plan.mappings);
    let mut sink = StoreSink {
        store: &app.store,
        job: &job.id,
        found: Vec::new(),
        notify,
    };
    walk(client, &targets, &filter, &mut sink).await?;
    // An interrupted walk leaves what it found unwritten or half written: the scan starts over
    // anyway, and files already known are left as they are.
    sink.flush().await
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
