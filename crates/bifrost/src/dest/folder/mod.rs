//! A folder on Bifrost's own disk: every write beneath the job's root (`landing`), into a
//! temporary file beside its name, fsynced with its time set, journaled, then renamed; sparse
//! holes kept, a streamed file resumed at the byte, a file in parts resumed from its journal.

mod batch;
pub mod full;
mod journal;
mod landing;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::{Caps, Destination, Done, Existing, Journal, Layout, Removed, Resume, Whole};
use crate::failure::CopyError;
use crate::raw_path::RawPath;
use journal::{journal_header, partial_path, parts_journal, read_journal, PartsLog};
use landing::Landing;
pub use write::local;
use write::ChunkWriter;

/// Open folders kept for the files that follow into them (a batch of small files plans and
/// puts each file; opening the folder from the root each time doubled the work per file).
const OPEN_FOLDERS: usize = 256;

/// A job's folder destination.
pub struct Folder {
    roots: Arc<[RawPath]>,
    open: Mutex<HashMap<Vec<u8>, Arc<Landing>>>,
}

/// A file being written into a folder.
pub struct Upload {
    _landing: Arc<Landing>,
    dest: PathBuf,
    parent: PathBuf,
    partial: PathBuf,
    /// Written in parts: the journal of the parts done.
    parts: Option<tokio::sync::Mutex<PartsLog>>,
}

/// One stream of bytes into the temporary file.
pub struct Writer {
    out: Option<ChunkWriter>,
    at: u64,
    partial: PathBuf,
}

impl Folder {
    /// The destination of a job that writes beneath `roots`.
    pub fn new(roots: Arc<[RawPath]>) -> Self {
        Self {
            roots,
            open: Mutex::default(),
        }
    }

    /// The open folder that holds `dest`, made on the way if missing.
    fn landing(&self, dest: &RawPath) -> Result<Arc<Landing>, CopyError> {
        let key = match dest.0.iter().rposition(|&b| b == b'/') {
            Some(i) => dest.0[..i].to_vec(),
            None => Vec::new(),
        };
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = open.get(&key) {
            return Ok(l.clone());
        }
        let landing = Arc::new(Landing::open(&self.roots, dest)?);
        if open.len() >= OPEN_FOLDERS {
            open.clear();
        }
        open.insert(key, landing.clone());
        Ok(landing)
    }

    /// `dest` named through its open folder.
    fn path(&self, dest: &RawPath) -> Result<(Arc<Landing>, PathBuf), CopyError> {
        let landing = self.landing(dest)?;
        let path = landing.join(&dest.base_name().0);
        Ok((landing, path))
    }
}

/// What is at `path` (links not followed).
fn existing(path: &Path) -> Option<Existing> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let mtime = filetime::FileTime::from_last_modification_time(&meta);
    Some(Existing {
        is_file: meta.is_file(),
        size: meta.len(),
        modified: Some(mtime.unix_seconds()),
        blake3: None,
    })
}

fn file_time(t: time::OffsetDateTime) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(t.unix_timestamp(), t.nanosecond())
}

impl Destination for Folder {
    type Upload = Upload;
    type Writer = Writer;

    fn kind(&self) -> &'static str {
        "folder"
    }

    fn caps(&self) -> Caps {
        Caps {
            sparse: true,
            mtime: true,
            empty_folders: true,
            non_utf8_names: true,
            checksum: "BLAKE3 at Bifrost, fsync before rename",
            resume_at_byte: true,
            whole_max: 1 << 20,
        }
    }

    fn shown(&self, dest: &RawPath) -> String {
        dest.lossy()
    }

    async fn plan(&self, dest: &RawPath) -> Result<Option<Existing>, CopyError> {
        // One quick metadata call: not worth a hop to the blocking pool per file.
        let (_, path) = self.path(dest)?;
        Ok(existing(&path))
    }

    async fn content_hash(
        &self,
        dest: &RawPath,
        _existing: &Existing,
    ) -> Result<Option<String>, CopyError> {
        let (_landing, path) = self.path(dest)?;
        let shown = path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<String> {
            let mut h = blake3::Hasher::new();
            h.update_reader(std::fs::File::open(&path)?)?;
            Ok(h.finalize().to_hex().to_string())
        })
        .await
        .map_err(CopyError::internal)?
        .map(Some)
        .map_err(|e| local(e, "read", &shown))
    }

    async fn keep_time(&self, dest: &RawPath, modified: time::OffsetDateTime) {
        if let Ok((_landing, p)) = self.path(dest) {
            let t = file_time(modified);
            let _ = tokio::task::spawn_blocking(move || filetime::set_file_mtime(&p, t)).await;
        }
    }

    async fn folder(&self, dest: &RawPath) -> Result<bool, CopyError> {
        let there = std::fs::symlink_metadata(dest.to_path()).is_ok_and(|m| m.is_dir());
        // Made beneath the job's root, like every folder a copy writes into.
        Landing::open(&self.roots, dest)?;
        Ok(there)
    }

    async fn put_whole(&self, files: Vec<Whole>, journal: &Journal) -> Vec<Result<(), CopyError>> {
        batch::put(self, files, journal).await
    }

    async fn layout(&self, dest: &RawPath, size: u64, stream: bool) -> Layout {
        // A file begun in parts goes on in parts, even before the lanes are back.
        let begun = match self.path(dest) {
            Ok((_l, path)) => tokio::fs::try_exists(parts_journal(&partial_path(&path)))
                .await
                .unwrap_or(false),
            Err(_) => false,
        };
        if stream && !begun {
            Layout::Stream
        } else {
            Layout::Parts(crate::tree::parts(size))
        }
    }

    async fn begin(
        &self,
        dest: &RawPath,
        size: u64,
        modified: Option<&str>,
        layout: &Layout,
    ) -> Result<(Upload, Resume), CopyError> {
        let (landing, path) = self.path(dest)?;
        let partial = partial_path(&path);
        let mut upload = Upload {
            parent: landing.dir().to_path_buf(),
            _landing: landing,
            dest: path,
            partial,
            parts: None,
        };
        let have = tokio::fs::metadata(&upload.partial)
            .await
            .map(|m| m.len())
            .unwrap_or(0);
        let parts = match layout {
            Layout::Stream => {
                if have == 0 || have >= size {
                    return Ok((upload, Resume::Fresh));
                }
                // Resuming: the prefix on disk is part of the whole-file hash.
                let prefix = upload.partial.clone();
                let hasher = tokio::task::spawn_blocking(move || {
                    let mut h = blake3::Hasher::new();
                    let mut f = std::fs::File::open(&prefix)?;
                    std::io::copy(&mut std::io::Read::take(&mut f, have), &mut h)?;
                    Ok::<_, std::io::Error>(h)
                })
                .await
                .map_err(CopyError::internal)?
                .map_err(|e| local(e, "read", &upload.partial))?;
                let resume = Resume::At {
                    offset: have,
                    hasher: Box::new(hasher),
                };
                return Ok((upload, resume));
            }
            Layout::Parts(parts) => parts,
        };
        let header = journal_header(size, modified);
        let journal = parts_journal(&upload.partial);
        let previous = tokio::fs::read_to_string(&journal)
            .await
            .unwrap_or_default();
        let done = if have == size {
            read_journal(&previous, &header, parts)
        } else {
            Default::default()
        };
        if done.is_empty() {
            // A fresh start: a temporary file of the final length (holes until written) and a
            // journal for this version of the source. A new file, not the old one truncated: a
            // writer of an abandoned attempt still holding the old one cannot reach this one.
            let _ = tokio::fs::remove_file(&upload.partial).await;
            let f = tokio::fs::File::create(&upload.partial)
                .await
                .map_err(|e| local(e, "create", &upload.partial))?;
            f.set_len(size)
                .await
                .map_err(|e| local(e, "extend", &upload.partial))?;
            tokio::fs::write(&journal, &header)
                .await
                .map_err(|e| local(e, "write", &journal))?;
        }
        let log = PartsLog::open(journal, &upload.partial, size).await?;
        upload.parts = Some(tokio::sync::Mutex::new(log));
        Ok((upload, Resume::Parts(done)))
    }

    async fn writer(&self, upload: &Upload, at: u64) -> Result<Writer, CopyError> {
        let p = &upload.partial;
        let out = if upload.parts.is_some() {
            tokio::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .await
                .map_err(|e| local(e, "open", p))?
        } else if at > 0 {
            // Not append mode: holes are made by seeking past zeros, which append would defeat.
            let f = tokio::fs::OpenOptions::new()
                .write(true)
                .open(p)
                .await
                .map_err(|e| local(e, "open", p))?;
            f.set_len(at).await.map_err(|e| local(e, "truncate", p))?;
            f
        } else {
            // A new file, not the old one truncated (see `begin`).
            let _ = tokio::fs::remove_file(p).await;
            tokio::fs::File::create(p)
                .await
                .map_err(|e| local(e, "create", p))?
        };
        Ok(Writer {
            out: Some(ChunkWriter::new(out).await),
            at,
            partial: p.clone(),
        })
    }

    async fn write(&self, writer: &mut Writer, data: Bytes) -> Result<(), CopyError> {
        let n = data.len() as u64;
        let Some(out) = writer.out.as_mut() else {
            return Err(CopyError::internal("a write after the writer failed"));
        };
        if out.put(writer.at, data).await {
            writer.at += n;
            return Ok(());
        }
        // The writing thread stopped: its error is the file's.
        let failed = writer.out.take().map(ChunkWriter::finish);
        let e = match failed {
            Some(f) => f.await.err(),
            None => None,
        };
        Err(local(
            e.unwrap_or_else(|| std::io::Error::other("the writer stopped")),
            "write",
            &writer.partial,
        ))
    }

    async fn written(
        &self,
        upload: &Upload,
        writer: Writer,
        part: Option<(u64, u64, [u8; 32])>,
    ) -> Result<(), CopyError> {
        if let Some(out) = writer.out {
            out.finish()
                .await
                .map_err(|e| local(e, "write", &upload.partial))?;
        }
        match (part, &upload.parts) {
            (Some(part), Some(log)) => log.lock().await.written(part).await,
            _ => Ok(()),
        }
    }

    async fn commit(&self, upload: Upload, done: Done, journal: &Journal) -> Result<(), CopyError> {
        if let Some(log) = &upload.parts {
            log.lock().await.settle().await?;
        }
        let p = upload.partial.clone();
        let modified = done.modified.map(file_time);
        let size = done.size;
        // The time first, so the one sync makes it durable too; the length too, for a file
        // that ends in zeros skipped over as a hole.
        tokio::task::spawn_blocking(move || {
            let out = std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|e| ("open", e))?;
            out.set_len(size).map_err(|e| ("extend", e))?;
            if let Some(t) = modified {
                filetime::set_file_handle_times(&out, None, Some(t))
                    .map_err(|e| ("set the modification time of", e))?;
            }
            out.sync_all().map_err(|e| ("sync", e))
        })
        .await
        .map_err(CopyError::internal)?
        .map_err(|(what, e)| local(e, what, &upload.partial))?;
        journal.verified(vec![(done.seq, done.blake3)]).await?;
        if upload.parts.is_some() {
            let _ = tokio::fs::remove_file(parts_journal(&upload.partial)).await;
        }
        tokio::fs::rename(&upload.partial, &upload.dest)
            .await
            .map_err(|e| local(e, "rename into", &upload.dest))?;
        if let Ok(dir) = tokio::fs::File::open(&upload.parent).await {
            let _ = dir.sync_all().await;
        }
        Ok(())
    }

    async fn abort(&self, upload: Upload) {
        let _ = tokio::fs::remove_file(&upload.partial).await;
        if upload.parts.is_some() {
            let _ = tokio::fs::remove_file(parts_journal(&upload.partial)).await;
        }
    }

    async fn remove(&self, dest: &RawPath) -> Result<Removed, CopyError> {
        let folder = dest.0.ends_with(b"/");
        let file = RawPath(dest.0.strip_suffix(b"/").unwrap_or(&dest.0).to_vec());
        let (_landing, path) = self.path(&file)?;
        let result = if folder {
            tokio::fs::remove_dir(&path).await
        } else {
            tokio::fs::remove_file(&path).await
        };
        match result {
            Ok(()) => Ok(Removed::Removed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Removed::Gone),
            Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(Removed::NotEmpty),
            Err(e) => Err(local(e, "remove", &path)),
        }
    }
}
