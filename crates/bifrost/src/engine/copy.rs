//! Copying one file: resume from a partial temp file, verify BLAKE3, fsync, keep mtime, rename.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use http_body_util::BodyExt;
use mover_proto::api::Compare;
use mover_proto::{header, route, FileHash};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::limit::Limiter;
use crate::agent_client::{AgentClient, AgentError};
use crate::metrics::Meter;
use crate::store::PendingFile;

/// A file's good outcome.
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

/// A file's bad outcome.
pub enum CopyError {
    /// Will not work on retry: report it.
    Failed(String),
    /// May work on retry (link dropped, file changed).
    Retry(String),
    /// The source file changed while it was read; retried a few times, then reported.
    Changed(String),
    /// The link dropped after this attempt moved the file forward: resume later, and don't
    /// count it as a failed attempt (a flaky WAN must not fail a big file).
    Interrupted(String),
    /// The destination is full: report it and pause the job.
    DiskFull(String),
}

/// What an agent's refusal or a failed request means for one file.
fn from_agent(e: AgentError) -> CopyError {
    match e {
        AgentError::Status {
            status: StatusCode::NOT_FOUND,
            ..
        } => CopyError::Failed("vanished: the file no longer exists at the source".into()),
        // The agent is stopping: this file waits for it, without counting an attempt.
        AgentError::Status {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
        } => CopyError::Interrupted(message),
        AgentError::Status {
            status: StatusCode::CONFLICT,
            message,
        } => CopyError::Changed(message),
        AgentError::Status { status, message } if status.is_client_error() => {
            CopyError::Failed(message)
        }
        e => CopyError::Retry(e.to_string()),
    }
}

/// Runs of zeros at least this long become holes in the copy.
const SPARSE_MIN: usize = 4096;

fn local(e: std::io::Error, what: &str, path: &Path) -> CopyError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        CopyError::DiskFull("the destination disk is full".into())
    } else {
        CopyError::Failed(format!("cannot {what} {}: {e}", path.display()))
    }
}

fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn file_time(t: time::OffsetDateTime) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(t.unix_timestamp(), t.nanosecond())
}

/// Whether the destination already holds this file: same size and same mtime to the second.
fn same_file(path: &Path, size: u64, modified: Option<&str>) -> bool {
    let (Ok(meta), Some(m)) = (std::fs::metadata(path), modified.and_then(parse_time)) else {
        return false;
    };
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    meta.is_file() && meta.len() == size && mtime.unix_seconds() == m.unix_timestamp()
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

/// Whether the destination file has the source's content: compared only when sizes match, by
/// BLAKE3 at both ends (the agent hashes its file in place; nothing crosses the link but the
/// hash). A match also takes the source's modification time, as a copy would have.
async fn same_content(
    client: &AgentClient,
    file: &PendingFile,
    dest: &Path,
) -> Result<bool, CopyError> {
    match tokio::fs::metadata(dest).await {
        Ok(m) if m.is_file() && m.len() == file.size => {}
        _ => return Ok(false),
    }
    let theirs: FileHash = client
        .get_json(route::HASH, &[file.source.query_pair()])
        .await
        .map_err(from_agent)?;
    let path = dest.to_path_buf();
    let ours = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
        let mut h = blake3::Hasher::new();
        h.update_reader(std::fs::File::open(&path)?)?;
        Ok(h.finalize().to_hex().to_string())
    })
    .await
    .map_err(|e| CopyError::Retry(e.to_string()))?
    .map_err(|e| local(e, "read", dest))?;
    if theirs.size != file.size || theirs.blake3 != ours {
        return Ok(false);
    }
    if let Some(m) = file.modified.as_deref().and_then(parse_time) {
        let (p, t) = (dest.to_path_buf(), file_time(m));
        let _ = tokio::task::spawn_blocking(move || filetime::set_file_mtime(&p, t)).await;
    }
    Ok(true)
}

/// Copies one file from the agent into `root`.
pub async fn copy_file(
    client: &AgentClient,
    file: &PendingFile,
    meter: &Meter,
    limiter: Option<&Limiter>,
    mode: &Mode,
) -> Result<Copied, CopyError> {
    let counted = AtomicU64::new(0);
    meter.active.fetch_add(1, Ordering::Relaxed);
    let result = copy_inner(client, file, meter, &counted, limiter, mode).await;
    meter.active.fetch_sub(1, Ordering::Relaxed);
    meter
        .inflight
        .fetch_sub(counted.load(Ordering::Relaxed), Ordering::Relaxed);
    result
}

async fn copy_inner(
    client: &AgentClient,
    file: &PendingFile,
    meter: &Meter,
    counted: &AtomicU64,
    limiter: Option<&Limiter>,
    mode: &Mode,
) -> Result<Copied, CopyError> {
    let rerun = mode.rerun;
    let dest = file.dest.to_path();
    if file.dest.0.ends_with(b"/") {
        if tokio::fs::metadata(&dest).await.is_ok_and(|m| m.is_dir()) {
            return Ok(Copied::Skipped {
                reason: "folder already at the destination".into(),
            });
        }
        tokio::fs::create_dir_all(&dest)
            .await
            .map_err(|e| local(e, "create folder", &dest))?;
        return Ok(Copied::Done {
            size: 0,
            blake3: blake3::hash(b"").to_hex().to_string(),
            note: rerun.then(|| "new since the last run".into()),
        });
    }
    let parent = dest.parent().unwrap_or(Path::new("/")).to_path_buf();
    tokio::fs::create_dir_all(&parent)
        .await
        .map_err(|e| local(e, "create folder", &parent))?;
    // Verified and renamed by a Bifrost that died before recording it: it is this job's copy.
    if let Some(blake3) = &file.verified {
        if same_file(&dest, file.size, file.modified.as_deref()) {
            return Ok(Copied::Done {
                size: file.size,
                blake3: blake3.clone(),
                note: None,
            });
        }
    }
    match mode.compare {
        Compare::SizeMtime if same_file(&dest, file.size, file.modified.as_deref()) => {
            return Ok(Copied::Skipped {
                reason: "already at the destination (same size and modification time)".into(),
            });
        }
        Compare::Blake3 if same_content(client, file, &dest).await? => {
            return Ok(Copied::Skipped {
                reason: "already at the destination (same BLAKE3)".into(),
            });
        }
        _ => {}
    }
    let existed = tokio::fs::symlink_metadata(&dest).await.is_ok();
    let note = match (rerun, existed) {
        (true, true) => Some("changed at the source since the last run".to_owned()),
        (true, false) => Some("new since the last run".to_owned()),
        (false, true) => Some("replaced a different file at the destination".to_owned()),
        (false, false) => None,
    };
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = parent.join(format!(".{name}.mover-part"));
    let have = tokio::fs::metadata(&partial)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let mut offset = if have > 0 && have < file.size {
        have
    } else {
        0
    };
    let mut res = match client
        .read(&file.source, offset, limiter.map(Limiter::rate))
        .await
    {
        Ok(r) => r,
        Err(AgentError::Status {
            status: StatusCode::RANGE_NOT_SATISFIABLE,
            ..
        }) => {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(CopyError::Retry("the file shrank at the source".into()));
        }
        Err(e) => return Err(from_agent(e)),
    };
    if offset > 0 && res.status() != StatusCode::PARTIAL_CONTENT {
        offset = 0;
    }
    let size: Option<u64> = res
        .headers()
        .get(header::SIZE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let modified = res
        .headers()
        .get(header::MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_time);
    let Some(size) = size else {
        return Err(CopyError::Failed(
            "the agent did not say the file's size".into(),
        ));
    };

    let mut hasher = blake3::Hasher::new();
    let mut out = if offset > 0 {
        // Resuming: the prefix on disk is part of the whole-file hash.
        let prefix = partial.clone();
        hasher = tokio::task::spawn_blocking(move || -> std::io::Result<blake3::Hasher> {
            let mut h = blake3::Hasher::new();
            let mut f = std::fs::File::open(&prefix)?;
            std::io::copy(&mut std::io::Read::take(&mut f, offset), &mut h)?;
            Ok(h)
        })
        .await
        .map_err(|e| CopyError::Retry(e.to_string()))?
        .map_err(|e| local(e, "read", &partial))?;
        // Not append mode: holes are made by seeking past zeros, which append would defeat.
        let mut f = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .await
            .map_err(|e| local(e, "open", &partial))?;
        f.set_len(offset)
            .await
            .map_err(|e| local(e, "truncate", &partial))?;
        f.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| local(e, "seek in", &partial))?;
        f
    } else {
        tokio::fs::File::create(&partial)
            .await
            .map_err(|e| local(e, "create", &partial))?
    };
    let add = |n: u64| {
        meter.inflight.fetch_add(n, Ordering::Relaxed);
        counted.fetch_add(n, Ordering::Relaxed);
    };
    add(offset);
    let mut written = offset;
    let mut writer = tokio::io::BufWriter::with_capacity(1024 * 1024, &mut out);
    let mut trailers = None;
    while let Some(frame) = res.body_mut().frame().await {
        match frame.map(|f| f.into_data()) {
            Ok(Ok(data)) => {
                if let Some(l) = limiter {
                    l.take(data.len() as u64).await;
                }
                hasher.update(&data);
                if data.len() >= SPARSE_MIN && data.iter().all(|&b| b == 0) {
                    // Keep sparse files sparse: skip over zeros instead of writing them.
                    writer
                        .seek(SeekFrom::Start(written + data.len() as u64))
                        .await
                        .map_err(|e| local(e, "seek in", &partial))?;
                } else {
                    writer
                        .write_all(&data)
                        .await
                        .map_err(|e| local(e, "write", &partial))?;
                }
                written += data.len() as u64;
                add(data.len() as u64);
                meter
                    .received
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
            }
            Ok(Err(f)) => trailers = f.into_trailers().ok(),
            Err(e) => {
                // Keep what arrived: the next attempt resumes from it.
                let _ = writer.flush().await;
                let reason = format!("connection to the agent failed mid-file: {e}");
                return Err(if written > offset {
                    CopyError::Interrupted(reason)
                } else {
                    CopyError::Retry(reason)
                });
            }
        }
    }
    writer
        .flush()
        .await
        .map_err(|e| local(e, "write", &partial))?;
    drop(writer);
    // A file that ends in zeros skipped over above is as long as it was sent.
    out.set_len(written)
        .await
        .map_err(|e| local(e, "extend", &partial))?;
    let trailers = trailers.unwrap_or_default();
    if let Some(err) = trailers
        .get(header::READ_ERROR)
        .and_then(|v| v.to_str().ok())
    {
        drop(out);
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(CopyError::Changed(err.to_owned()));
    }
    let Some(expected) = trailers
        .get(header::BLAKE3)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
    else {
        return Err(CopyError::Retry("the agent sent no checksum".into()));
    };
    let got = hasher.finalize().to_hex().to_string();
    if got != expected || written != size {
        drop(out);
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(CopyError::Retry(format!(
            "checksum mismatch (got {} of {size} bytes)",
            written
        )));
    }
    out.sync_all()
        .await
        .map_err(|e| local(e, "sync", &partial))?;
    drop(out);
    if let Some(m) = modified {
        let (p, t) = (partial.clone(), file_time(m));
        tokio::task::spawn_blocking(move || filetime::set_file_mtime(&p, t))
            .await
            .map_err(|e| CopyError::Retry(e.to_string()))?
            .map_err(|e| local(e, "set the modification time of", &partial))?;
    }
    mode.store
        .mark_verified(mode.job.clone(), file.seq, got.clone())
        .await
        .map_err(|e| CopyError::Retry(e.to_string()))?;
    tokio::fs::rename(&partial, &dest)
        .await
        .map_err(|e| local(e, "rename into", &dest))?;
    if let Ok(dir) = tokio::fs::File::open(&parent).await {
        let _ = dir.sync_all().await;
    }
    Ok(Copied::Done {
        size,
        blake3: got,
        note,
    })
}
