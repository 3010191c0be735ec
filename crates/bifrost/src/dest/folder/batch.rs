//! Putting files that arrived whole into a folder, many at a time: written and synced in one
//! blocking step, journaled in one transaction, then renamed with one sync per folder.
//!
//! One hop to the blocking pool and one transaction per file cost more than the bytes of a
//! 30 KiB file; a batch pays them once.

use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use super::journal::partial_path;
use super::landing::Landing;
use super::{file_time, local, Folder};
use crate::dest::{Journal, Whole};
use crate::failure::CopyError;

/// A file on its way into place.
struct Placed {
    /// Keeps the folder `dest`, `parent` and `partial` are named through open.
    _landing: Arc<Landing>,
    dest: PathBuf,
    parent: PathBuf,
    partial: PathBuf,
    whole: Whole,
}

/// Puts `files`, each result in their order.
pub async fn put(
    folder: &Folder,
    files: Vec<Whole>,
    journal: &Journal,
) -> Vec<Result<(), CopyError>> {
    let mut results: Vec<Option<Result<(), CopyError>>> = vec![None; files.len()];
    let mut placed = Vec::with_capacity(files.len());
    for (i, whole) in files.into_iter().enumerate() {
        match folder.path(&whole.dest) {
            Ok((landing, dest)) => placed.push((
                i,
                Placed {
                    parent: landing.dir().to_path_buf(),
                    partial: partial_path(&dest),
                    _landing: landing,
                    dest,
                    whole,
                },
            )),
            Err(e) => results[i] = Some(Err(e)),
        }
    }
    // A file whose name is another's temporary name (a source file called `.x.mover-part`
    // beside `x`) would be renamed over it: such files go in a second round.
    let partials: HashSet<PathBuf> = placed.iter().map(|(_, p)| p.partial.clone()).collect();
    let (first, second): (Vec<_>, Vec<_>) = placed
        .into_iter()
        .partition(|(_, p)| !partials.contains(&p.dest));
    for round in [first, second] {
        for (i, result) in put_round(round, journal).await {
            results[i] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(CopyError::internal("the file was not put in place"))))
        .collect()
}

async fn put_round(
    round: Vec<(usize, Placed)>,
    journal: &Journal,
) -> Vec<(usize, Result<(), CopyError>)> {
    if round.is_empty() {
        return Vec::new();
    }
    let index: Vec<usize> = round.iter().map(|(i, _)| *i).collect();
    let lost = |e: tokio::task::JoinError| -> Vec<(usize, Result<(), CopyError>)> {
        index
            .iter()
            .map(|&i| (i, Err(CopyError::internal(&e))))
            .collect()
    };
    let written = match tokio::task::spawn_blocking(move || {
        round
            .into_iter()
            .map(|(i, p)| {
                let r = write_one(&p);
                (i, p, r)
            })
            .collect::<Vec<_>>()
    })
    .await
    {
        Ok(w) => w,
        Err(e) => return lost(e),
    };
    let mut out = Vec::new();
    let mut synced = Vec::new();
    for (i, p, r) in written {
        match r {
            Ok(()) => synced.push((i, p)),
            Err(e) => out.push((i, Err(e))),
        }
    }
    let entries = synced
        .iter()
        .map(|(_, p)| (p.whole.seq, p.whole.blake3.clone()))
        .collect();
    if let Err(e) = journal.verified(entries).await {
        out.extend(synced.into_iter().map(|(i, _)| (i, Err(e.clone()))));
        return out;
    }
    let index: Vec<usize> = synced.iter().map(|(i, _)| *i).collect();
    match tokio::task::spawn_blocking(move || rename_all(synced)).await {
        Ok(done) => out.extend(done),
        Err(e) => out.extend(index.into_iter().map(|i| (i, Err(CopyError::internal(&e))))),
    }
    out
}

/// Creates, writes, dates and syncs one file (dated first, so the one sync makes its time
/// durable too). Its folder was made when it was planned (see `Landing`).
fn write_one(p: &Placed) -> Result<(), CopyError> {
    let mut f = std::fs::File::create(&p.partial).map_err(|e| local(e, "create", &p.partial))?;
    f.write_all(&p.whole.content)
        .map_err(|e| local(e, "write", &p.partial))?;
    if let Some(t) = p.whole.modified {
        filetime::set_file_handle_times(&f, None, Some(file_time(t)))
            .map_err(|e| local(e, "set the modification time of", &p.partial))?;
    }
    f.sync_all().map_err(|e| local(e, "sync", &p.partial))
}

/// Renames each file into place, then syncs each folder once.
fn rename_all(synced: Vec<(usize, Placed)>) -> Vec<(usize, Result<(), CopyError>)> {
    let mut folders = HashSet::new();
    let out = synced
        .into_iter()
        .map(|(i, p)| {
            let result = std::fs::rename(&p.partial, &p.dest)
                .map_err(|e| local(e, "rename into", &p.dest))
                .map(|()| {
                    folders.insert(p.parent.clone());
                });
            (i, result)
        })
        .collect();
    for folder in folders {
        if let Ok(dir) = std::fs::File::open(&folder) {
            let _ = dir.sync_all();
        }
    }
    out
}
