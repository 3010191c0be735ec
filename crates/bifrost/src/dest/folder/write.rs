//! Writing a folder destination's files: chunks at their offsets on a blocking thread, zeros
//! skipped as holes, flushed in the background as they go; and what a failed file operation
//! means for the file.

use std::io::SeekFrom;
use std::path::Path;
use std::sync::atomic::Ordering;

use crate::failure::CopyError;

/// What a failed file operation at the destination means for the file: a full disk or quota
/// pauses the job (see `full`), anything else fails the file.
pub fn local(e: std::io::Error, what: &str, path: &Path) -> CopyError {
    if super::full::is_disk_full(&e) {
        CopyError::DiskFull(super::full::reason(&e))
    } else {
        let shown = super::landing::shown(path);
        CopyError::Local(format!("cannot {what} {}: {e}", shown.display()))
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
pub struct ChunkWriter {
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
    pub async fn new(file: tokio::fs::File) -> Self {
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
    pub async fn put(&mut self, at: u64, data: bytes::Bytes) -> bool {
        match &self.tx {
            Some(tx) => tx.send((at, data)).await.is_ok(),
            None => false,
        }
    }

    /// Waits until every queued chunk is written.
    pub async fn finish(mut self) -> std::io::Result<tokio::fs::File> {
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
