//! Files deleted at the source since the last run: listed in the report, removed when asked.

use crate::dest::{Destination, Removed};
use crate::store::{JobRow, StoreError};
use crate::App;

use super::pass::folder_of;

/// Lists in a re-run's report the files the job it re-runs had that are gone from the source,
/// and removes them from the destination when the job asks for it.
pub(super) async fn record_gone(app: &App, job: &JobRow, old: &str) -> Result<(), StoreError> {
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
