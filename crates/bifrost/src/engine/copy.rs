//! Copying one file into any destination: what is already there, then the file whole (small),
//! streamed (resumed at the byte where the destination can), or in parts over the lanes.

use std::sync::atomic::{AtomicU64, Ordering};

use mover_proto::api::Compare;
use mover_proto::limits;
use mover_proto::{route, FileHash};

use super::fetch::{verify_whole, Fetch, Tap};
use super::limit::Limiter;
use super::parts::{copy_in_parts, SPLIT_MIN};
use crate::agent_client::AgentClient;
use crate::dest::{Destination, Done, Existing, Journal, Layout, Resume, Whole};
use crate::failure::{from_agent, CopyError};
use crate::metrics::Meter;
use crate::store::PendingFile;

/// A file's good outcome.
#[derive(Debug)]
pub enum Copied {
    /// Copied and verified.
    Done {
        /// Bytes.
        size: u64,
        /// BLAKE3, hex.
        blake3: String,
        /// New or changed since the last run, or replaced a different file.
        note: Option<String>,
    },
    /// Not copied on purpose.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// What a job asks of each copy.
#[derive(Clone)]
pub struct Mode {
    /// The job's id, for the journal.
    pub job: String,
    /// The database, for the journal.
    pub store: crate::store::Store,
    /// The job re-runs another: notes say new or changed.
    pub rerun: bool,
    /// How a file already at the destination is found unchanged.
    pub compare: Compare,
}

impl Mode {
    /// Where verified copies are journaled.
    pub fn journal(&self) -> Journal {
        Journal {
            store: self.store.clone(),
            job: self.job.clone(),
        }
    }
}

/// What the report says about a copied file, by whether the job re-runs another and whether
/// a file was at the destination.
pub(super) fn note(rerun: bool, existed: bool) -> Option<String> {
    match (rerun, existed) {
        (true, true) => Some("changed at the source since the last run".to_owned()),
        (true, false) => Some("new since the last run".to_owned()),
        (false, true) => Some("replaced a different file at the destination".to_owned()),
        (false, false) => None,
    }
}

/// What is already at the destination settles the file without copying it: copied by a
/// Bifrost that died before recording it, or unchanged by the job's comparison.
pub(super) fn settled(
    file: &PendingFile,
    existing: Option<&Existing>,
    compare: Compare,
) -> Option<Copied> {
    let same = existing.is_some_and(|e| e.same(file.size, file.modified.as_deref()));
    if let (Some(blake3), true) = (&file.verified, same) {
        return Some(Copied::Done {
            size: file.size,
            blake3: blake3.clone(),
            note: None,
        });
    }
    (compare == Compare::SizeMtime && same).then(|| Copied::Skipped {
        reason: "already at the destination (same size and modification time)".into(),
    })
}

/// Whether the destination has the source's content: compared only when sizes match, by
/// BLAKE3 at both ends (the agent hashes its file in place; nothing crosses the link but the
/// hash). A match also takes the source's modification time, as a copy would have.
async fn same_content<D: Destination>(
    client: &AgentClient,
    dest: &D,
    file: &PendingFile,
    existing: Option<&Existing>,
) -> Result<bool, CopyError> {
    let Some(existing) = existing.filter(|e| e.is_file && e.size == file.size) else {
        return Ok(false);
    };
    let theirs: FileHash = client
        .get_json(route::HASH, &[file.source.query_pair()])
        .await
        .map_err(from_agent)?;
    let ours = dest.content_hash(&file.dest, existing).await?;
    if theirs.size != file.size || Some(theirs.blake3) != ours {
        return Ok(false);
    }
    if let Some(m) = file.modified.as_deref().and_then(crate::dest::parse_time) {
        dest.keep_time(&file.dest, m).await;
    }
    Ok(true)
}

/// Copies one file from the agent into `dest`.
pub async fn copy_file<D: Destination>(
    client: &AgentClient,
    dest: &D,
    file: &PendingFile,
    meter: &Meter,
    limiter: Option<&Limiter>,
    mode: &Mode,
) -> Result<Copied, CopyError> {
    let counted = AtomicU64::new(0);
    meter.active.fetch_add(1, Ordering::Relaxed);
    let tap = Tap {
        meter,
        counted: &counted,
        limiter,
    };
    let result = copy_inner(client, dest, file, &tap, mode).await;
    meter.active.fetch_sub(1, Ordering::Relaxed);
    meter
        .inflight
        .fetch_sub(counted.load(Ordering::Relaxed), Ordering::Relaxed);
    result
}

async fn copy_inner<D: Destination>(
    client: &AgentClient,
    dest: &D,
    file: &PendingFile,
    tap: &Tap<'_>,
    mode: &Mode,
) -> Result<Copied, CopyError> {
    // Sizes were checked as they were listed; a database from before that check is not trusted.
    limits::file_size(file.size).map_err(|e| CopyError::Limit(e.to_string()))?;
    if file.dest.0.ends_with(b"/") {
        if !dest.caps().empty_folders {
            return Ok(Copied::Skipped {
                reason: "an empty folder: this destination keeps no folders".into(),
            });
        }
        if dest.folder(&file.dest).await? {
            return Ok(Copied::Skipped {
                reason: "folder already at the destination".into(),
            });
        }
        return Ok(Copied::Done {
            size: 0,
            blake3: blake3::hash(b"").to_hex().to_string(),
            note: mode.rerun.then(|| "new since the last run".into()),
        });
    }
    let existing = dest.plan(&file.dest).await?;
    if let Some(done) = settled(file, existing.as_ref(), mode.compare) {
        return Ok(done);
    }
    if mode.compare == Compare::Blake3
        && same_content(client, dest, file, existing.as_ref()).await?
    {
        return Ok(Copied::Skipped {
            reason: "already at the destination (same BLAKE3)".into(),
        });
    }
    let note = note(mode.rerun, existing.is_some());
    let caps = dest.caps();
    if file.size <= caps.whole_max {
        if let Some((size, blake3)) =
            copy_whole(client, dest, file, tap, mode, caps.whole_max).await?
        {
            return Ok(Copied::Done { size, blake3, note });
        }
    }
    // A job with a bandwidth limit is paced anyway and keeps to one stream (and its byte-exact
    // resume), as does a file too small to be worth splitting.
    let paced = tap.limiter.is_some();
    let (size, blake3) = if caps.resume_at_byte && (paced || file.size <= SPLIT_MIN) {
        stream(client, dest, file, tap, mode).await?
    } else {
        let entry = client.stat(&file.source).await.map_err(from_agent)?;
        let size = limits::file_size(entry.size).map_err(|e| CopyError::Limit(e.to_string()))?;
        let one_lane = paced || client.lanes() <= 1;
        let layout = if caps.resume_at_byte && size <= SPLIT_MIN {
            Layout::Stream
        } else {
            dest.layout(&file.dest, size, one_lane).await
        };
        match layout {
            Layout::Stream => stream(client, dest, file, tap, mode).await?,
            Layout::Parts(parts) => {
                let modified = entry.modified.as_deref();
                copy_in_parts(client, dest, file, tap, mode, (size, modified), parts).await?
            }
        }
    };
    Ok(Copied::Done { size, blake3, note })
}

/// Copies a small file: read whole, verified, and put as a batch of one: `(size, blake3)`.
/// `None` when it has grown too big to hold in memory since it was listed: it then goes like a
/// big one.
async fn copy_whole<D: Destination>(
    client: &AgentClient,
    dest: &D,
    file: &PendingFile,
    tap: &Tap<'_>,
    mode: &Mode,
    whole_max: u64,
) -> Result<Option<(u64, String)>, CopyError> {
    let rate = tap.limiter.map(Limiter::rate);
    let res = client
        .read(&file.source, 0, rate)
        .await
        .map_err(from_agent)?;
    let mut fetch = Fetch::whole(res, 0)?;
    if fetch.size > 4 * whole_max {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(usize::try_from(fetch.size).unwrap_or(0));
    let mut hasher = blake3::Hasher::new();
    while let Some(chunk) = fetch.chunk(tap).await? {
        hasher.update(&chunk);
        data.extend_from_slice(&chunk);
    }
    let modified = fetch.modified_time();
    let blake3 = verify_whole(&hasher.finalize(), &fetch.end()?)?;
    let size = data.len() as u64;
    let whole = Whole {
        seq: file.seq,
        dest: file.dest.clone(),
        content: data.into(),
        blake3: blake3.clone(),
        modified,
    };
    let mut results = dest.put_whole(vec![whole], &mode.journal()).await;
    match results.pop() {
        Some(Ok(())) => Ok(Some((size, blake3))),
        Some(Err(e)) => Err(e),
        None => Err(CopyError::internal("the copy was not put in place")),
    }
}

/// Streams a file in one read from where the destination kept it, verifies its BLAKE3 and
/// commits it: `(size, blake3)`.
async fn stream<D: Destination>(
    client: &AgentClient,
    dest: &D,
    file: &PendingFile,
    tap: &Tap<'_>,
    mode: &Mode,
) -> Result<(u64, String), CopyError> {
    let modified = file.modified.as_deref();
    let (upload, resume) = dest
        .begin(&file.dest, file.size, modified, &Layout::Stream)
        .await?;
    let (offset, hasher) = match resume {
        Resume::At { offset, hasher } => (offset, *hasher),
        _ => (0, blake3::Hasher::new()),
    };
    let rate = tap.limiter.map(Limiter::rate);
    let res = match client
        .read(&file.source, offset, rate)
        .await
        .map_err(from_agent)
    {
        Ok(res) => res,
        Err(CopyError::Shrank) => {
            dest.abort(upload).await;
            return Err(CopyError::Shrank);
        }
        Err(e) => return Err(e),
    };
    let mut fetch = Fetch::whole(res, offset)?;
    // The agent did not honour the range: from the start.
    let mut hasher = if fetch.from == offset {
        hasher
    } else {
        blake3::Hasher::new()
    };
    tap.progress(fetch.from);
    let mut writer = dest.writer(&upload, fetch.from).await?;
    loop {
        match fetch.chunk(tap).await {
            Ok(Some(data)) => {
                hasher.update(&data);
                dest.write(&mut writer, data).await?;
            }
            Ok(None) => break,
            Err(CopyError::Link(reason)) => {
                // Keep what arrived: the next attempt resumes from it.
                dest.written(&upload, writer, None).await?;
                return Err(if fetch.got > 0 {
                    CopyError::Interrupted(reason)
                } else {
                    CopyError::Link(reason)
                });
            }
            Err(e) => {
                // Not one byte past what was announced reaches the destination.
                drop(writer);
                dest.abort(upload).await;
                return Err(e);
            }
        }
    }
    dest.written(&upload, writer, None).await?;
    let (size, modified) = (fetch.size, fetch.modified_time());
    let verdict = fetch
        .end()
        .and_then(|trailer| verify_whole(&hasher.finalize(), &trailer));
    let blake3 = match verdict {
        Ok(b) => b,
        Err(e) => {
            dest.abort(upload).await;
            return Err(e);
        }
    };
    let done = Done {
        seq: file.seq,
        size,
        blake3: blake3.clone(),
        modified,
    };
    dest.commit(upload, done, &mode.journal()).await?;
    Ok((size, blake3))
}
