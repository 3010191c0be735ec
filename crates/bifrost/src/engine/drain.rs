//! Graceful drain on SIGTERM or Ctrl-C: no new work starts, the files in flight get a grace
//! period to finish, and whatever is left is journaled for the next start.
//!
//! What "journaled" means here: each unfinished job is left `queued` (the next start resumes
//! every queued or running job), its unfinished files stay `pending`, and a file cut off at the
//! deadline keeps its temporary file `.NAME.mover-part` (and, when copied in parts, the parts
//! journal beside it), which the next attempt resumes from: at the byte for a file read in one
//! stream, at the last synced part for one read in parts.
//!
//! New work during the drain is queued, not refused: a job created, resumed or re-run then is
//! recorded as `queued` and starts at the next start, so an API client does not have to retry.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

use crate::App;

/// The reason unfinished jobs carry until the next start picks them up.
pub const REASON: &str = "Bifrost stopped before this job finished; it resumes at the next start";

/// How long the copies cut off at the deadline get to stop (their writers let go of the
/// temporary files). Part of the margin `TimeoutStopSec` leaves beyond the drain timeout.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// Whether Bifrost is draining: set once, never cleared (a drained Bifrost exits).
pub struct Gate(watch::Sender<bool>);

impl Default for Gate {
    fn default() -> Self {
        Self(watch::channel(false).0)
    }
}

impl Gate {
    /// True once the drain has begun.
    pub fn is_draining(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the drain has begun (at once if it has).
    pub async fn begun(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`, so the wait cannot fail while anyone awaits it.
        let _ = rx.wait_for(|d| *d).await;
    }

    fn begin(&self) {
        self.0.send_replace(true);
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Jobs running when the drain began.
    pub jobs: usize,
    /// Jobs whose copies were still running at the deadline (or at a second signal) and were
    /// cut off there.
    pub cut: usize,
    /// Jobs left queued for the next start.
    pub requeued: u64,
}

/// Drains the engine: stops new work, waits up to `grace` for the running jobs to finish the
/// files they have in flight (or until `cut` resolves: a second signal), then stops what still
/// runs and leaves every unfinished job queued for the next start.
pub async fn drain(app: &App, grace: Duration, cut: impl Future<Output = ()>) -> Drained {
    app.engine.drain.begin();
    let running: Vec<(String, watch::Receiver<bool>)> = app
        .engine
        .lock()
        .iter()
        .map(|(id, r)| (id.clone(), r.done.clone()))
        .collect();
    let jobs = running.len();
    tracing::info!(
        jobs,
        grace_secs = grace.as_secs(),
        "draining: no new files start; waiting for the files in flight"
    );
    let all_done = async {
        for (_, mut done) in running {
            // A job task that ends any way drops its sender: the wait ends then too.
            let _ = done.wait_for(|d| *d).await;
        }
    };
    let finished = tokio::select! {
        _ = all_done => true,
        _ = tokio::time::sleep(grace) => false,
        _ = cut => false,
    };
    let mut cut = 0;
    if !finished {
        // All stopped at once, then waited for together: one job at a time (`engine::stop`)
        // could outlast the unit's stop timeout with many jobs.
        let left: Vec<super::Running> = app.engine.lock().drain().map(|(_, r)| r).collect();
        cut = left.len();
        tracing::warn!(jobs = cut, "drain deadline reached: stopping the copies still running; they resume at the next start");
        for r in &left {
            r.task.abort();
        }
        let stopped = async {
            for r in left {
                let mut done = r.done;
                // An aborted task never sends `done`; its sender dropping ends the wait too.
                let _ = done.wait_for(|d| *d).await;
            }
        };
        let _ = tokio::time::timeout(STOP_WAIT, stopped).await;
    }
    let requeued = match app.store.requeue_running(REASON.to_owned()).await {
        Ok(n) => n,
        Err(e) => {
            // Still resumed at the next start: a job left `running` is picked up as well.
            tracing::error!(error = %e, "cannot mark the unfinished jobs queued");
            0
        }
    };
    let drained = Drained {
        jobs,
        cut,
        requeued,
    };
    tracing::info!(jobs, cut, requeued, "drained");
    drained
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_opens_once_and_wakes_those_waiting() {
        let gate = std::sync::Arc::new(Gate::default());
        assert!(!gate.is_draining());
        let waiter = tokio::spawn({
            let gate = gate.clone();
            async move { gate.begun().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        gate.begin();
        waiter.await.unwrap();
        assert!(gate.is_draining());
        // Already begun: no wait.
        gate.begun().await;
    }

    async fn app() -> (tempfile::TempDir, std::sync::Arc<App>) {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::open(dir.path(), "token".into(), Default::default())
            .await
            .unwrap();
        (dir, app)
    }

    /// Registers a fake running job whose task ends when `finish` is told (or runs forever).
    fn fake_job(app: &App, id: &str, finish: Option<tokio::sync::oneshot::Receiver<()>>) {
        let (done_tx, done) = watch::channel(false);
        let task = tokio::spawn(async move {
            match finish {
                Some(f) => {
                    let _ = f.await;
                }
                None => std::future::pending::<()>().await,
            }
            let _ = done_tx.send(true);
        });
        app.engine.lock().insert(
            id.to_owned(),
            super::super::Running {
                task: task.abort_handle(),
                done,
                meter: Default::default(),
            },
        );
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_that_finish_within_the_grace_period_are_waited_for() {
        let (_dir, app) = app().await;
        let (tx, rx) = tokio::sync::oneshot::channel();
        fake_job(&app, "j", Some(rx));
        let drain = tokio::spawn({
            let app = app.clone();
            async move { drain(&app, Duration::from_secs(30), std::future::pending()).await }
        });
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(app.engine.drain.is_draining());
        assert!(!drain.is_finished());
        tx.send(()).unwrap();
        let d = drain.await.unwrap();
        assert_eq!((d.jobs, d.cut), (1, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn jobs_still_running_at_the_deadline_are_stopped() {
        let (_dir, app) = app().await;
        fake_job(&app, "j", None);
        let start = tokio::time::Instant::now();
        let d = drain(&app, Duration::from_secs(30), std::future::pending()).await;
        assert_eq!((d.jobs, d.cut), (1, 1));
        assert!(start.elapsed() >= Duration::from_secs(30));
        assert!(app.engine.lock().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_second_signal_cuts_the_grace_period_short() {
        let (_dir, app) = app().await;
        fake_job(&app, "j", None);
        let start = tokio::time::Instant::now();
        let second = tokio::time::sleep(Duration::from_secs(2));
        let d = drain(&app, Duration::from_secs(30), second).await;
        assert_eq!(d.cut, 1);
        assert!(start.elapsed() < Duration::from_secs(30));
    }

    #[tokio::test]
    async fn no_job_starts_while_draining() {
        let (_dir, app) = app().await;
        drain(&app, Duration::from_secs(1), std::future::pending()).await;
        super::super::start(&app, "new".into());
        assert!(app.engine.lock().is_empty());
    }
}
