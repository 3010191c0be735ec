//! Serving several small files in one answer (the framing is in `mover_proto::many`).

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body::Frame;
use mover_proto::many::{head_bytes, FileRef, Head, ReadMany, RecordError, MAX_FILE, MAX_FILES};
use tokio::sync::mpsc;

use crate::bufpool::{self, Buf};
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
    let mut out = Packer::default();
    let mut unsent = 0;
    let send = |frames: Vec<Bytes>| {
        frames
            .into_iter()
            .all(|f| tx.blocking_send(Ok(Frame::data(f))).is_ok())
    };
    for file in req.files {
        if let Some((path, bytes)) = pack(&shares, &mut folders, file, req.max_size, &mut out) {
            let _ = shared.activity.send(Activity::Upload { path });
            unsent += bytes;
        }
        let ready = out.take_ready();
        if !ready.is_empty() {
            if !send(ready) {
                return;
            }
            shared
                .sent
                .fetch_add(std::mem::take(&mut unsent), Ordering::Relaxed);
        }
    }
    if send(out.finish()) {
        shared.sent.fetch_add(unsent, Ordering::Relaxed);
    }
}

/// Records packed into pooled buffers, handed on a buffer at a time. A buffer and a frame per
/// record cost the agent a tenth of its CPU in page faults (glibc returning and re-faulting
/// its heap) and as much again in HTTP/2 and TLS work per frame.
#[derive(Default)]
struct Packer {
    buf: Option<Buf>,
    len: usize,
    /// A record too big for a pooled buffer, being written.
    big: Option<Vec<u8>>,
    ready: Vec<Bytes>,
}

impl Packer {
    /// Room for the next record, `n` bytes: kept by [`Packer::commit`], given up otherwise.
    fn space(&mut self, n: usize) -> &mut [u8] {
        let pool = &*bufpool::CHUNKS;
        self.big = None;
        if n > pool.size() {
            self.flush();
            return self.big.insert(vec![0; n]);
        }
        if self.len + n > pool.size() {
            self.flush();
        }
        let buf = self.buf.get_or_insert_with(|| pool.get());
        &mut buf.space()[self.len..self.len + n]
    }

    /// Keeps the first `n` bytes of the last [`Packer::space`].
    fn commit(&mut self, n: usize) {
        match self.big.take() {
            Some(mut big) => {
                big.truncate(n);
                self.ready.push(Bytes::from(big));
            }
            None => self.len += n,
        }
    }

    fn push(&mut self, record: &[u8]) {
        self.space(record.len()).copy_from_slice(record);
        self.commit(record.len());
    }

    fn flush(&mut self) {
        self.big = None;
        if let Some(buf) = self.buf.take() {
            if self.len > 0 {
                self.ready.push(buf.freeze(self.len));
            }
        }
        self.len = 0;
    }

    /// The buffers filled so far, in order.
    fn take_ready(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.ready)
    }

    /// Everything left, in order.
    fn finish(mut self) -> Vec<Bytes> {
        self.flush();
        self.ready
    }
}

/// Packs one file's record; the path and size of what it carries when it carries the file.
fn pack(
    shares: &Shares,
    folders: &mut FolderCache,
    file: FileRef,
    max_size: u64,
    out: &mut Packer,
) -> Option<(String, u64)> {
    match one(shares, folders, file, max_size, out) {
        Ok(sent) => sent,
        Err(e) => {
            out.push(&error_record(e.status(), &e.to_string()));
            None
        }
    }
}

/// Longest error message in a record: a long path quoted in it must not make the head longer
/// than Bifrost accepts (which would fail the rest of the batch).
const MAX_MESSAGE: usize = 4096;

fn error_record(status: u16, message: &str) -> Vec<u8> {
    let mut message = message.to_owned();
    if message.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    head_bytes(&Head {
        error: Some(RecordError { status, message }),
        ..Head::default()
    })
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
    out: &mut Packer,
) -> Result<Option<(String, u64)>, PathError> {
    let raw = path_of(file)?;
    let shown = raw.display().to_string();
    let at = shares.resolve_file(&raw, folders)?;
    let open = fsops::open_located(&at, &shown)?;
    if open.size > max_size {
        let message = format!(
            "{shown} is {} bytes now, more than the {max_size} asked for",
            open.size
        );
        out.push(&error_record(413, &message));
        return Ok(None);
    }
    tracing::info!(path = %shown, start = 0, end = open.size, "read");
    let size = open.size;
    let head = head_bytes(&Head {
        len: size,
        modified: open.modified.and_then(fsops::rfc3339),
        error: None,
    });
    // Bounded by `max_size` above; one byte more than the size shows a file that grew.
    let (at, end) = (head.len(), head.len() + size as usize);
    let space = out.space(end + 1 + blake3::OUT_LEN);
    space[..at].copy_from_slice(&head);
    match read_whole(open, &mut space[at..=end]) {
        Ok(true) => {}
        Ok(false) => {
            out.push(&error_record(409, "changed during copy"));
            return Ok(None);
        }
        Err(e) => return Err(PathError::from_io(&shown, &e)),
    }
    let hash = blake3::hash(&space[at..end]);
    space[end..end + blake3::OUT_LEN].copy_from_slice(hash.as_bytes());
    out.commit(end + blake3::OUT_LEN);
    Ok(Some((shown, size)))
}

/// Reads the whole file into `out`, which has room for one byte more than its size; false
/// when it changed size or time while it was read.
fn read_whole(open: OpenFile, out: &mut [u8]) -> std::io::Result<bool> {
    let OpenFile {
        mut file,
        size,
        modified,
    } = open;
    let mut got = 0;
    while got < out.len() {
        match file.read(&mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if got as u64 != size {
        return Ok(false);
    }
    let now = file.metadata()?;
    Ok(now.len() == size && now.modified().ok() == modified)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use mover_proto::many::Decoder;

    /// One file's record alone, packed as `serve` packs it.
    fn record(
        shares: &Shares,
        folders: &mut FolderCache,
        file: FileRef,
        max_size: u64,
    ) -> (Vec<u8>, Option<(String, u64)>) {
        let mut out = Packer::default();
        let sent = pack(shares, folders, file, max_size, &mut out);
        (out.finish().concat(), sent)
    }

    #[test]
    fn records_fill_pooled_buffers_in_order_and_one_given_up_leaves_nothing() {
        let pool = bufpool::CHUNKS.size();
        let mut out = Packer::default();
        let small = vec![7u8; pool / 3];
        for _ in 0..4 {
            out.push(&small);
        }
        out.space(100).fill(9);
        let big = vec![5u8; pool + 10];
        out.push(&big);
        out.space(pool + 20).fill(1);
        out.push(b"tail");
        let frames = out.finish();
        let lens: Vec<usize> = frames.iter().map(|f| f.len()).collect();
        assert_eq!(lens, [3 * small.len(), small.len(), big.len(), 4]);
        assert_eq!(
            frames.concat(),
            [small.repeat(4), big, b"tail".to_vec()].concat()
        );
    }

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
        d.push(answer.clone().into());
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
        d.push(bytes.into());
        assert_eq!(
            d.next_record().unwrap().unwrap().head.error.unwrap().status,
            413
        );
    }

    #[test]
    fn a_folder_swapped_for_a_symlink_mid_request_does_not_lead_outside() {
        let dir = tempfile::tempdir().unwrap();
        let share = dir.path().join("share");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(share.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(share.join("sub/a"), b"first").unwrap();
        std::fs::write(share.join("sub/b"), b"inside").unwrap();
        std::fs::write(outside.join("b"), b"secret").unwrap();
        let shares = Shares::new(std::slice::from_ref(&share)).unwrap();
        let mut folders = FolderCache::new();
        let (_, sent) = record(&shares, &mut folders, file_ref(&share.join("sub/a")), 100);
        assert!(sent.is_some());

        std::fs::rename(share.join("sub"), share.join("moved")).unwrap();
        std::os::unix::fs::symlink(&outside, share.join("sub")).unwrap();
        let (bytes, _) = record(&shares, &mut folders, file_ref(&share.join("sub/b")), 100);
        let mut d = Decoder::new(100);
        d.push(bytes.into());
        let r = d.next_record().unwrap().unwrap();
        assert_ne!(&r.content[..], b"secret");
        assert_eq!(
            &r.content[..],
            b"inside",
            "read where the folder was checked"
        );

        // A new request checks the folder again and refuses the symlink.
        let (bytes, sent) = record(
            &shares,
            &mut FolderCache::new(),
            file_ref(&share.join("sub/b")),
            100,
        );
        assert_eq!(sent, None);
        let mut d = Decoder::new(100);
        d.push(bytes.into());
        let error = d.next_record().unwrap().unwrap().head.error.unwrap();
        assert_eq!(error.status, 403, "{}", error.message);
    }

    #[test]
    fn a_long_error_message_keeps_its_record_readable() {
        let long = "\"é".repeat(40_000);
        let mut d = Decoder::new(10);
        d.push(error_record(403, &long).into());
        let r = d.next_record().unwrap().unwrap();
        let message = r.head.error.unwrap().message;
        assert!(message.len() <= MAX_MESSAGE + '…'.len_utf8() && message.ends_with('…'));
    }

    #[test]
    fn a_file_that_grows_while_it_is_read_is_not_sent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"first").unwrap();
        let open = fsops::open_file(&path, "f", crate::paths::Resolved::AsGiven).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b" and more").unwrap();
        let mut out = vec![0; "first".len() + 1];
        assert!(!read_whole(open, &mut out).unwrap());

        let open = fsops::open_file(&path, "f", crate::paths::Resolved::AsGiven).unwrap();
        let mut out = vec![0; "first and more".len() + 1];
        assert!(read_whole(open, &mut out).unwrap());
        assert_eq!(&out[..14], b"first and more");
    }
}
