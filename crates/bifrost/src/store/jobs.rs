//! The jobs table: a job's sources, destination, plan and state.

use mover_proto::api::{Destination, Filters, JobState, Mapping};
use rusqlite::{params, OptionalExtension};

use super::{now, Store, StoreError};

/// A job row.
#[derive(Debug, Clone)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Connector id.
    pub connector: String,
    /// Source paths.
    pub sources: Vec<String>,
    /// Destination.
    pub destination: Destination,
    /// Home-drives mappings and filters.
    pub plan: Plan,
    /// State.
    pub state: JobState,
    /// Why failed or paused.
    pub reason: Option<String>,
    /// Files at once.
    pub concurrency: u32,
    /// Whether the sources have been fully listed.
    pub scanned: bool,
    /// Job this re-runs.
    pub rerun_of: Option<String>,
    /// Who started it (an account or token name); `None` for jobs from before accounts.
    pub started_by: Option<String>,
    /// Created.
    pub created: String,
    /// Updated.
    pub updated: String,
}

/// What a job copies beyond its sources and destination.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    /// Home-drives mappings (empty: the sources land in the destination).
    #[serde(default)]
    pub mappings: Vec<Mapping>,
    /// Which files to take.
    #[serde(default)]
    pub filters: Filters,
    /// Bytes per second over all the job's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_limit: Option<u64>,
    /// Re-runs remove files deleted at the source from the destination.
    #[serde(default)]
    pub delete_removed: bool,
    /// How a file already at the destination is found unchanged.
    #[serde(default)]
    pub compare: mover_proto::api::Compare,
    /// Changes at the source start the next incremental pass.
    #[serde(default)]
    pub keep_in_sync: bool,
}

impl Store {
    /// Creates a job.
    pub async fn insert_job(&self, job: JobRow) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO jobs (id, connector, sources, destination, plan, state, reason, concurrency, scanned, rerun_of, created, updated, started_by)
                 VALUES (?1, ?2, ?3, ?4, ?10, ?5, ?6, ?7, 0, ?8, ?9, ?9, ?11)",
                params![
                    job.id,
                    job.connector,
                    serde_json::to_string(&job.sources).unwrap_or_default(),
                    serde_json::to_string(&job.destination).unwrap_or_default(),
                    job.state.as_str(),
                    job.reason,
                    job.concurrency,
                    job.rerun_of,
                    job.created,
                    serde_json::to_string(&job.plan).unwrap_or_default(),
                    job.started_by,
                ],
            )
            .map(drop)
        })
        .await
    }

    /// One job.
    pub async fn job(&self, id: String) -> Result<Option<JobRow>, StoreError> {
        self.call(move |c| {
            c.query_row(
                &format!("SELECT {JOB_COLS} FROM jobs WHERE id = ?1"),
                [id],
                job_row,
            )
            .optional()
        })
        .await
    }

    /// Every job, newest first.
    pub async fn jobs(&self) -> Result<Vec<JobRow>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {JOB_COLS} FROM jobs ORDER BY created DESC, rowid DESC"
            ))?;
            let rows = stmt.query_map([], job_row)?.collect();
            rows
        })
        .await
    }

    /// Jobs that were queued or running when Bifrost stopped.
    pub async fn unfinished_jobs(&self) -> Result<Vec<String>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT id FROM jobs WHERE state IN ('queued', 'running') ORDER BY created",
            )?;
            let rows = stmt.query_map([], |r| r.get(0))?.collect();
            rows
        })
        .await
    }

    /// Sets a job's state and reason.
    pub async fn set_job_state(
        &self,
        id: String,
        state: JobState,
        reason: Option<String>,
    ) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET state = ?2, reason = ?3, updated = ?4 WHERE id = ?1",
                params![id, state.as_str(), reason, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Marks every job still `running` as `queued` with `reason`: Bifrost is stopping, and
    /// its next start resumes them (`unfinished_jobs`). How many there were.
    pub async fn requeue_running(&self, reason: String) -> Result<u64, StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET state = 'queued', reason = ?1, updated = ?2 WHERE state = 'running'",
                params![reason, now()],
            )
            .map(|n| n as u64)
        })
        .await
    }

    /// Marks a job's sources as fully listed.
    pub async fn set_scanned(&self, id: String) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET scanned = 1, updated = ?2 WHERE id = ?1",
                params![id, now()],
            )
            .map(drop)
        })
        .await
    }

    /// Replaces a job's plan.
    pub async fn set_plan(&self, id: String, plan: Plan) -> Result<(), StoreError> {
        let plan = serde_json::to_string(&plan).unwrap_or_default();
        self.call(move |c| {
            c.execute(
                "UPDATE jobs SET plan = ?2, updated = ?3 WHERE id = ?1",
                params![id, plan, now()],
            )
            .map(drop)
        })
        .await
    }
}

const JOB_COLS: &str =
    "id, connector, sources, destination, state, reason, concurrency, scanned, rerun_of, created, updated, plan, started_by";

fn job_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    let bad = |i: usize, what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            what.to_owned().into(),
        )
    };
    let sources: String = r.get(2)?;
    let destination: String = r.get(3)?;
    let state: String = r.get(4)?;
    Ok(JobRow {
        id: r.get(0)?,
        connector: r.get(1)?,
        sources: serde_json::from_str(&sources).map_err(|_| bad(2, "sources"))?,
        destination: serde_json::from_str(&destination).map_err(|_| bad(3, "destination"))?,
        state: JobState::parse(&state).ok_or_else(|| bad(4, "state"))?,
        reason: r.get(5)?,
        concurrency: r.get(6)?,
        scanned: r.get::<_, i64>(7)? != 0,
        rerun_of: r.get(8)?,
        created: r.get(9)?,
        updated: r.get(10)?,
        plan: serde_json::from_str(&r.get::<_, String>(11)?).map_err(|_| bad(11, "plan"))?,
        started_by: r.get(12)?,
    })
}
