//! A job's object-storage destination: the stored destination opened for transfers, and the
//! uploads a job leaves open aborted when it ends.

use crate::dest::object::{Bucket, Objects};
use crate::destinations::cloud::{open, Patience};
use crate::store::JobRow;
use crate::App;

/// The object destination of `job`, stored as destination `id`.
pub(crate) async fn objects_of(app: &App, job: &JobRow, id: &str) -> Result<Objects, String> {
    let b = open(app, id, Patience::Transfer)
        .await
        .map_err(|e| format!("destination {id} cannot be used: {e}"))?;
    let bucket = Bucket {
        kind: b.kind.as_str(),
        store: b.store,
        multipart: b.multipart,
        prefix: b.prefix,
        id: b.id,
        metadata: b.metadata,
        blobs: b.blobs,
    };
    Ok(Objects::new(bucket, app.store.clone(), &job.id))
}

/// Aborts the multipart uploads `job` left open in its object destination, if it has one.
pub async fn abort_left(app: &App, job: &JobRow) {
    let mover_proto::api::Destination::Stored { id, .. } = &job.destination else {
        return;
    };
    match objects_of(app, job, id).await {
        Ok(dest) => match dest.abort_left().await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(job = %job.id, uploads = n, "aborted the uploads the job left open")
            }
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not abort the uploads the job left open")
            }
        },
        Err(e) => {
            tracing::warn!(job = %job.id, error = %e, "could not abort the uploads the job left open")
        }
    }
}
