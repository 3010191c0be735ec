//! Copying one file: resume from a partial temp file, verify BLAKE3, fsync, keep mtime, rename.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use http_body_util::BodyExt;
use mover_proto::api::Compare;
use mover_proto::limits::{self, LimitError};
use mover_proto::{header, route, FileHash};

use super::landing::Landing;
use super::limit::Limiter;
use super::parts::{copy_in_parts, parts_journal, SPLIT_MIN};
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
#[derive(Debug)]
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
pub(super) fn from_agent(e: AgentError) -> CopyError {
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
        // The same lie would come back on a retry.
        AgentError::Limit(e) => CopyError::Failed(e.to_string()),
        e => CopyError::Retry(e.to_string()),
    }
}

/// Runs of zeros at least this long become holes in the copy.
const SPARSE_MIN: usize = 4096;

/// Writes chunks at their offsets on a blocking thread, so the bytes from the network reach
/// the file without another copy (tokio's `File` copies every write into a buffer of its own,
/// and a `BufWriter` in front of it copied them once more: a sixth of Bifrost's CPU on a big
/// file). A chunk of zeros is skipped over instead, so sparse files stay sparse.
///
/// Dropped without [`ChunkWriter::finish`] (an attempt given up), it writes nothing more, so
/// late bytes of an abandoned attempt cannot land in the next attempt's file.
pub(super) struct ChunkWriter {
    tx: Option<tokio::sync::mpsc::Sender<(u64, bytes::Bytes)>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<std::fs::File>>>,
    abandoned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ChunkWriter {
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.abandoned.store(true, Ordering::SeqCst);
        }
    }
}

impl ChunkWriter {
    pub(super) async fn new(file: tokio::fs::File) -> Self {
        use std::io::{Seek, Write};
        let mut file = file.into_std().await;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<(u64, bytes::Bytes)>(16);
        let abandoned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = abandoned.clone();
        let task = tokio::task::spawn_blocking(move || {
            let mut pos = None;
            let mut flusher = Flusher::default();
            while let Some((at, data)) = rx.blocking_recv() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                if data.len() >= SPARSE_MIN && data.iter().all(|&b| b == 0) {
                    continue;
                }
                if pos != Some(at) {
                    file.seek(SeekFrom::Start(at))?;
                }
                file.write_all(&data)?;
                pos = Some(at + data.len() as u64);
                flusher.wrote(&file, data.len())?;
            }
            flusher.wait()?;
            Ok(file)
        });
        Self {
            tx: Some(tx),
            task: Some(task),
            abandoned,
        }
    }

    /// Queues `data` to be written at `at`; false once writing has failed (see `finish`).
    pub(super) async fn put(&mut self, at: u64, data: bytes::Bytes) -> bool {
        match &self.tx {
            Some(tx) => tx.send((at, data)).await.is_ok(),
            None => false,
        }
    }

    /// Waits until every queued chunk is written.
    pub(super) async fn finish(mut self) -> std::io::Result<tokio::fs::File> {
        self.tx.take();
        let task = self
            .task
            .take()
            .ok_or_else(|| std::io::Error::other("finished twice"))?;
        let file = task
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(tokio::fs::File::from_std(file))
    }
}

/// Bytes written after which a flush to the disk starts in the background: the disk writes while
/// the copy goes on, and the fsync before the rename waits for the last stretch only instead of
/// the whole file (a writer paced at 600 MB/s put 2 GiB on this VM's disk in 6.3 s with all of
/// it synced at the end, 3.7 s so). Copies in parts do the same through their journal's syncs.
const FLUSH_EVERY: u64 = 64 << 20;

/// The background flushes of a file being written, one at a time.
#[derive(Default)]
struct Flusher {
    unflushed: u64,
    running: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Flusher {
    /// Counts `n` bytes written to `file`, and starts a flush once enough are and none runs.
    fn wrote(&mut self, file: &std::fs::File, n: usize) -> std::io::Result<()> {
        self.unflushed += n as u64;
        if self.unflushed < FLUSH_EVERY {
            return Ok(());
        }
        if let Some(running) = &self.running {
            if !running.is_finished() {
                return Ok(());
            }
            self.wait()?;
        }
        let file = file.try_clone()?;
        self.running = Some(std::thread::spawn(move || file.sync_data()));
        self.unflushed = 0;
        Ok(())
    }

    /// Waits for the flush in progress. Its error is the copy's: Linux reports a failed
    /// write-back once per open file, so the final fsync would not see it again.
    fn wait(&mut self) -> std::io::Result<()> {
        match self.running.take() {
            Some(running) => running
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("a background flush panicked"))),
            None => Ok(()),
        }
    }
}

/// The agent's trailer saying a read could not be completed correctly (the file changed).
pub(super) fn read_error(trailers: &http::HeaderMap) -> Option<String> {
    trailers
        .get(header::READ_ERROR)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// What a failed file operation at the destination means for the file: a full disk or quota
/// pauses the job (see `full`), anything else fails the file.
pub(super) fn local(e: std::io::Error, what: &str, path: &Path) -> CopyError {
    if super::full::is_disk_full(&e) {
        CopyError::DiskFull(super::full::reason(&e))
    } else {
        let shown = super::landing::shown(path);
        CopyError::Failed(format!("cannot {what} {}: {e}", shown.display()))
    }
}

pub(super) fn parse_time(s: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

pub(super) fn file_time(t: time::OffsetDateTime) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(t.unix_timestamp(), t.nanosecond())
}

/// Whether the destination already holds this file: same size and same mtime to the second.
/// Whether what is at a destination (its metadata, symlinks not followed) is a file of this
/// size and modification time.
pub(super) fn same_file(
    at_dest: Option<&std::fs::Metadata>,
    size: u64,
    modified: Option<&str>,
) -> bool {
    let (Some(meta), Some(m)) = (at_dest, modified.and_then(parse_time)) else {
        return false;
    };
    let mtime = filetime::FileTime::from_last_modification_time(meta);
    meta.is_file() && meta.len() == size && mtime.unix_seconds() == m.unix_timestamp()
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

/// The temporary file a copy is written to before its rename to `dest`, beside it.
pub(super) fn partial_path(dest: &Path) -> std::path::PathBuf {
    // From the name's exact bytes: two names that differ only in bytes that are not UTF-8 must
    // not share a temporary file.
    let mut name = std::ffi::OsString::from(".");
    name.push(dest.file_name().unwrap_or_default());
    name.push(".mover-part");
    dest.with_file_name(name)
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
    /// The job's destination roots: nothing is written outside them.
    pub roots: std::sync::Arc<[crate::raw_path::RawPath]>,
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
    // Sizes were checked as they were listed; a database from before that check is not trusted.
    limits::file_size(file.size).map_err(|e| CopyError::Failed(e.to_string()))?;
    if file.dest.0.ends_with(b"/") {
        let there = std::fs::symlink_metadata(file.dest.to_path()).is_ok_and(|m| m.is_dir());
        // Made beneath the job's root, like every folder a copy writes into.
        Landing::open(&mode.roots, &file.dest)?;
        if there {
            return Ok(Copied::Skipped {
                reason: "folder already at the destination".into(),
            });
        }
        return Ok(Copied::Done {
            size: 0,
            blake3: blake3::hash(b"").to_hex().to_string(),
            note: rerun.then(|| "new since the last run".into()),
        });
    }
    // Every write below goes through this open folder: see `landing`.
    let landing = Landing::open(&mode.roots, &file.dest)?;
    let dest = landing.join(file.dest.base_name().0.as_slice());
    let parent = landing.dir().to_path_buf();
    // One quick metadata call: not worth a hop to the blocking pool per file.
    let at_dest = std::fs::symlink_metadata(&dest).ok();
    // Verified and renamed by a Bifrost that died before recording it: it is this job's copy.
    if let Some(blake3) = &file.verified {
        if same_file(at_dest.as_ref(), file.size, file.modified.as_deref()) {
            return Ok(Copied::Done {
                size: file.size,
                blake3: blake3.clone(),
                note: None,
            });
        }
    }
    match mode.compare {
        Compare::SizeMtime if same_file(at_dest.as_ref(), file.size, file.modified.as_deref()) => {
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
    let note = note(rerun, at_dest.is_some());
    let partial = partial_path(&dest);
    if file.size <= SMALL_FILE {
        let target = Target {
            dest: &dest,
            parent: &parent,
            partial: &partial,
        };
        if let Some(done) = copy_small(
            client,
            file,
            meter,
            counted,
            limiter,
            mode,
            target,
            note.clone(),
        )
        .await?
        {
            return Ok(done);
        }
    }
    let have = tokio::fs::metadata(&partial)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    // A big file over several lanes goes in parts, each on its own stream; a job with a
    // bandwidth limit is paced anyway and keeps to one stream (and its byte-exact resume).
    // A file begun in parts goes on in parts, even before the lanes are back.
    let begun_in_parts = tokio::fs::try_exists(parts_journal(&partial))
        .await
        .unwrap_or(false);
    if limiter.is_none() && file.size > SPLIT_MIN && (client.lanes() > 1 || begun_in_parts) {
        let add = |n: u64| {
            meter.inflight.fetch_add(n, Ordering::Relaxed);
            counted.fetch_add(n, Ordering::Relaxed);
        };
        if let Some(a) = copy_in_parts(client, file, meter, &add, &partial).await? {
            return finish(a, file, mode, &partial, &dest, &parent, note).await;
        }
    }
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
    let size = limits::file_size(size).map_err(|e| CopyError::Failed(e.to_string()))?;
    if offset > size {
        offset = 0;
    }

    let mut hasher = blake3::Hasher::new();
    let out = if offset > 0 {
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
        let f = tokio::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .await
            .map_err(|e| local(e, "open", &partial))?;
        f.set_len(offset)
            .await
            .map_err(|e| local(e, "truncate", &partial))?;
        f
    } else {
        // A new file, not the old one truncated: a writer of an abandoned attempt still holding
        // the old one cannot reach this one.
        let _ = tokio::fs::remove_file(&partial).await;
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
    let mut writer = ChunkWriter::new(out).await;
    let mut trailers = None;
    while let Some(frame) = res.body_mut().frame().await {
        match frame.map(|f| f.into_data()) {
            Ok(Ok(data)) => {
                let n = data.len() as u64;
                if written + n > size {
                    // Not one byte past what was announced reaches the disk.
                    drop(writer);
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(CopyError::Retry(LimitError::TooLong(size).to_string()));
                }
                if let Some(l) = limiter {
                    l.take(n).await;
                }
                hasher.update(&data);
                if !writer.put(written, data).await {
                    break;
                }
                written += n;
                add(n);
                meter.received.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(f)) => trailers = f.into_trailers().ok(),
            Err(e) => {
                // Keep what arrived: the next attempt resumes from it.
                let _ = writer.finish().await;
                let reason = format!("connection to the agent failed mid-file: {e}");
                return Err(if written > offset {
                    CopyError::Interrupted(reason)
                } else {
                    CopyError::Retry(reason)
                });
            }
        }
    }
    let out = writer
        .finish()
        .await
        .map_err(|e| local(e, "write", &partial))?;
    // A file that ends in zeros skipped over above is as long as it was sent.
    out.set_len(written)
        .await
        .map_err(|e| local(e, "extend", &partial))?;
    let trailers = trailers.unwrap_or_default();
    if let Some(err) = read_error(&trailers) {
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
    let assembled = Assembled {
        out,
        size,
        blake3: got,
        modified,
        in_parts: false,
    };
    finish(assembled, file, mode, &partial, &dest, &parent, note).await
}

/// A verified copy in its temporary file.
pub(super) struct Assembled {
    pub(super) out: tokio::fs::File,
    pub(super) size: u64,
    pub(super) blake3: String,
    pub(super) modified: Option<time::OffsetDateTime>,
    /// Copied in parts: a parts journal is beside it.
    pub(super) in_parts: bool,
}

/// Makes a verified copy durable and puts it in place: modification time, fsync (which then
/// covers the time too), journal, rename, folder fsync.
async fn finish(
    a: Assembled,
    file: &PendingFile,
    mode: &Mode,
    partial: &Path,
    dest: &Path,
    parent: &Path,
    note: Option<String>,
) -> Result<Copied, CopyError> {
    let out = a.out.into_std().await;
    let modified = a.modified.map(file_time);
    tokio::task::spawn_blocking(move || {
        if let Some(t) = modified {
            filetime::set_file_handle_times(&out, None, Some(t))
                .map_err(|e| ("set the modification time of", e))?;
        }
        out.sync_all().map_err(|e| ("sync", e))
    })
    .await
    .map_err(|e| CopyError::Retry(e.to_string()))?
    .map_err(|(what, e)| local(e, what, partial))?;
    mode.store
        .mark_verified(mode.job.clone(), vec![(file.seq, a.blake3.clone())])
        .await
        .map_err(|e| CopyError::Retry(e.to_string()))?;
    if a.in_parts {
        let _ = tokio::fs::remove_file(parts_journal(partial)).await;
    }
    tokio::fs::rename(partial, dest)
        .await
        .map_err(|e| local(e, "rename into", dest))?;
    if let Ok(dir) = tokio::fs::File::open(parent).await {
        let _ = dir.sync_all().await;
    }
    Ok(Copied::Done {
        size: a.size,
        blake3: a.blake3,
        note,
    })
}

/// Files up to this size are read whole into memory and written, synced and renamed in one
/// blocking step: with many small files, the hops to the blocking pool per file operation
/// cost more than the copying.
const SMALL_FILE: u64 = 1 << 20;

/// Where a copy goes.
struct Target<'a> {
    dest: &'a Path,
    parent: &'a Path,
    partial: &'a Path,
}

/// Copies a small file: read whole, verified, then written and put in place with one hop to
/// the blocking pool on each side of the journal entry. `None` when the file has grown too big
/// to hold in memory since it was listed: it is then streamed like a big one.
#[allow(clippy::too_many_arguments)]
async fn copy_small(
    client: &AgentClient,
    file: &PendingFile,
    meter: &Meter,
    counted: &AtomicU64,
    limiter: Option<&Limiter>,
    mode: &Mode,
    t: Target<'_>,
    note: Option<String>,
) -> Result<Option<Copied>, CopyError> {
    let mut res = client
        .read(&file.source, 0, limiter.map(Limiter::rate))
        .await
        .map_err(from_agent)?;
    let h = res.headers();
    let text = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let Some(size) = text(header::SIZE).and_then(|s| s.parse::<u64>().ok()) else {
        return Err(CopyError::Failed(
            "the agent did not say the file's size".into(),
        ));
    };
    let modified = text(header::MODIFIED).as_deref().and_then(parse_time);
    if size > 4 * SMALL_FILE {
        return Ok(None);
    }
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut hasher = blake3::Hasher::new();
    let mut trailers = None;
    while let Some(frame) = res.body_mut().frame().await {
        match frame.map(|f| f.into_data()) {
            Ok(Ok(chunk)) => {
                if let Some(l) = limiter {
                    l.take(chunk.len() as u64).await;
                }
                if data.len() as u64 + chunk.len() as u64 > size {
                    return Err(CopyError::Retry(LimitError::TooLong(size).to_string()));
                }
                hasher.update(&chunk);
                data.extend_from_slice(&chunk);
                let n = chunk.len() as u64;
                meter.inflight.fetch_add(n, Ordering::Relaxed);
                counted.fetch_add(n, Ordering::Relaxed);
                meter.received.fetch_add(n, Ordering::Relaxed);
            }
            Ok(Err(f)) => trailers = f.into_trailers().ok(),
            Err(e) => {
                return Err(CopyError::Retry(format!(
                    "connection to the agent failed mid-file: {e}"
                )))
            }
        }
    }
    let trailers = trailers.unwrap_or_default();
    if let Some(err) = read_error(&trailers) {
        return Err(CopyError::Changed(err));
    }
    let Some(expected) = trailers.get(header::BLAKE3).and_then(|v| v.to_str().ok()) else {
        return Err(CopyError::Retry("the agent sent no checksum".into()));
    };
    let got = hasher.finalize().to_hex().to_string();
    if got != expected || data.len() as u64 != size {
        return Err(CopyError::Retry(format!(
            "checksum mismatch (got {} of {size} bytes)",
            data.len()
        )));
    }
    // Put in place exactly as a batch of one: written, synced, journaled, renamed.
    let arrived = super::many::Arrived {
        planned: super::many::Planned {
            file: file.clone(),
            // The caller holds the folder open until the copy is in place.
            _landing: None,
            dest: t.dest.to_path_buf(),
            parent: t.parent.to_path_buf(),
            partial: t.partial.to_path_buf(),
            note,
        },
        content: data.into(),
        blake3: got,
        modified: modified.map(file_time),
    };
    let mut out = Vec::with_capacity(1);
    super::many::put_in_place(vec![arrived], mode, &mut out).await;
    match out.pop() {
        Some((_, result)) => result.map(Some),
        None => Err(CopyError::Retry("the copy was not put in place".into())),
    }
}
