//! Named destinations (S3, Azure Blob, GCS): create, list, get, update, delete, Test and
//! browse, as domain operations returning [`DestinationError`]; `api/destinations.rs` maps
//! them to HTTP. Credentials are sealed at rest (`seal`) and never leave in an answer.

pub mod check;
pub mod cloud;
pub mod counted;
pub mod model;
pub mod probe;
pub mod request;
pub mod seal;

use std::path::Path;
use std::sync::Arc;

use mover_proto::api::{CreateJob, Destination};
use mover_proto::destinations::{
    DestinationPatch, DestinationView, Listing, NewDestination, TestResult,
};

use crate::metrics::DestinationRequests;
use crate::store::{new_id, now, DestinationRow, StoreError};
use crate::App;
pub use cloud::{open, Bucket, Kind, Patience};
use model::{Credentials, Place, Settings, Stored};

/// What a destination operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    /// The request is not acceptable; the text says why.
    #[error("{0}")]
    Invalid(String),
    /// No destination has this id.
    #[error("no destination {0}")]
    Unknown(String),
    /// An unfinished job writes into it.
    #[error("destination {id} is used by job {job}, which is {state}; cancel the job or wait until it finishes")]
    InUse {
        /// The destination.
        id: String,
        /// The job.
        job: String,
        /// The job's state.
        state: &'static str,
    },
    /// Its settings do not make a client (the text is object_store's, secrets scrubbed).
    #[error("the destination's settings are not usable: {0}")]
    Unusable(String),
    /// The service failed a request (browse); the text names the step and the service's answer.
    #[error("{0}")]
    Service(String),
    /// The credentials could not be sealed or opened.
    #[error(transparent)]
    Seal(#[from] seal::SealError),
    /// The database failed, or holds a row it cannot read.
    #[error("{0}")]
    Store(String),
}

impl From<StoreError> for DestinationError {
    fn from(e: StoreError) -> Self {
        Self::Store(e.to_string())
    }
}

/// What destinations share in a running Bifrost: the sealing key and the request counters.
#[derive(Debug)]
pub struct Shared {
    /// `DATA/destinations.key`.
    pub keyring: seal::Keyring,
    /// Requests to destinations, for `/metrics`.
    pub requests: Arc<DestinationRequests>,
}

impl Shared {
    /// For the data folder `data`.
    pub fn new(data: &Path) -> Self {
        Self {
            keyring: seal::Keyring::new(data),
            requests: Arc::default(),
        }
    }
}

/// `text` with every secret of `secrets` (4 characters or more) replaced by `[redacted]`.
pub fn scrub(text: &str, secrets: &[String]) -> String {
    let mut out = text.to_owned();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), "[redacted]");
        }
    }
    out
}

fn row(
    id: &str,
    s: &Settings,
    sealed: Vec<u8>,
    created: String,
) -> Result<DestinationRow, DestinationError> {
    let place =
        serde_json::to_string(&s.place).map_err(|e| DestinationError::Store(e.to_string()))?;
    Ok(DestinationRow {
        id: id.to_owned(),
        name: s.name.clone(),
        kind: s.place.kind().as_str().to_owned(),
        place,
        prefix: s.prefix.clone(),
        sealed,
        created,
        updated: now(),
    })
}

fn seal(app: &App, id: &str, c: &Credentials) -> Result<Vec<u8>, DestinationError> {
    let plain = serde_json::to_vec(c).map_err(|e| DestinationError::Store(e.to_string()))?;
    Ok(app.destinations.keyring.seal(id, &plain)?)
}

fn damaged(id: &str, what: &str) -> DestinationError {
    DestinationError::Store(format!(
        "destination {id}: {what} in the database is damaged"
    ))
}

/// The row of `id` and its settings.
async fn described(app: &App, id: &str) -> Result<(DestinationRow, Place), DestinationError> {
    let r = app
        .store
        .destination(id.to_owned())
        .await?
        .ok_or_else(|| DestinationError::Unknown(id.to_owned()))?;
    let place = serde_json::from_str(&r.place).map_err(|_| damaged(id, "the settings"))?;
    Ok((r, place))
}

/// The stored destination `id` with its credentials opened.
pub async fn stored(app: &App, id: &str) -> Result<Stored, DestinationError> {
    let (r, place) = described(app, id).await?;
    let damaged = |what: &str| damaged(id, what);
    let plain = app.destinations.keyring.open(&r.id, &r.sealed)?;
    let credentials: Credentials =
        serde_json::from_slice(&plain).map_err(|_| damaged("the sealed credentials"))?;
    Ok(Stored {
        id: r.id,
        settings: Settings {
            name: r.name,
            place,
            prefix: r.prefix,
            credentials,
        },
        created: r.created,
        updated: r.updated,
    })
}

/// Checks, seals and stores a new destination.
pub async fn create(app: &App, req: NewDestination) -> Result<DestinationView, DestinationError> {
    let settings = request::settings(req).map_err(DestinationError::Invalid)?;
    let id = new_id();
    let sealed = seal(app, &id, &settings.credentials)?;
    app.store
        .insert_destination(row(&id, &settings, sealed, now())?)
        .await?;
    tracing::info!(destination = %id, kind = settings.place.kind().as_str(), name = %settings.name, "destination created");
    get(app, &id).await
}

/// Every destination, oldest first.
pub async fn list(app: &App) -> Result<Vec<DestinationView>, DestinationError> {
    let mut out = Vec::new();
    for r in app.store.destinations().await? {
        let place = serde_json::from_str(&r.place).map_err(|_| damaged(&r.id, "the settings"))?;
        out.push(model::view(&r, &place));
    }
    Ok(out)
}

/// One destination, without its credentials.
pub async fn get(app: &App, id: &str) -> Result<DestinationView, DestinationError> {
    let (r, place) = described(app, id).await?;
    Ok(model::view(&r, &place))
}

/// Applies `patch`; given secrets replace the stored ones, absent ones are kept.
pub async fn update(
    app: &App,
    id: &str,
    patch: DestinationPatch,
) -> Result<DestinationView, DestinationError> {
    let old = stored(app, id).await?;
    let settings = request::patched(old.settings, patch).map_err(DestinationError::Invalid)?;
    let sealed = seal(app, id, &settings.credentials)?;
    if !app
        .store
        .update_destination(row(id, &settings, sealed, old.created)?)
        .await?
    {
        return Err(DestinationError::Unknown(id.to_owned()));
    }
    tracing::info!(destination = %id, "destination changed");
    get(app, id).await
}

/// Removes a destination no unfinished job uses.
pub async fn delete(app: &App, id: &str) -> Result<(), DestinationError> {
    if app.store.destination(id.to_owned()).await?.is_none() {
        return Err(DestinationError::Unknown(id.to_owned()));
    }
    for job in app.store.jobs().await? {
        let uses = matches!(&job.destination, Destination::Stored { id: d, .. } if d == id);
        if uses && !job.state.is_finished() {
            return Err(DestinationError::InUse {
                id: id.to_owned(),
                job: job.id,
                state: job.state.as_str(),
            });
        }
    }
    if !app.store.delete_destination(id.to_owned()).await? {
        return Err(DestinationError::Unknown(id.to_owned()));
    }
    tracing::info!(destination = %id, "destination deleted");
    Ok(())
}

/// Test: list, write a small object and delete it; `ok:false` names the failed step.
pub async fn test(app: &App, id: &str) -> Result<TestResult, DestinationError> {
    let d = stored(app, id).await?;
    let secrets = d.settings.credentials.values();
    let bucket = match cloud::build(&d, Patience::Interactive, app.destinations.requests.clone()) {
        Ok(b) => b,
        Err(DestinationError::Unusable(why)) => {
            return Ok(TestResult {
                ok: false,
                error: Some(format!("configuration failed: {why}")),
            })
        }
        Err(e) => return Err(e),
    };
    Ok(probe::test(&bucket, &secrets).await)
}

/// Browse: one level below `prefix` (relative to the destination's own prefix).
pub async fn browse(app: &App, id: &str, prefix: &str) -> Result<Listing, DestinationError> {
    let d = stored(app, id).await?;
    let secrets = d.settings.credentials.values();
    let bucket = cloud::build(&d, Patience::Interactive, app.destinations.requests.clone())?;
    probe::browse(&bucket, prefix, &secrets).await
}

/// For a job request: a stored destination must exist, and its path is normalized (relative,
/// no `..`). A folder destination passes unchanged. An unknown id is `Invalid` (the job
/// request is what is wrong).
pub async fn for_job(app: &App, job: &mut CreateJob) -> Result<(), DestinationError> {
    let Destination::Stored { id, path } = &mut job.destination else {
        return Ok(());
    };
    if !job.mappings.is_empty() {
        return Err(DestinationError::Invalid(
            "mappings (home-drives mode) name folders on this machine; use sources with a stored destination".into(),
        ));
    }
    *path = check::prefix(path, "the destination path").map_err(DestinationError::Invalid)?;
    if app.store.destination(id.clone()).await?.is_none() {
        return Err(DestinationError::Invalid(format!(
            "no destination {id}: create it first (POST /api/v1/destinations) and use the id it answers"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use mover_proto::api::JobState;

    use super::*;
    use crate::store::JobRow;

    fn s3_request(secret: &str) -> NewDestination {
        serde_json::from_value(serde_json::json!({"name":"Archive","kind":"s3","bucket":"bkt","endpoint":"http://127.0.0.1:9","access_key_id":"AKIDEXAMPLE","secret_access_key":secret})).unwrap()
    }

    #[tokio::test]
    async fn credentials_are_sealed_in_the_database_and_a_used_destination_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::open(dir.path(), "token".into(), Default::default())
            .await
            .unwrap();
        let d = create(&app, s3_request("CANARY-unit-1234")).await.unwrap();
        let shown = serde_json::to_string(&d).unwrap();
        assert!(
            !shown.contains("CANARY") && !shown.contains("AKIDEXAMPLE"),
            "{shown}"
        );
        let row = app.store.destination(d.id.clone()).await.unwrap().unwrap();
        assert!(!row.sealed.windows(6).any(|w| w == b"CANARY"));
        let Credentials::S3 {
            secret_access_key, ..
        } = stored(&app, &d.id).await.unwrap().settings.credentials
        else {
            panic!("kind");
        };
        assert_eq!(secret_access_key.expose(), "CANARY-unit-1234");

        let job = |state| JobRow {
            id: "job1".into(),
            connector: "c".into(),
            sources: vec!["/s/a".into()],
            destination: Destination::Stored {
                id: d.id.clone(),
                path: "x".into(),
            },
            plan: Default::default(),
            state,
            reason: None,
            concurrency: 1,
            scanned: false,
            rerun_of: None,
            started_by: None,
            created: now(),
            updated: now(),
        };
        app.store.insert_job(job(JobState::Paused)).await.unwrap();
        let e = delete(&app, &d.id).await.unwrap_err();
        assert!(
            matches!(e, DestinationError::InUse { ref job, .. } if job == "job1"),
            "{e}"
        );
        app.store
            .set_job_state("job1".into(), JobState::Cancelled, None)
            .await
            .unwrap();
        delete(&app, &d.id).await.unwrap();
        assert!(matches!(
            get(&app, &d.id).await,
            Err(DestinationError::Unknown(_))
        ));
    }

    #[tokio::test]
    async fn a_test_against_nothing_names_the_list_step_and_no_secret() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::open(dir.path(), "token".into(), Default::default())
            .await
            .unwrap();
        let d = create(&app, s3_request("CANARY-unit-5678")).await.unwrap();
        let r = test(&app, &d.id).await.unwrap();
        assert!(!r.ok);
        let error = r.error.unwrap();
        assert!(
            error.starts_with("list failed: cannot connect to the service"),
            "{error}"
        );
        assert!(!error.contains("CANARY"), "{error}");
        assert_eq!(
            app.destinations.requests.count("s3", None),
            2,
            "one request, one retry"
        );
    }

    #[test]
    fn scrub_removes_every_secret() {
        let s = scrub(
            "a SECRET and key1234",
            &["SECRET".into(), "key1234".into(), "k".into()],
        );
        assert_eq!(s, "a [redacted] and [redacted]");
    }
}
