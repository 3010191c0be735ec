//! A job's scan: lists its sources into its file table, announcing each commit to the pass beside it.

use std::time::Duration;

use crate::agent_client::{AgentClient, AgentError};
use crate::store::{JobRow, StoreError};
use crate::walk::{targets, walk, Filter, Sink, WalkError};
use crate::App;

use super::gone::record_gone;

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
pub(super) enum Scanning {
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
pub(super) async fn scan_all(
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
