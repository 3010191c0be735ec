//! Copying small files many at a time: one request brings a batch whole from the agent, and
//! Bifrost writes, syncs and renames it in two blocking steps around one journal transaction.
//!
//! One stream, one path check, two hops to the blocking pool and two transactions per file cost
//! more than the bytes of a 30 KiB file; a batch pays them once.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::StatusCode;
use http_body_util::BodyExt;
use mover_proto::api::Compare;
use mover_proto::many::{Decoder, FileRef, ReadMany, Record};

use super::copy::{self, from_agent, local, Copied, CopyError, Mode};
use super::landing::Landing;
use crate::agent_client::{AgentClient, AgentError};
use crate::metrics::Meter;
use crate::raw_path::RawPath;
use crate::store::PendingFile;

/// Files up to this size at the scan go in batches.
const FILE_MAX: u64 = 1 << 20;
/// Files per batch.
const FILES: usize = 128;
/// Bytes per batch (by the scan's sizes), so a batch's memory stays bounded (a job holds about
/// its concurrency times this).
const BYTES: u64 = 8 << 20;
/// Path bytes per batch, so the request stays under the agent's request limit.
const PATH_BYTES: usize = mover_proto::MAX_REQUEST_BODY / 2;
/// A file that has grown past this since the scan is read on its own.
const MAX_SIZE: u64 = 4 * FILE_MAX;

/// What became of each file of a batch.
pub type Outcomes = Vec<(PendingFile, Result<Copied, CopyError>)>;

/// Whether a file goes in a batch: a small file of a job without a bandwidth limit (paced jobs
/// keep the agent-side pacing of one-file reads) and not compared by content (that asks the
/// agent for each file's hash first).
pub fn batchable(file: &PendingFile, mode: &Mode, limited: bool) -> bool {
    !limited
        && mode.compare != Compare::Blake3
        && file.size <= FILE_MAX
        && !file.dest.0.ends_with(b"/")
}

/// Gathers files into batches.
#[derive(Default)]
pub struct Batcher {
    files: Vec<PendingFile>,
    bytes: u64,
    path_bytes: usize,
}

impl Batcher {
    /// Adds a file; gives back a batch once one is full.
    pub fn push(&mut self, file: PendingFile) -> Option<Vec<PendingFile>> {
        // As the request will spell it: JSON escapes can make a name six times longer.
        let path_bytes =
            serde_json::to_vec(&file_ref(&file.source)).map_or(PATH_BYTES, |json| json.len() + 1);
        let full = !self.files.is_empty()
            && (self.files.len() >= FILES
                || self.bytes + file.size > BYTES
                || self.path_bytes + path_bytes > PATH_BYTES);
        let out = if full { self.take() } else { None };
        self.bytes += file.size;
        self.path_bytes += path_bytes;
        self.files.push(file);
        out
    }

    /// The files gathered so far, if any.
    pub fn take(&mut self) -> Option<Vec<PendingFile>> {
        self.bytes = 0;
        self.path_bytes = 0;
        (!self.files.is_empty()).then(|| std::mem::take(&mut self.files))
    }
}

/// A file to fetch, and where it goes.
pub(super) struct Planned {
    pub(super) file: PendingFile,
    /// The open folder `dest`, `parent` and `partial` are named through.
    pub(super) _landing: Option<Arc<Landing>>,
    pub(super) dest: PathBuf,
    pub(super) parent: PathBuf,
    pub(super) partial: PathBuf,
    pub(super) note: Option<String>,
}

/// A file that arrived whole and verified.
pub(super) struct Arrived {
    pub(super) planned: Planned,
    pub(super) content: bytes::Bytes,
    pub(super) blake3: String,
    pub(super) modified: Option<filetime::FileTime>,
}

fn file_ref(source: &RawPath) -> FileRef {
    match source.query_pair() {
        ("path", p) => FileRef {
            path: Some(p),
            path_b64: None,
        },
        (_, b64) => FileRef {
            path: None,
            path_b64: Some(b64),
        },
    }
}

/// Copies a batch of small files (see [`batchable`]).
pub async fn copy_many(
    client: &AgentClient,
    files: Vec<PendingFile>,
    meter: &Meter,
    mode: &Mode,
) -> Outcomes {
    let mut out = Vec::with_capacity(files.len());
    let mut todo = Vec::new();
    let mut folders = HashMap::new();
    for file in files {
        match plan(file, mode, &mut folders) {
            Step::Fetch(p) => todo.push(p),
            Step::Settled(file, result) => out.push((file, result)),
        }
    }
    // A file whose destination is another's temporary name (a source file called
    // `.x.mover-part` beside `x`) would be renamed over it: such files go on their own, after
    // the batch.
    let partials: HashSet<PathBuf> = todo.iter().map(|p| p.partial.clone()).collect();
    let (todo, clashing): (Vec<Planned>, Vec<Planned>) =
        todo.into_iter().partition(|p| !partials.contains(&p.dest));
    let mut alone: Vec<PendingFile> = clashing.into_iter().map(|p| p.file).collect();
    if todo.is_empty() {
        for file in alone {
            let result = copy::copy_file(client, &file, meter, None, mode).await;
            out.push((file, result));
        }
        return out;
    }
    let count = todo.len() as u64;
    meter.active.fetch_add(count, Ordering::Relaxed);
    let mut counted = 0;
    match fetch(client, todo, meter, &mut counted, &mut out, &mut alone).await {
        Ok(arrived) => put_in_place(arrived, mode, &mut out).await,
        Err(not_served) => alone.extend(not_served),
    }
    meter.active.fetch_sub(count, Ordering::Relaxed);
    meter.inflight.fetch_sub(counted, Ordering::Relaxed);
    for file in alone {
        let result = copy::copy_file(client, &file, meter, None, mode).await;
        out.push((file, result));
    }
    out
}

/// What a batch does with one of its files.
enum Step {
    /// Fetch it.
    Fetch(Planned),
    /// Nothing: it is in place already.
    Settled(PendingFile, Result<Copied, CopyError>),
}

/// Where a file goes, or its outcome when it is already in place; the batch's files share
/// their folders' [`Landing`]s.
fn plan(file: PendingFile, mode: &Mode, folders: &mut HashMap<Vec<u8>, Arc<Landing>>) -> Step {
    let folder = {
        let d = &file.dest.0;
        d[..d.iter().rposition(|&b| b == b'/').unwrap_or(0)].to_vec()
    };
    let landing = match folders.get(&folder) {
        Some(l) => l.clone(),
        None => match Landing::open(&mode.roots, &file.dest) {
            Ok(l) => folders.entry(folder).or_insert(Arc::new(l)).clone(),
            Err(e) => return Step::Settled(file, Err(e)),
        },
    };
    let dest = landing.join(&file.dest.base_name().0);
    let parent = landing.dir().to_path_buf();
    let modified = file.modified.as_deref();
    let at_dest = std::fs::symlink_metadata(&dest).ok();
    if let Some(blake3) = &file.verified {
        // Verified and renamed by a Bifrost that died before recording it: this job's copy.
        if copy::same_file(at_dest.as_ref(), file.size, modified) {
            let done = Copied::Done {
                size: file.size,
                blake3: blake3.clone(),
                note: None,
            };
            return Step::Settled(file, Ok(done));
        }
    }
    if mode.compare == Compare::SizeMtime && copy::same_file(at_dest.as_ref(), file.size, modified)
    {
        let skipped = Copied::Skipped {
            reason: "already at the destination (same size and modification time)".into(),
        };
        return Step::Settled(file, Ok(skipped));
    }
    let partial = copy::partial_path(&dest);
    Step::Fetch(Planned {
        note: copy::note(mode.rerun, at_dest.is_some()),
        _landing: Some(landing),
        file,
        dest,
        parent,
        partial,
    })
}

/// Asks for the batch and checks each file as it arrives. Files the agent refused go to `out`,
/// files grown too big for a batch to `alone`; every file back when the agent does not serve
/// batches.
async fn fetch(
    client: &AgentClient,
    todo: Vec<Planned>,
    meter: &Meter,
    counted: &mut u64,
    out: &mut Outcomes,
    alone: &mut Vec<PendingFile>,
) -> Result<Vec<Arrived>, Vec<PendingFile>> {
    let request = ReadMany {
        files: todo.iter().map(|p| file_ref(&p.file.source)).collect(),
        max_size: MAX_SIZE,
    };
    let res = match client.read_many(&request).await {
        Ok(res) => res,
        // An agent from before batches, or a request it finds too big: each file on its own.
        Err(AgentError::Status {
            status: StatusCode::NOT_FOUND | StatusCode::PAYLOAD_TOO_LARGE,
            ..
        }) => return Err(todo.into_iter().map(|p| p.file).collect()),
        Err(e) => {
            out.extend(
                todo.into_iter()
                    .map(|p| (p.file, Err(from_agent(e.clone())))),
            );
            return Ok(Vec::new());
        }
    };
    let mut todo = todo.into_iter();
    let mut arrived = Vec::new();
    let mut held = 0u64;
    let mut decoder = Decoder::new(MAX_SIZE);
    let mut body = res.into_body();
    let mut failure = None;
    'frames: loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                decoder.push(data);
                loop {
                    let record = match decoder.next_record() {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => {
                            failure = Some(format!("the agent sent a malformed batch: {e}"));
                            break 'frames;
                        }
                    };
                    let Some(planned) = todo.next() else {
                        failure = Some("the agent sent more files than were asked for".into());
                        break 'frames;
                    };
                    let n = record.content.len() as u64;
                    meter.received.fetch_add(n, Ordering::Relaxed);
                    meter.inflight.fetch_add(n, Ordering::Relaxed);
                    *counted += n;
                    match check(planned, record) {
                        // Files that grew since the scan could make a batch far bigger than
                        // planned: past twice the plan, the rest are read again on their own.
                        Checked::Arrived(a) if held + a.content.len() as u64 > 2 * BYTES => {
                            alone.push(a.planned.file)
                        }
                        Checked::Arrived(a) => {
                            held += a.content.len() as u64;
                            arrived.push(a)
                        }
                        Checked::Alone(file) => alone.push(file),
                        Checked::Refused(file, e) => out.push((file, Err(e))),
                    }
                }
            }
            Some(Err(e)) => {
                failure = Some(format!("connection to the agent failed mid-batch: {e}"));
                break;
            }
            None => {
                if let Err(e) = decoder.finish() {
                    failure = Some(format!("the agent sent a malformed batch: {e}"));
                }
                break;
            }
        }
    }
    let failure = failure.unwrap_or_else(|| "the agent's answer left this file out".into());
    out.extend(todo.map(|p| (p.file, Err(CopyError::Retry(failure.clone())))));
    Ok(arrived)
}

enum Checked {
    Arrived(Arrived),
    Alone(PendingFile),
    Refused(PendingFile, CopyError),
}

/// One record against the file it answers: refused, too big for a batch, or verified.
fn check(planned: Planned, record: Record) -> Checked {
    if let Some(e) = record.head.error {
        if e.status == StatusCode::PAYLOAD_TOO_LARGE.as_u16() {
            return Checked::Alone(planned.file);
        }
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let e = from_agent(AgentError::Status {
            status,
            message: e.message,
        });
        return Checked::Refused(planned.file, e);
    }
    let ours = blake3::hash(&record.content);
    if record.blake3 != Some(*ours.as_bytes()) {
        let e = CopyError::Retry(format!(
            "checksum mismatch ({} bytes arrived)",
            record.content.len()
        ));
        return Checked::Refused(planned.file, e);
    }
    let modified = record
        .head
        .modified
        .as_deref()
        .and_then(copy::parse_time)
        .map(copy::file_time);
    Checked::Arrived(Arrived {
        planned,
        content: record.content,
        blake3: ours.to_hex().to_string(),
        modified,
    })
}

/// Writes and syncs the arrived files, journals them in one transaction, then renames them
/// and syncs their folders.
pub(super) async fn put_in_place(arrived: Vec<Arrived>, mode: &Mode, out: &mut Outcomes) {
    if arrived.is_empty() {
        return;
    }
    let files: Vec<PendingFile> = arrived.iter().map(|a| a.planned.file.clone()).collect();
    let lost = |e: tokio::task::JoinError, files: Vec<PendingFile>, out: &mut Outcomes| {
        out.extend(
            files
                .into_iter()
                .map(|f| (f, Err(CopyError::Retry(e.to_string())))),
        );
    };
    let written = match tokio::task::spawn_blocking(move || write_all(arrived)).await {
        Ok(w) => w,
        Err(e) => return lost(e, files, out),
    };
    let mut synced = Vec::new();
    for (planned, result) in written {
        match result {
            Ok(done) => synced.push((planned, done)),
            Err(e) => out.push((planned.file, Err(e))),
        }
    }
    let journal = synced
        .iter()
        .map(|(p, (_, blake3))| (p.file.seq, blake3.clone()))
        .collect();
    if let Err(e) = mode.store.mark_verified(mode.job.clone(), journal).await {
        out.extend(
            synced
                .into_iter()
                .map(|(p, _)| (p.file, Err(CopyError::Retry(e.to_string())))),
        );
        return;
    }
    let files: Vec<PendingFile> = synced.iter().map(|(p, _)| p.file.clone()).collect();
    match tokio::task::spawn_blocking(move || rename_all(synced)).await {
        Ok(done) => out.extend(done),
        Err(e) => lost(e, files, out),
    }
}

/// The blocking half of writing: each file created, written, dated and synced (dated first, so
/// the one sync makes its time durable too).
#[allow(clippy::type_complexity)]
fn write_all(arrived: Vec<Arrived>) -> Vec<(Planned, Result<(u64, String), CopyError>)> {
    arrived
        .into_iter()
        .map(|a| {
            let result = write_one(&a).map(|()| (a.content.len() as u64, a.blake3));
            (a.planned, result)
        })
        .collect()
}

fn write_one(a: &Arrived) -> Result<(), CopyError> {
    // Its folder was made when it was planned (see `Landing`).
    let p = &a.planned;
    let mut f = std::fs::File::create(&p.partial).map_err(|e| local(e, "create", &p.partial))?;
    f.write_all(&a.content)
        .map_err(|e| local(e, "write", &p.partial))?;
    if let Some(t) = a.modified {
        filetime::set_file_handle_times(&f, None, Some(t))
            .map_err(|e| local(e, "set the modification time of", &p.partial))?;
    }
    f.sync_all().map_err(|e| local(e, "sync", &p.partial))
}

/// The blocking half of putting in place: renames, then one sync per folder.
fn rename_all(synced: Vec<(Planned, (u64, String))>) -> Outcomes {
    let mut folders = HashSet::new();
    let out = synced
        .into_iter()
        .map(|(p, (size, blake3))| {
            let result = std::fs::rename(&p.partial, &p.dest)
                .map_err(|e| local(e, "rename into", &p.dest))
                .map(|()| {
                    folders.insert(p.parent.clone());
                    Copied::Done {
                        size,
                        blake3,
                        note: p.note,
                    }
                });
            (p.file, result)
        })
        .collect();
    for folder in folders {
        if let Ok(dir) = std::fs::File::open(&folder) {
            let _ = dir.sync_all();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: i64, size: u64) -> PendingFile {
        PendingFile::example(seq, size)
    }

    fn planned(seq: i64) -> Planned {
        Planned {
            file: pending(seq, 3),
            _landing: None,
            dest: PathBuf::from("/d/f"),
            parent: PathBuf::from("/d"),
            partial: PathBuf::from("/d/.f.mover-part"),
            note: None,
        }
    }

    fn record(content: &[u8], blake3: [u8; 32], error: Option<(u16, &str)>) -> Record {
        Record {
            head: mover_proto::many::Head {
                len: content.len() as u64,
                modified: Some("2026-11-24T10:00:00.5Z".into()),
                error: error.map(|(status, m)| mover_proto::many::RecordError {
                    status,
                    message: m.into(),
                }),
            },
            content: bytes::Bytes::copy_from_slice(content),
            blake3: Some(blake3),
        }
    }

    #[test]
    fn each_record_is_verified_or_says_what_became_of_its_file() {
        let good = *blake3::hash(b"abc").as_bytes();
        match check(planned(1), record(b"abc", good, None)) {
            Checked::Arrived(a) => {
                assert_eq!(a.blake3, blake3::hash(b"abc").to_hex().to_string());
                assert_eq!(&a.content[..], b"abc");
                assert_eq!(a.modified.map(|t| t.nanoseconds()), Some(500_000_000));
            }
            _ => panic!("a good record arrives"),
        }
        assert!(matches!(
            check(planned(2), record(b"abd", good, None)),
            Checked::Refused(_, CopyError::Retry(m)) if m.contains("checksum mismatch")
        ));
        assert!(matches!(
            check(
                planned(3),
                record(b"", good, Some((409, "changed during copy")))
            ),
            Checked::Refused(_, CopyError::Changed(_))
        ));
        assert!(matches!(
            check(planned(4), record(b"", good, Some((404, "gone")))),
            Checked::Refused(_, CopyError::Failed(m)) if m.starts_with("vanished")
        ));
        assert!(matches!(
            check(planned(5), record(b"", good, Some((403, "permission denied")))),
            Checked::Refused(_, CopyError::Failed(m)) if m == "permission denied"
        ));
        assert!(matches!(
            check(planned(6), record(b"", good, Some((413, "grew")))),
            Checked::Alone(f) if f.seq == 6
        ));
    }

    #[cfg(unix)]
    #[test]
    fn temporary_names_keep_the_exact_bytes_of_the_name() {
        use std::os::unix::ffi::OsStrExt;
        let dir = std::path::Path::new("/d");
        let a = copy::partial_path(&dir.join(std::ffi::OsStr::from_bytes(b"caf\xe9")));
        let b = copy::partial_path(&dir.join(std::ffi::OsStr::from_bytes(b"caf\xe8")));
        assert_ne!(a, b);
        assert_eq!(a.as_os_str().as_bytes(), b"/d/.caf\xe9.mover-part");
    }

    #[test]
    fn batches_are_bounded_by_files_bytes_and_path_length() {
        let mut b = Batcher::default();
        let mut batches = Vec::new();
        for seq in 0..(FILES as i64 * 2 + 1) {
            batches.extend(b.push(pending(seq, 10)));
        }
        batches.extend(b.take());
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [FILES, FILES, 1]);
        assert!(b.take().is_none());

        // By bytes: the biggest files that go in batches, a few to a batch.
        let mut b = Batcher::default();
        let per_batch = (BYTES / FILE_MAX) as usize;
        let full = (0..20).filter_map(|s| b.push(pending(s, FILE_MAX))).next();
        assert_eq!(full.map(|f| f.len()), Some(per_batch));

        // By path length as the request spells it: long paths make smaller batches, and names
        // JSON must escape count six bytes a character.
        for (name, per_batch) in [("x".repeat(4000), 8), ("\u{1}".repeat(1000), 5)] {
            let mut b = Batcher::default();
            let mut long = pending(0, 1);
            long.source = RawPath::new(&format!("/{name}"));
            let full = (0..20).filter_map(|_| b.push(long.clone())).next().unwrap();
            assert_eq!(full.len(), per_batch, "{name:.10}");
            let json = serde_json::to_vec(&ReadMany {
                files: full.iter().map(|f| file_ref(&f.source)).collect(),
                max_size: MAX_SIZE,
            })
            .unwrap();
            assert!(json.len() < mover_proto::MAX_REQUEST_BODY, "{}", json.len());
        }
    }
}
