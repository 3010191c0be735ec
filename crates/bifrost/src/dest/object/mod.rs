//! Object storage (S3, Azure Blob, GCS through object_store): small files put whole, many at
//! once; files up to [`STREAM_MAX`] buffered and put in one request; bigger ones as multipart
//! uploads whose parts are the engine's parts, journaled in the database as the service takes
//! them. Each object carries the source's modification time and BLAKE3 in its metadata.

pub mod azure;
mod journal;
pub mod keys;
mod multipart;
pub mod s3;
pub mod service;
pub mod signed;
mod sizes;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::{GetOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload};

use super::{Caps, Destination, Done, Existing, Journal, Layout, Removed, Resume, Whole};
use crate::failure::CopyError;
use crate::raw_path::RawPath;
pub use journal::SCHEMA;
use journal::{Begun, Part};
use keys::Key;
use service::failure;

pub use signed::SetMetadata;
use sizes::{part_size, MIN_PART, PUTS_AT_ONCE, STREAM_MAX, WHOLE_MAX};

/// Where a job's objects go.
pub struct Bucket {
    /// `s3`, `azure_blob` or `gcs`.
    pub kind: &'static str,
    /// Whole objects.
    pub store: Arc<dyn ObjectStore>,
    /// Multipart uploads.
    pub multipart: Arc<dyn MultipartStore>,
    /// Keys start with this (no `/` at either end), or `""`.
    pub prefix: String,
    /// The destination's id, for the journal.
    pub id: String,
    /// Sets an object's metadata after a multipart upload completes (see [`signed`]).
    pub metadata: Option<Arc<dyn SetMetadata>>,
    /// Azure's writes with Content-MD5, in place of object_store's.
    pub blobs: Option<Arc<azure::AzureBlobs>>,
}

/// A job's object destination.
pub struct Objects {
    bucket: Bucket,
    journal: journal::Journal,
}

/// A file being written.
pub struct Upload {
    key: Key,
    path: Path,
    way: Way,
}

enum Way {
    /// Held until the commit puts it.
    Buffered(Mutex<Vec<Bytes>>),
    /// A multipart upload.
    Parts {
        begun: Begun,
        parts: tokio::sync::Mutex<BTreeMap<u64, Part>>,
    },
}

/// One stream of bytes: a part, or the whole file.
pub struct Writer {
    at: u64,
    len: u64,
    chunks: Vec<Bytes>,
}

impl Objects {
    /// The destination of job `job` in `bucket`.
    pub fn new(bucket: Bucket, store: crate::store::Store, job: &str) -> Self {
        let journal = journal::Journal {
            store,
            job: job.to_owned(),
            destination: bucket.id.clone(),
        };
        Self { bucket, journal }
    }

    fn key(&self, dest: &RawPath) -> Result<Key, CopyError> {
        keys::key(&self.bucket.prefix, dest, self.bucket.kind != "azure_blob")
    }

    /// Aborts the multipart uploads this job left open (cancelled, or finished with files
    /// failed): the service would keep, and bill, their parts.
    pub async fn abort_left(&self) -> Result<usize, CopyError> {
        let left = self.journal.left().await?;
        for (row, key, id) in &left {
            if let Ok(path) = Path::parse(key) {
                let _ = self.bucket.multipart.abort_multipart(&path, id).await;
            }
            self.journal.end(*row).await?;
        }
        Ok(left.len())
    }

    async fn put(
        &self,
        key: &Key,
        payload: PutPayload,
        attributes: object_store::Attributes,
    ) -> Result<(), CopyError> {
        if let Some(blobs) = &self.bucket.blobs {
            return blobs.put_blob(&key.text, payload, &attributes).await;
        }
        let opts = PutOptions {
            attributes,
            ..Default::default()
        };
        self.bucket
            .store
            .put_opts(&key.path()?, payload, opts)
            .await
            .map_err(|e| failure("put", e))?;
        Ok(())
    }
}

impl Destination for Objects {
    type Upload = Upload;
    type Writer = Writer;

    fn kind(&self) -> &'static str {
        self.bucket.kind
    }

    fn caps(&self) -> Caps {
        Caps {
            sparse: false,
            mtime: true,
            empty_folders: false,
            non_utf8_names: false,
            checksum: match self.bucket.kind {
                "s3" => "SHA-256 of each request (x-amz-checksum-sha256), BLAKE3 at Bifrost",
                "azure_blob" => "MD5 of each blob and block (Content-MD5), BLAKE3 at Bifrost",
                _ => "BLAKE3 at Bifrost",
            },
            resume_at_byte: false,
            whole_max: WHOLE_MAX,
        }
    }

    fn shown(&self, dest: &RawPath) -> String {
        self.key(dest)
            .map(|k| k.text)
            .unwrap_or_else(|_| dest.lossy())
    }

    async fn plan(&self, dest: &RawPath) -> Result<Option<Existing>, CopyError> {
        let path = self.key(dest)?.path()?;
        let head = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.bucket.store.get_opts(&path, head).await {
            Ok(r) => Ok(Some(Existing {
                is_file: true,
                size: r.meta.size,
                modified: keys::mtime_of(&r.attributes),
                blake3: keys::blake3_of(&r.attributes),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failure("look up", e)),
        }
    }

    async fn content_hash(
        &self,
        dest: &RawPath,
        existing: &Existing,
    ) -> Result<Option<String>, CopyError> {
        if let Some(b) = &existing.blake3 {
            return Ok(Some(b.clone()));
        }
        // An object another tool wrote: read it back to hash it.
        let path = self.key(dest)?.path()?;
        let got = self
            .bucket
            .store
            .get(&path)
            .await
            .map_err(|e| failure("read", e))?;
        let mut stream = got.into_stream();
        let mut h = blake3::Hasher::new();
        while let Some(chunk) = stream.try_next().await.map_err(|e| failure("read", e))? {
            h.update(&chunk);
        }
        Ok(Some(h.finalize().to_hex().to_string()))
    }

    async fn keep_time(&self, _dest: &RawPath, _modified: time::OffsetDateTime) {
        // Metadata cannot change without writing the object again: the next run compares the
        // content again instead.
    }

    async fn folder(&self, _dest: &RawPath) -> Result<bool, CopyError> {
        // Object stores have no folders; an empty one is not kept (caps.empty_folders).
        Ok(true)
    }

    async fn put_whole(&self, files: Vec<Whole>, journal: &Journal) -> Vec<Result<(), CopyError>> {
        let n = files.len();
        let verified = files.iter().map(|f| (f.seq, f.blake3.clone())).collect();
        if let Err(e) = journal.verified(verified).await {
            return vec![Err(e); n];
        }
        futures_util::stream::iter(files)
            .map(|f| async move {
                let key = self.key(&f.dest)?;
                let attributes = keys::attributes(f.modified, Some(&f.blake3), key.escaped);
                self.put(&key, PutPayload::from_bytes(f.content), attributes)
                    .await
            })
            .buffered(PUTS_AT_ONCE)
            .collect()
            .await
    }

    async fn layout(&self, dest: &RawPath, size: u64, _stream: bool) -> Layout {
        if size <= STREAM_MAX {
            return Layout::Stream;
        }
        // An upload begun goes on with its part size.
        let begun = match self.key(dest) {
            Ok(k) => self.journal.find(&k.text).await.ok().flatten(),
            Err(_) => None,
        };
        let part = match begun {
            Some((b, s, _)) if s == size => b.part_size,
            _ => part_size(size),
        };
        Layout::Parts(crate::tree::parts_of(size, part))
    }

    async fn begin(
        &self,
        dest: &RawPath,
        size: u64,
        modified: Option<&str>,
        layout: &Layout,
    ) -> Result<(Upload, Resume), CopyError> {
        let key = self.key(dest)?;
        let path = key.path()?;
        let parts = match layout {
            Layout::Stream => {
                let way = Way::Buffered(Mutex::default());
                return Ok((Upload { key, path, way }, Resume::Fresh));
            }
            Layout::Parts(parts) => parts,
        };
        let part = parts.first().map(|p| p.1).unwrap_or(MIN_PART);
        self.begin_parts(key, path, (size, modified, part)).await
    }

    async fn writer(&self, _upload: &Upload, at: u64) -> Result<Writer, CopyError> {
        Ok(Writer {
            at,
            len: 0,
            chunks: Vec::new(),
        })
    }

    async fn write(&self, writer: &mut Writer, data: Bytes) -> Result<(), CopyError> {
        writer.len += data.len() as u64;
        writer.chunks.push(data);
        Ok(())
    }

    async fn written(
        &self,
        upload: &Upload,
        writer: Writer,
        part: Option<(u64, u64, [u8; 32])>,
    ) -> Result<(), CopyError> {
        match (&upload.way, part) {
            (Way::Buffered(held), _) => {
                let mut held = held.lock().unwrap_or_else(|e| e.into_inner());
                let have: u64 = held.iter().map(|c| c.len() as u64).sum();
                if writer.at != have {
                    // A stream from elsewhere than where the buffer ends: start over.
                    held.clear();
                    if writer.at != 0 {
                        return Err(CopyError::internal("a stream resumed past a buffer"));
                    }
                }
                held.extend(writer.chunks);
                Ok(())
            }
            // A part that failed: it is fetched again.
            (Way::Parts { .. }, None) => Ok(()),
            (Way::Parts { begun, parts }, Some(part)) => {
                self.put_part(&upload.path, (begun, parts), writer, part)
                    .await
            }
        }
    }

    async fn commit(&self, upload: Upload, done: Done, journal: &Journal) -> Result<(), CopyError> {
        journal
            .verified(vec![(done.seq, done.blake3.clone())])
            .await?;
        let attributes = keys::attributes(done.modified, Some(&done.blake3), upload.key.escaped);
        let (begun, parts) = match upload.way {
            Way::Buffered(held) => {
                let held = held.into_inner().unwrap_or_else(|e| e.into_inner());
                let payload = PutPayload::from_iter(held);
                if payload.content_length() as u64 != done.size {
                    return Err(CopyError::internal("the buffered file is not whole"));
                }
                return self.put(&upload.key, payload, attributes).await;
            }
            Way::Parts { begun, parts } => (begun, parts.into_inner()),
        };
        let at = (&upload.key, &upload.path);
        self.complete(at, begun, parts, done.size, attributes).await
    }

    async fn abort(&self, upload: Upload) {
        if let Way::Parts { begun, .. } = upload.way {
            let _ = self
                .bucket
                .multipart
                .abort_multipart(&upload.path, &begun.upload_id)
                .await;
            let _ = self.journal.end(begun.row).await;
        }
    }

    async fn remove(&self, dest: &RawPath) -> Result<Removed, CopyError> {
        if dest.0.ends_with(b"/") {
            return Ok(Removed::Gone);
        }
        let path = self.key(dest)?.path()?;
        let head = GetOptions {
            head: true,
            ..Default::default()
        };
        match self.bucket.store.get_opts(&path, head).await {
            Err(object_store::Error::NotFound { .. }) => return Ok(Removed::Gone),
            Err(e) => return Err(failure("look up", e)),
            Ok(_) => {}
        }
        self.bucket
            .store
            .delete(&path)
            .await
            .map_err(|e| failure("delete", e))?;
        Ok(Removed::Removed)
    }
}
