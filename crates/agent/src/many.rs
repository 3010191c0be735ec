//! Serving several small files in one answer (the framing is in `mover_proto::many`).

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body::Frame;
use mover_proto::many::{head_bytes, FileRef, Head, ReadMany, RecordError, MAX_FILE, MAX_FILES};
use tokio::sync::mpsc;

use crate::fsops::{self, OpenFile};
use crate::paths::{FolderCache, PathError, Shares};
use crate::service::{ReadGuard, Shared};
use crate::status::Activity;

/// Checks a request before any file is touched.
pub fn check(req: &ReadMany) -> Result<(), String> {
    if req.files.len() > MAX_FILES {
        return Err(format!(
            "{} files asked for; at most {MAX_FILES} per request",
            req.files.len()
        ));
    }
    if req.max_size > MAX_FILE {
        return Err(format!(
            "max_size {} is over the {MAX_FILE} bytes a batch may hold per file",
            req.max_size
        ));
    }
    Ok(())
}

/// Sends one record per file into `tx`, reading each file whole first. Runs on a blocking
/// thread; stops when the receiver is gone.
pub fn serve(
    shared: &Shared,
    req: ReadMany,
    tx: &mpsc::Sender<Result<Frame<Bytes>, std::io::Error>>,
) {
    let _guard = ReadGuard::new(&shared.reads);
    let shares = shared.shares.borrow().clone();
    let mut folders = FolderCache::new();
    for file in req.files {
        let (record, sent) = record(&shares, &mut folders, file, req.max_size);
        if let Some((path, _)) = &sent {
            let _ = shared
                .activity
                .send(Activity::Upload { path: path.clone() });
        }
        if tx.blocking_send(Ok(Frame::data(record))).is_err() {
            return;
        }
        if let Some((_, bytes)) = sent {
            shared.sent.fetch_add(bytes, Ordering::Relaxed);
        }
    }
}

/// One file's record, and the path and size of what it carries when it carries the file.
fn record(
    shares: &Shares,
    folders: &mut FolderCache,
    file: FileRef,
    max_size: u64,
) -> (Bytes, Option<(String, u64)>) {
    match one(shares, folders, file, max_size) {
        Ok(r) => r,
        Err(e) => (error_record(e.status(), &e.to_string()), None),
    }
}

/// Longest error message in a record: a long path quoted in it must not make the head longer
/// than Bifrost accepts (which would fail the rest of the batch).
const MAX_MESSAGE: usize = 4096;

fn error_record(status: u16, message: &str) -> Bytes {
    let mut message = message.to_owned();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    Bytes::from(head_bytes(&Head {
        error: Some(RecordError { status, message }),
        ..Head::default()
    }))
}

fn path_of(file: FileRef) -> Result<PathBuf, PathError> {
    match (file.path, file.path_b64) {
        (_, Some(b64)) => crate::paths::from_b64(&b64),
        (Some(p), None) => Ok(PathBuf::from(p)),
        (None, None) => Err(PathError::Malformed("a file without path or path_b64")),
    }
}

fn one(
    shares: &Shares,
    folders: &mut FolderCache,
    file: FileRef,
    max_size: u64,
) -> Result<(Bytes, Option<(String, u64)>), PathError> {
    let raw = path_of(file)?;
    let shown = raw.display().to_string();
    let real = shares.resolve_file(&raw, folders)?;
    let open = fsops::open_file(&real, &shown)?;
    if open.size > max_size {
        let message = format!(
            "{shown} is {} bytes now, more than the {max_size} asked for",
            open.size
        );
        return Ok((error_record(413, &message), None));
    }
    tracing::info!(path = %shown, start = 0, end = open.size, "read");
    let size = open.size;
    let head = head_bytes(&Head {
        len: size,
        modified: open.modified.and_then(fsops::rfc3339),
        error: None,
    });
    let at = head.len();
    let mut record = head;
    // Bounded by `max_size` above.
    record.reserve(size as usize + blake3::OUT_LEN);
    match read_whole(open, &mut record) {
        Ok(true) => {}
        Ok(false) => return Ok((error_record(409, "changed during copy"), None)),
        Err(e) => return Err(PathError::from_io(&shown, &e)),
    }
    let hash = blake3::hash(&record[at..]);
    record.extend_from_slice(hash.as_bytes());
    Ok((Bytes::from(record), Some((shown, size))))
}

/// Appends the whole file to `out`; false when it changed size or time while it was read.
fn read_whole(open: OpenFile, out: &mut Vec<u8>) -> std::io::Result<bool> {
    let start = out.len();
    let OpenFile {
        mut file,
        size,
        modified,
    } = open;
    // One byte more than the size: a file that grew shows here even if its time did not move.
    (&mut file).take(size + 1).read_to_end(out)?;
    if (out.len() - start) as u64 != size {
        return Ok(false);
    }
    let now = file.metadata()?;
    Ok(now.len() == size && now.modified().ok() == modified)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use mover_proto::many::Decoder;

    fn file_ref(p: &std::path::Path) -> FileRef {
        FileRef {
            path: Some(p.display().to_string()),
            path_b64: None,
        }
    }

    #[test]
    fn each_file_gets_its_record_whole_or_the_reason_it_has_none() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        let content: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        std::fs::write(share.join("sub/a"), &content).unwrap();
        std::fs::write(share.join("sub/empty"), b"").unwrap();
        std::fs::write(share.join("sub/big"), vec![1u8; 5000]).unwrap();
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), share.join("sub/link")).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(share.join("sub/fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        let shares = Shares::new(std::slice::from_ref(&share)).unwrap();
        let mut folders = FolderCache::new();
        let mut answer = Vec::new();
        let mut carried = Vec::new();
        let names = ["a", "empty", "gone", "big", "link", "fifo"];
        for name in names {
            let (bytes, sent) = record(
                &shares,
                &mut folders,
                file_ref(&share.join("sub").join(name)),
                4096 * 20,
            );
            answer.extend_from_slice(&bytes);
            carried.push(sent.map(|(_, n)| n));
        }
        answer.extend_from_slice(&record(&shares, &mut folders, FileRef::default(), 10).0);
        assert_eq!(
            carried,
            [Some(70_000), Some(0), None, Some(5000), None, None]
        );
        let mut d = Decoder::new(4096 * 20);
        d.push(&answer);
        let mut got = Vec::new();
        while let Some(r) = d.next_record().unwrap() {
            got.push(r);
        }
        d.finish().unwrap();
        assert_eq!(got.len(), names.len() + 1);
        assert_eq!(got[0].content, content);
        assert_eq!(got[0].blake3, Some(*blake3::hash(&content).as_bytes()));
        assert!(got[0].head.modified.is_some());
        assert!(got[1].content.is_empty() && got[1].blake3.is_some());
        let status = |i: usize| got[i].head.error.as_ref().map(|e| e.status);
        assert_eq!(status(2), Some(404));
        assert_eq!(status(3), None);
        assert_eq!(status(4), Some(403), "a symlink is refused, not followed");
        assert_eq!(status(5), Some(403), "a FIFO is never opened");
        assert_eq!(status(6), Some(400));

        // Grown past the limit since it was listed: read on its own instead.
        let (bytes, _) = record(
            &shares,
            &mut folders,
            file_ref(&share.join("sub/big")),
            4000,
        );
        let mut d = Decoder::new(4000);
        d.push(&bytes);
        assert_eq!(
            d.next_record().unwrap().unwrap().head.error.unwrap().status,
            413
        );
    }

    #[test]
    fn a_long_error_message_keeps_its_record_readable() {
        let long = "\"é".repeat(40_000);
        let mut d = Decoder::new(10);
        d.push(&error_record(403, &long));
        let r = d.next_record().unwrap().unwrap();
        let message = r.head.error.unwrap().message;
        assert!(message.len() <= MAX_MESSAGE + '…'.len_utf8() && message.ends_with('…'));
    }

    #[test]
    fn a_file_that_grows_while_it_is_read_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"first").unwrap();
        let open = fsops::open_file(&path, "f").unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b" and more").unwrap();
        let mut out = Vec::new();
        assert!(!read_whole(open, &mut out).unwrap());

        let open = fsops::open_file(&path, "f").unwrap();
        let mut out = b"head".to_vec();
        assert!(read_whole(open, &mut out).unwrap());
        assert_eq!(out, b"headfirst and more");
    }
}
