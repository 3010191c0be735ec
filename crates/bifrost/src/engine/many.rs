//! Copying small files many at a time: one request brings a batch whole from the agent, and
//! the destination puts it in one batch commit.
//!
//! One stream per file costs more than the bytes of a 30 KiB file; a batch pays it once.

use std::sync::atomic::{AtomicU64, Ordering};

use http::StatusCode;
use mover_proto::api::Compare;
use mover_proto::many::{FileRef, ReadMany, Record};

use super::copy::{self, Copied, Mode};
use super::fetch::{Batch, Tap};
use crate::agent_client::{AgentClient, AgentError};
use crate::dest::{Destination, Whole};
use crate::failure::{from_agent, CopyError};
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

/// A file to fetch, and what the report will say about it.
pub(super) struct Planned {
    pub(super) file: PendingFile,
    pub(super) note: Option<String>,
}

/// A file that arrived whole and verified.
pub(super) struct Arrived {
    pub(super) planned: Planned,
    pub(super) whole: Whole,
}

/// Copies a batch of small files (see [`batchable`]).
pub async fn copy_many<D: Destination>(
    client: &AgentClient,
    dest: &D,
    files: Vec<PendingFile>,
    meter: &Meter,
    mode: &Mode,
) -> Outcomes {
    let mut out = Vec::with_capacity(files.len());
    let mut todo = Vec::new();
    for file in files {
        match dest.plan(&file.dest).await {
            Err(e) => out.push((file, Err(e))),
            Ok(existing) => match copy::settled(&file, existing.as_ref(), mode.compare) {
                Some(done) => out.push((file, Ok(done))),
                None => todo.push(Planned {
                    note: copy::note(mode.rerun, existing.is_some()),
                    file,
                }),
            },
        }
    }
    let mut alone = Vec::new();
    if !todo.is_empty() {
        let count = todo.len() as u64;
        meter.active.fetch_add(count, Ordering::Relaxed);
        let counted = AtomicU64::new(0);
        let tap = Tap {
            meter,
            counted: &counted,
            limiter: None,
        };
        match fetch(client, todo, &tap, &mut out, &mut alone).await {
            Ok(arrived) => put(dest, arrived, mode, &mut out).await,
            Err(not_served) => alone.extend(not_served),
        }
        meter.active.fetch_sub(count, Ordering::Relaxed);
        meter
            .inflight
            .fetch_sub(counted.load(Ordering::Relaxed), Ordering::Relaxed);
    }
    for file in alone {
        let result = copy::copy_file(client, dest, &file, meter, None, mode).await;
        out.push((file, result));
    }
    out
}

/// Asks for the batch and checks each file as it arrives. Files the agent refused go to `out`,
/// files grown too big for a batch to `alone`; every file back when the agent does not serve
/// batches.
async fn fetch(
    client: &AgentClient,
    todo: Vec<Planned>,
    tap: &Tap<'_>,
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
    let mut batch = Batch::new(res, MAX_SIZE);
    let failure = loop {
        let record = match batch.next(tap).await {
            Ok(Some(r)) => r,
            Ok(None) => break None,
            Err(e) => break Some(e),
        };
        let Some(planned) = todo.next() else {
            break Some("the agent sent more files than were asked for".into());
        };
        match check(planned, record) {
            // Files that grew since the scan could make a batch far bigger than planned: past
            // twice the plan, the rest are read again on their own.
            Checked::Arrived(a) if held + a.whole.content.len() as u64 > 2 * BYTES => {
                alone.push(a.planned.file)
            }
            Checked::Arrived(a) => {
                held += a.whole.content.len() as u64;
                arrived.push(a)
            }
            Checked::Alone(file) => alone.push(file),
            Checked::Refused(file, e) => out.push((file, Err(e))),
        }
    };
    let failure = failure.unwrap_or_else(|| "the agent's answer left this file out".into());
    out.extend(todo.map(|p| (p.file, Err(CopyError::Link(failure.clone())))));
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
        let e = CopyError::Checksum(format!(
            "checksum mismatch ({} bytes arrived)",
            record.content.len()
        ));
        return Checked::Refused(planned.file, e);
    }
    let modified = record
        .head
        .modified
        .as_deref()
        .and_then(crate::dest::parse_time);
    Checked::Arrived(Arrived {
        whole: Whole {
            seq: planned.file.seq,
            dest: planned.file.dest.clone(),
            content: record.content,
            blake3: ours.to_hex().to_string(),
            modified,
        },
        planned,
    })
}

/// Puts the arrived files in one batch commit.
async fn put<D: Destination>(dest: &D, arrived: Vec<Arrived>, mode: &Mode, out: &mut Outcomes) {
    if arrived.is_empty() {
        return;
    }
    let (planned, wholes): (Vec<Planned>, Vec<Whole>) =
        arrived.into_iter().map(|a| (a.planned, a.whole)).unzip();
    let done: Vec<(u64, String)> = wholes
        .iter()
        .map(|w| (w.content.len() as u64, w.blake3.clone()))
        .collect();
    let results = dest.put_whole(wholes, &mode.journal()).await;
    for ((p, (size, blake3)), result) in planned.into_iter().zip(done).zip(results) {
        let result = result.map(|()| Copied::Done {
            size,
            blake3,
            note: p.note,
        });
        out.push((p.file, result));
    }
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
                assert_eq!(a.whole.blake3, blake3::hash(b"abc").to_hex().to_string());
                assert_eq!(&a.whole.content[..], b"abc");
                assert_eq!(a.whole.modified.map(|t| t.nanosecond()), Some(500_000_000));
            }
            _ => panic!("a good record arrives"),
        }
        assert!(matches!(
            check(planned(2), record(b"abd", good, None)),
            Checked::Refused(_, CopyError::Checksum(m)) if m.contains("checksum mismatch")
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
            Checked::Refused(_, CopyError::Vanished)
        ));
        assert!(matches!(
            check(planned(5), record(b"", good, Some((403, "permission denied")))),
            Checked::Refused(_, CopyError::Refused { kind: "permission", message: m }) if m == "permission denied"
        ));
        assert!(matches!(
            check(planned(6), record(b"", good, Some((413, "grew")))),
            Checked::Alone(f) if f.seq == 6
        ));
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
