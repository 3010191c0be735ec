//! Files deleted at the source since the last run: listed in the report, removed when asked.

use mover_proto::api::Destination;

use crate::dest::Removed;
use crate::store::{JobRow, StoreError};
use crate::App;

use super::pass::folder_of;

/// Lists in a re-run's report the files the job it re-runs had that are gone from the source,
/// and removes them from the destination when the job asks for it.
pub(super) async fn record_gone(app: &App, job: &JobRow, old: &str) -> Result<(), StoreError> {
    let mut gone = app.store.gone_since(old.to_owned(), job.id.clone()).await?;
    // Children come after their folder: going backwards empties a folder before removing it.
    if job.plan.delete_removed {
        match &job.destination {
            Destination::Folder { .. } => remove_all(&folder_of(job), &mut gone).await,
            Destination::Stored { id, .. } => {
                match super::objects::objects_of(app, job, id).await {
                    Ok(dest) => remove_all(&dest, &mut gone).await,
                    Err(e) => {
                        for f in &mut gone {
                            f.reason = Some(format!("deleted at the source since the last run; cannot remove it from the destination: {e}"));
                            // The kind of a destination that cannot be used (`CopyError::Local`'s).
                            f.kind = Some("destination");
                        }
                    }
                }
            }
        }
    } else {
        for f in &mut gone {
            f.reason =
                Some("deleted at the source since the last run; kept at the destination".into());
        }
    }
    if !gone.is_empty() {
        tracing::info!(job = %job.id, files = gone.len(), "files deleted at the source since the last run");
    }
    app.store.add_files(job.id.clone(), gone).await
}

/// Removes `gone` from `dest`, children before their folder, each line saying what became of it
/// and, when the removal failed, the failure's kind.
async fn remove_all<D: crate::dest::Destination>(dest: &D, gone: &mut [crate::store::NewFile]) {
    for f in gone.iter_mut().rev() {
        let (reason, kind) = match dest.remove(&f.dest).await {
            Ok(removed) => (removed_reason(removed), None),
            Err(e) => (
                format!("deleted at the source since the last run; cannot remove it from the destination: {e}"),
                Some(e.kind()),
            ),
        };
        f.reason = Some(reason);
        f.kind = kind;
    }
}

fn removed_reason(removed: Removed) -> String {
    match removed {
        Removed::Removed => {
            "deleted at the source since the last run; removed from the destination".into()
        }
        Removed::Gone => {
            "deleted at the source since the last run; already gone from the destination".into()
        }
        Removed::NotEmpty => {
            "deleted at the source since the last run; kept at the destination: the folder holds other files".into()
        }
    }
}
